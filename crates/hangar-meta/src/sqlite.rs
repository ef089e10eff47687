//! The SQLite engine of [`MetaStore`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hangar_core::model::Image;
use hangar_core::repo::{ImageListQuery, MetaStore, StoreError};
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};

use crate::sql::{self, ImageRow};

/// The versioned schema, embedded at build time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's (or process's) write
/// lock before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections serving reads. In WAL mode readers never block the writer nor
/// each other.
const READERS: u32 = 4;

/// How often a write is retried when the row it collided with vanished before
/// it could be named (a concurrent deregistration or reset).
const WRITE_ATTEMPTS: usize = 5;

/// A [`MetaStore`] kept in one SQLite file.
///
/// Writes go through a pool of exactly one connection; reads through a pool
/// of several. SQLite admits one writer at a time anyway: with several write
/// connections, concurrent writers would queue inside SQLite's busy handler
/// (which polls with sleeps, is unfair and gives up after the busy timeout),
/// whereas the one-connection pool queues them in-process, in order, with no
/// lock contention; `busy_timeout` is then only needed for other processes
/// (an operator's `sqlite3`, a second server by mistake) and for readers
/// during a checkpoint.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// `None` for an in-memory store.
    path: Option<PathBuf>,
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file (and its directory) if
    /// missing, and brings its schema up to date.
    ///
    /// The file is in WAL mode with `synchronous=FULL`: a write is on disk
    /// (the WAL is synced at each commit) when the call that made it returns,
    /// so it survives a crash of the process or of the machine.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display();
        let cannot_open =
            |cause: String| StoreError::Backend(format!("cannot open {shown}: {cause}"));
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(parent).await.map_err(|error| {
                StoreError::Backend(format!(
                    "cannot create directory {} for {shown}: {error}",
                    parent.display()
                ))
            })?;
        }

        let options = SqliteConnectOptions::new()
            .filename(path)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // WAL is a property of the file: the writer sets it once, the
        // readers find it (switching needs a lock busy_timeout cannot wait for).
        let writer_options = options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await
            .map_err(|error| cannot_open(error.to_string()))?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|error| cannot_open(format!("schema migration failed: {error}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await
            .map_err(|error| cannot_open(error.to_string()))?;
        tracing::info!(path = %shown, "metadata store open");
        Ok(Self {
            path: Some(path.to_owned()),
            writer,
            reader,
        })
    }

    /// A store that lives in memory and vanishes with the last clone of it:
    /// for tests. Reads and writes share its one connection.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|error| {
                StoreError::Backend(format!("cannot open an in-memory store: {error}"))
            })?;
        MIGRATOR.run(&pool).await.map_err(|error| {
            StoreError::Backend(format!("in-memory store: schema migration failed: {error}"))
        })?;
        Ok(Self {
            path: None,
            writer: pool.clone(),
            reader: pool,
        })
    }

    /// The file this store lives in; `None` when in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Closes every connection, waiting for those in use (for a clean
    /// shutdown; dropping the store is also safe, since every acknowledged
    /// write is already durable).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn insert_row(&self, row: &ImageRow) -> Result<bool, StoreError> {
        let result = sqlx::query(sql::INSERT_IMAGE)
            .bind(&row.image_id)
            .bind(&row.region)
            .bind(&row.owner_id)
            .bind(&row.owner_alias)
            .bind(&row.name)
            .bind(row.state)
            .bind(row.created_ms)
            .bind(row.revision)
            .bind(row.record_version)
            .bind(&row.doc)
            .execute(&self.writer)
            .await
            .map_err(|error| backend("insert", &row.image_id, error))?;
        Ok(result.rows_affected() == 1)
    }

    /// Replaces the row if its revision is still `expected`. `Ok(false)`:
    /// gone or changed. Unique violations come back as `Err(None)`.
    async fn update_row(&self, row: &ImageRow, expected: i64) -> Result<bool, Option<StoreError>> {
        let result = sqlx::query(sql::UPDATE_IMAGE)
            .bind(&row.image_id)
            .bind(&row.region)
            .bind(&row.owner_id)
            .bind(&row.owner_alias)
            .bind(&row.name)
            .bind(row.state)
            .bind(row.created_ms)
            .bind(row.revision)
            .bind(row.record_version)
            .bind(&row.doc)
            .bind(expected)
            .execute(&self.writer)
            .await;
        match result {
            Ok(result) => Ok(result.rows_affected() == 1),
            Err(sqlx::Error::Database(error)) if error.kind() == ErrorKind::UniqueViolation => {
                Err(None)
            }
            Err(error) => Err(Some(backend("update", &row.image_id, error))),
        }
    }

    /// The stored row of an image, undecoded: (revision, record_version, doc).
    async fn fetch_raw(&self, image_id: &str) -> Result<Option<(i64, i64, String)>, StoreError> {
        let row = sqlx::query(sql::SELECT_IMAGE)
            .bind(image_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(|error| backend("read", image_id, error))?;
        row.map(|row| {
            let column = |name| column_error(image_id, name);
            Ok((
                row.try_get("revision").map_err(column("revision"))?,
                row.try_get("record_version")
                    .map_err(column("record_version"))?,
                row.try_get("doc").map_err(column("doc"))?,
            ))
        })
        .transpose()
    }

    async fn exists(&self, image_id: &str) -> Result<bool, StoreError> {
        Ok(self.fetch_raw(image_id).await?.is_some())
    }

    /// The live image, other than `row`'s own, that holds `row`'s name.
    async fn name_holder(&self, row: &ImageRow) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(sql::SELECT_LIVE_NAME_HOLDER)
            .bind(&row.region)
            .bind(&row.owner_id)
            .bind(&row.name)
            .bind(&row.image_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(|error| backend("name lookup", &row.image_id, error))
    }

    /// After a write collided with the live-name index: who holds the name.
    /// `None` when the holder vanished meanwhile (the caller retries).
    async fn name_taken(&self, row: &ImageRow) -> Result<Option<StoreError>, StoreError> {
        Ok(self
            .name_holder(row)
            .await?
            .map(|existing_image_id| StoreError::ImageNameTaken { existing_image_id }))
    }
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn insert_image(&self, image: &Image) -> Result<(), StoreError> {
        let row = image_row(image, image.revision)?;
        for _ in 0..WRITE_ATTEMPTS {
            if self.insert_row(&row).await? {
                return Ok(());
            }
            // Nothing inserted: the ID or the live name is taken.
            if self.exists(&row.image_id).await? {
                return Err(StoreError::DuplicateId(row.image_id));
            }
            if let Some(taken) = self.name_taken(&row).await? {
                return Err(taken);
            }
        }
        Err(gave_up("insert", &row.image_id))
    }

    async fn update_image(&self, image: &Image) -> Result<i64, StoreError> {
        let new_revision = next_revision(image.revision, &image.image_id)?;
        let row = image_row(image, new_revision)?;
        for _ in 0..WRITE_ATTEMPTS {
            match self.update_row(&row, image.revision).await {
                Ok(true) => return Ok(new_revision),
                Ok(false) => return Err(StoreError::Conflict(row.image_id)),
                Err(Some(error)) => return Err(error),
                Err(None) => {
                    if let Some(taken) = self.name_taken(&row).await? {
                        return Err(taken);
                    }
                }
            }
        }
        Err(gave_up("update", &row.image_id))
    }

    async fn upsert_image(&self, image: &Image) -> Result<(), StoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            match self.fetch_raw(&image.image_id).await? {
                None => {
                    let row = image_row(image, image.revision)?;
                    if self.insert_row(&row).await? {
                        return Ok(());
                    }
                    if self.exists(&row.image_id).await? {
                        continue; // Inserted meanwhile: replace it.
                    }
                    if let Some(taken) = self.name_taken(&row).await? {
                        return Err(taken);
                    }
                }
                Some((stored_revision, record_version, doc)) => {
                    // Rewriting an identical record would only bump its revision.
                    let unchanged =
                        sql::decode_image(&image.image_id, stored_revision, record_version, &doc)
                            .is_ok_and(|mut stored| {
                                stored.revision = image.revision;
                                stored == *image
                            });
                    if unchanged {
                        return Ok(());
                    }
                    // Revisions never go back: past the stored one, or the caller's if higher.
                    let new_revision =
                        next_revision(stored_revision, &image.image_id)?.max(image.revision);
                    let row = image_row(image, new_revision)?;
                    match self.update_row(&row, stored_revision).await {
                        Ok(true) => return Ok(()),
                        Ok(false) => {} // Changed or deleted meanwhile: look again.
                        Err(Some(error)) => return Err(error),
                        Err(None) => {
                            if let Some(taken) = self.name_taken(&row).await? {
                                return Err(taken);
                            }
                        }
                    }
                }
            }
        }
        Err(gave_up("upsert", &image.image_id))
    }

    async fn get_image(&self, image_id: &str) -> Result<Option<Image>, StoreError> {
        self.fetch_raw(image_id)
            .await?
            .map(|(revision, record_version, doc)| {
                sql::decode_image(image_id, revision, record_version, &doc)
                    .map_err(StoreError::Backend)
            })
            .transpose()
    }

    async fn get_images(&self, image_ids: &[String]) -> Result<Vec<Image>, StoreError> {
        let mut seen = HashSet::new();
        let unique: Vec<&str> = image_ids
            .iter()
            .map(String::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        let mut images = Vec::new();
        for chunk in unique.chunks(sql::IN_CHUNK) {
            let text = sql::select_images_by_id(chunk.len());
            let mut query = sqlx::query(AssertSqlSafe(text));
            for id in chunk {
                query = query.bind(*id);
            }
            let rows = query
                .fetch_all(&self.reader)
                .await
                .map_err(|error| backend("read", &format!("{} images", chunk.len()), error))?;
            for row in &rows {
                images.push(decode_row(row)?);
            }
        }
        Ok(images)
    }

    async fn list_images(&self, query: &ImageListQuery) -> Result<Vec<Image>, StoreError> {
        let Some((text, binds)) = sql::list_images(query) else {
            return Ok(Vec::new());
        };
        let mut statement = sqlx::query(AssertSqlSafe(text));
        for value in binds {
            statement = statement.bind(value);
        }
        let rows = statement
            .fetch_all(&self.reader)
            .await
            .map_err(|error| backend("list", &format!("images in {}", query.region), error))?;
        rows.iter().map(decode_row).collect()
    }

    async fn reset(&self) -> Result<(), StoreError> {
        sqlx::query(sql::DELETE_ALL)
            .execute(&self.writer)
            .await
            .map_err(|error| backend("reset", "all images", error))?;
        tracing::info!("metadata store reset");
        Ok(())
    }
}

fn image_row(image: &Image, revision: i64) -> Result<ImageRow, StoreError> {
    ImageRow::new(image, revision).map_err(StoreError::Backend)
}

fn next_revision(revision: i64, image_id: &str) -> Result<i64, StoreError> {
    revision
        .checked_add(1)
        .ok_or_else(|| StoreError::Backend(format!("image {image_id}: revision overflow")))
}

fn decode_row(row: &SqliteRow) -> Result<Image, StoreError> {
    let image_id: String = row
        .try_get("image_id")
        .map_err(column_error("?", "image_id"))?;
    let column = |name| column_error(&image_id, name);
    let revision = row.try_get("revision").map_err(column("revision"))?;
    let record_version = row
        .try_get("record_version")
        .map_err(column("record_version"))?;
    let doc: String = row.try_get("doc").map_err(column("doc"))?;
    sql::decode_image(&image_id, revision, record_version, &doc).map_err(StoreError::Backend)
}

fn column_error<'a>(
    image_id: &'a str,
    column: &'a str,
) -> impl FnOnce(sqlx::Error) -> StoreError + 'a {
    move |error| StoreError::Backend(format!("image {image_id}: bad column {column}: {error}"))
}

fn backend(operation: &str, subject: &str, error: sqlx::Error) -> StoreError {
    tracing::warn!(%error, operation, subject, "metadata store failure");
    StoreError::Backend(format!("sqlite {operation} of {subject}: {error}"))
}

fn gave_up(operation: &str, image_id: &str) -> StoreError {
    StoreError::Backend(format!(
        "sqlite {operation} of {image_id}: kept colliding with rows that vanished; gave up after {WRITE_ATTEMPTS} attempts"
    ))
}
