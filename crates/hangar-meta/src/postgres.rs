//! The PostgreSQL engine of [`MetaStore`], for several Hangar nodes sharing
//! one database.
//!
//! It runs the same query text as the SQLite engine (`sql.rs`) on the same
//! schema (`migrations/postgres/`, with byte-order collation on the columns
//! that are compared and paginated). What differs is concurrency: SQLite
//! admits one writer at a time, so its read-then-write transactions never
//! interleave; PostgreSQL runs transactions side by side at READ COMMITTED.
//! Where a transaction here reads something and then writes depending on
//! it, it first takes a transaction-scoped advisory lock on what it reads
//! (`pg_advisory_xact_lock`, see [`lock`]), which serializes exactly the
//! writers of that one object, upload, block map or bucket, across every node;
//! rows that may not exist yet cannot be locked with `SELECT ... FOR UPDATE`,
//! an advisory lock on their key can. Single statements need nothing more:
//! `INSERT ... ON CONFLICT DO NOTHING` waits for a concurrent insert of the
//! same key to commit or roll back, so the unique indexes (live image names,
//! IDs, client tokens) hold across nodes exactly as they do in SQLite, and a
//! conditional `UPDATE ... WHERE revision = $n` re-checks its condition on
//! the newest row version after waiting for a concurrent writer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hangar_core::model::{Bucket, Image, Instance, S3Object, Snapshot, Task, Volume};
use hangar_core::model::{CompletedUpload, MultipartUpload, UploadPart};
use hangar_core::repo::{ImageListQuery, MetaStore, RecordQuery, StoreError, ZERO_BLOCK};
use hangar_core::repo::{Lease, LeaseHolder, task_lease_name};
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::{AssertSqlSafe, Row, Transaction};

use crate::sql::{self, ImageRow, Record, RecordRow};

/// A statement with its arguments still to bind.
type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The versioned schema, embedded at build time. sqlx's PostgreSQL migrator
/// holds a session advisory lock (`pg_advisory_lock`, keyed by the database
/// name) from before it creates `_sqlx_migrations` until it has applied
/// every migration, so nodes starting at once apply each migration exactly
/// once: the others wait, then find nothing left to do.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Connections per node. Every request holds one for a statement or a short
/// transaction; PostgreSQL's default `max_connections` (100) leaves room for
/// several nodes.
const CONNECTIONS: u32 = 10;

/// How long a request waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many claimable tasks one claim considers: it takes the first whose
/// lease it wins; more only matter when other nodes claim at the same time.
const CLAIM_CANDIDATES: usize = 8;

/// How often a write is retried when the row it collided with vanished before
/// it could be named (a concurrent deregistration or reset).
const WRITE_ATTEMPTS: usize = 5;

/// A [`MetaStore`] kept in a PostgreSQL database, shareable by several nodes.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    decoded: Arc<DecodedImages>,
}

/// Decoded images by ID, each valid for exactly one revision. Listings read
/// only IDs and revisions and decode just the images whose revision moved
/// on: decoding the stored documents was most of a large listing's time. A
/// revision is bumped by every write, so a hit can never be stale, whoever
/// wrote (another node included).
#[derive(Debug, Default)]
struct DecodedImages {
    entries: Mutex<HashMap<String, (i64, Arc<Image>)>>,
}

impl DecodedImages {
    /// Beyond this many entries the cache starts over, bounding its memory.
    const MAX_ENTRIES: usize = 100_000;

    fn get(&self, image_id: &str, revision: i64) -> Option<Arc<Image>> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(image_id)
            .filter(|(cached, _)| *cached == revision)
            .map(|(_, image)| image.clone())
    }

    fn put(&self, image: Image) -> Arc<Image> {
        let image = Arc::new(image);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(image.image_id.clone(), (image.revision, image.clone()));
        image
    }

    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`,
    /// any form libpq accepts) and brings its schema up to date. Safe when
    /// several nodes start at once: see [`MIGRATOR`]. The database itself
    /// must exist.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let cannot_open =
            |cause: String| StoreError::Backend(format!("cannot open {shown}: {cause}"));
        let options: PgConnectOptions = url
            .parse()
            .map_err(|error: sqlx::Error| cannot_open(error.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| cannot_open(error.to_string()))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|error| cannot_open(format!("schema migration failed: {error}")))?;
        tracing::info!(database = %shown, "metadata store open");
        Ok(Self {
            pool,
            decoded: Arc::default(),
        })
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn insert_row(&self, row: &ImageRow) -> Result<bool, StoreError> {
        let result = bind_image_row(sqlx::query(sql::INSERT_IMAGE), row)
            .execute(&self.pool)
            .await
            .map_err(|error| backend("insert", &row.image_id, error))?;
        Ok(result.rows_affected() == 1)
    }

    /// Replaces the row if its revision is still `expected`. `Ok(false)`:
    /// gone or changed. Unique violations come back as `Err(None)`.
    async fn update_row(&self, row: &ImageRow, expected: i64) -> Result<bool, Option<StoreError>> {
        let result = bind_image_row(sqlx::query(sql::UPDATE_IMAGE), row)
            .bind(expected)
            .execute(&self.pool)
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
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| backend("read", image_id, error))?;
        row.map(|row| {
            let subject = format!("image {image_id}");
            let column = |name| column_error(&subject, name);
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
            .fetch_optional(&self.pool)
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
impl MetaStore for PostgresStore {
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
        let new_revision = next_revision(image.revision, &format!("image {}", image.image_id))?;
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
                        next_revision(stored_revision, &format!("image {}", image.image_id))?
                            .max(image.revision);
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
                .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", &format!("images in {}", query.region), error))?;
        // IDs and revisions first; documents only for what the cache lacks.
        let mut listed: Vec<(String, i64, Option<Arc<Image>>)> = Vec::with_capacity(rows.len());
        let mut missing = Vec::new();
        for row in &rows {
            let image_id: String = row
                .try_get(0)
                .map_err(column_error("image ?", "image_id"))?;
            let revision: i64 = row
                .try_get(1)
                .map_err(column_error(&image_id, "revision"))?;
            let cached = self.decoded.get(&image_id, revision);
            if cached.is_none() {
                missing.push(image_id.clone());
            }
            listed.push((image_id, revision, cached));
        }
        let mut fetched: HashMap<String, Arc<Image>> = HashMap::new();
        for image in self.get_images(&missing).await? {
            fetched.insert(image.image_id.clone(), self.decoded.put(image));
        }
        let mut images = Vec::with_capacity(listed.len());
        for (image_id, _, cached) in listed {
            // An image deleted between the two reads is simply not listed.
            if let Some(image) = cached.or_else(|| fetched.get(&image_id).cloned()) {
                images.push(Image::clone(&image));
            }
        }
        Ok(images)
    }

    async fn reset(&self) -> Result<(), StoreError> {
        self.decoded.clear();
        let subject = "every record";
        let mut tx = self.begin("reset", subject).await?;
        for statement in sql::DELETE_ALL {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(|error| backend("reset", subject, error))?;
        }
        commit(tx, "reset", subject).await?;
        tracing::info!("metadata store reset");
        Ok(())
    }

    async fn insert_image_with_task(&self, image: &Image, task: &Task) -> Result<(), StoreError> {
        let image_row = image_row(image, image.revision)?;
        let task_row = record_row(task, task.revision)?;
        let subject = format!("image {} with task {}", image.image_id, task.task_id);
        let failed = |error: sqlx::Error| backend("insert", &subject, error);
        let mut tx = self.begin("insert", &subject).await?;
        let inserted = bind_image_row(sqlx::query(sql::INSERT_IMAGE), &image_row)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        if inserted.rows_affected() != 1 {
            // The insert waited for any concurrent writer of the same key to
            // commit; the next statement's snapshot sees that row to name it
            // (or, if it vanished meanwhile, image_refusal says so).
            let refusal = image_refusal(&mut tx, &image_row).await?;
            rollback(tx).await;
            return Err(refusal);
        }
        let inserted = bind_record_row(sqlx::query(sql::INSERT_RECORD), &task_row)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        if inserted.rows_affected() != 1 {
            rollback(tx).await;
            return Err(StoreError::DuplicateId(task_row.id));
        }
        commit(tx, "insert", &subject).await
    }

    async fn insert_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.insert_record(snapshot).await
    }
    async fn update_snapshot(&self, snapshot: &Snapshot) -> Result<i64, StoreError> {
        self.update_record(snapshot).await
    }
    async fn get_snapshot(&self, snapshot_id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.get_record(snapshot_id).await
    }
    async fn list_snapshots(&self, query: &RecordQuery) -> Result<Vec<Snapshot>, StoreError> {
        self.list_records(query).await
    }
    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<bool, StoreError> {
        self.delete_record_and_map::<Snapshot>(snapshot_id).await
    }

    async fn insert_volume(&self, volume: &Volume) -> Result<(), StoreError> {
        self.insert_record(volume).await
    }
    async fn update_volume(&self, volume: &Volume) -> Result<i64, StoreError> {
        self.update_record(volume).await
    }
    async fn get_volume(&self, volume_id: &str) -> Result<Option<Volume>, StoreError> {
        self.get_record(volume_id).await
    }
    async fn list_volumes(&self, query: &RecordQuery) -> Result<Vec<Volume>, StoreError> {
        self.list_records(query).await
    }
    async fn delete_volume(&self, volume_id: &str) -> Result<bool, StoreError> {
        self.delete_record_and_map::<Volume>(volume_id).await
    }

    async fn insert_instance(&self, instance: &Instance) -> Result<(), StoreError> {
        self.insert_record(instance).await
    }
    async fn update_instance(&self, instance: &Instance) -> Result<i64, StoreError> {
        self.update_record(instance).await
    }
    async fn get_instance(&self, instance_id: &str) -> Result<Option<Instance>, StoreError> {
        self.get_record(instance_id).await
    }
    async fn list_instances(&self, query: &RecordQuery) -> Result<Vec<Instance>, StoreError> {
        self.list_records(query).await
    }

    async fn insert_task(&self, task: &Task) -> Result<(), StoreError> {
        self.insert_record(task).await
    }
    async fn update_task(&self, task: &Task) -> Result<i64, StoreError> {
        self.update_record(task).await
    }
    async fn get_task(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        self.get_record(task_id).await
    }

    async fn claim_task(
        &self,
        holder: &LeaseHolder,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<(Task, Lease)>, StoreError> {
        let subject = "a task lease";
        let failed = |error: sqlx::Error| backend("claim", subject, error);
        let expires_ms = now_ms.saturating_add(lease_ms);
        let mut tx = self.begin("claim", subject).await?;
        // Candidates' task rows are locked as they are picked, and rows
        // another node is claiming (or fenced-writing) right now are
        // skipped; the conditional upsert of the lease row decides.
        let text = sql::select_claimable_tasks("FOR UPDATE OF r SKIP LOCKED");
        let mut statement = sqlx::query_scalar::<_, String>(AssertSqlSafe(text))
            .bind(<Task as Record>::KIND)
            .bind(now_ms)
            .bind(&holder.node_id)
            .bind(&holder.run_id)
            .bind(sql::limit(CLAIM_CANDIDATES));
        for state in sql::UNFINISHED_TASK_STATES {
            statement = statement.bind(sql::task_state_word(state));
        }
        let candidates = statement.fetch_all(&mut *tx).await.map_err(failed)?;
        for task_id in candidates {
            let name = task_lease_name(&task_id);
            let token: Option<i64> = sqlx::query_scalar(sql::ACQUIRE_LEASE)
                .bind(&name)
                .bind(&holder.node_id)
                .bind(&holder.run_id)
                .bind(expires_ms)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
            let Some(token) = token else {
                continue;
            };
            let row = sqlx::query(sql::SELECT_RECORD)
                .bind(<Task as Record>::KIND)
                .bind(&task_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
            let Some(row) = row else {
                continue;
            };
            let task: Task = decode_record_row(&row)?;
            commit(tx, "claim", &name).await?;
            return Ok(Some((
                task,
                Lease {
                    name,
                    token,
                    expires_ms,
                },
            )));
        }
        commit(tx, "claim", subject).await?;
        Ok(None)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &LeaseHolder,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let expires_ms = now_ms.saturating_add(lease_ms);
        let token: Option<i64> = sqlx::query_scalar(sql::ACQUIRE_LEASE)
            .bind(name)
            .bind(&holder.node_id)
            .bind(&holder.run_id)
            .bind(expires_ms)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| backend("acquire", &format!("lease {name}"), error))?;
        Ok(token.map(|token| Lease {
            name: name.to_owned(),
            token,
            expires_ms,
        }))
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<i64, StoreError> {
        let expires_ms = now_ms.saturating_add(lease_ms);
        let renewed = sqlx::query(sql::RENEW_LEASE)
            .bind(&lease.name)
            .bind(lease.token)
            .bind(expires_ms)
            .execute(&self.pool)
            .await
            .map_err(|error| backend("renew", &format!("lease {}", lease.name), error))?;
        if renewed.rows_affected() == 1 {
            Ok(expires_ms)
        } else {
            Err(StoreError::LeaseLost(lease.name.clone()))
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(sql::RELEASE_LEASE)
            .bind(&lease.name)
            .bind(lease.token)
            .execute(&self.pool)
            .await
            .map_err(|error| backend("release", &format!("lease {}", lease.name), error))?;
        Ok(())
    }

    async fn update_task_fenced(&self, task: &Task, lease: &Lease) -> Result<i64, StoreError> {
        let subject = subject_of::<Task>(&task.task_id);
        let failed = |error: sqlx::Error| backend("update", &subject, error);
        let new_revision = next_revision(task.revision, &subject)?;
        let row = record_row(task, new_revision)?;
        let mut tx = self.begin("update", &subject).await?;
        // The task row first, then the lease row: the order a claim takes
        // them in, so the two never wait for each other in a cycle.
        let updated = bind_record_row(sqlx::query(sql::UPDATE_RECORD), &row)
            .bind(task.revision)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        if updated.rows_affected() != 1 {
            rollback(tx).await;
            return Err(StoreError::Conflict(row.id));
        }
        let held = sqlx::query(sql::HOLD_LEASE)
            .bind(&lease.name)
            .bind(lease.token)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        if held.rows_affected() != 1 {
            rollback(tx).await;
            return Err(StoreError::LeaseLost(lease.name.clone()));
        }
        commit(tx, "update", &subject).await?;
        Ok(new_revision)
    }

    async fn insert_bucket(&self, bucket: &Bucket) -> Result<(), StoreError> {
        self.insert_record(bucket).await
    }
    async fn update_bucket(&self, bucket: &Bucket) -> Result<i64, StoreError> {
        self.update_record(bucket).await
    }
    async fn get_bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        self.get_record(name).await
    }
    async fn list_buckets(&self, owner_id: &str) -> Result<Vec<Bucket>, StoreError> {
        let query = RecordQuery {
            region: None,
            owner_ids: Some(vec![owner_id.to_owned()]),
        };
        self.list_records(&query).await
    }
    async fn delete_bucket(&self, name: &str) -> Result<bool, StoreError> {
        // Exclusive on the bucket: writers of its objects and uploads hold it
        // shared until they commit, so the emptiness check below (a new
        // statement, a new snapshot) sees every object they stored.
        let subject = subject_of::<Bucket>(name);
        let failed = |error: sqlx::Error| backend("delete", &subject, error);
        let mut tx = self.begin("delete", &subject).await?;
        lock(&mut tx, &bucket_key(name), Lock::Exclusive, &failed).await?;
        let deleted = sqlx::query(sql::DELETE_EMPTY_BUCKET)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        commit(tx, "delete", &subject).await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn put_object(&self, object: &S3Object) -> Result<Option<S3Object>, StoreError> {
        let subject = object_subject(&object.bucket, &object.key);
        let doc = serde_json::to_string(object)
            .map_err(|error| StoreError::Backend(format!("cannot serialize {subject}: {error}")))?;
        let failed = |error: sqlx::Error| backend("write", &subject, error);
        let mut tx = self.begin("write", &subject).await?;
        // The key, so `previous` is what this write replaces; shared on the
        // bucket, so a concurrent DeleteBucket cannot miss this object.
        lock(
            &mut tx,
            &object_key(&object.bucket, &object.key),
            Lock::Exclusive,
            &failed,
        )
        .await?;
        lock(&mut tx, &bucket_key(&object.bucket), Lock::Shared, &failed).await?;
        let previous =
            object_in_tx(&mut tx, &object.bucket, &object.key, &subject, &failed).await?;
        let stored = upsert_object_in_tx(&mut tx, object, &doc, &failed).await?;
        if !stored {
            rollback(tx).await;
            return Err(StoreError::Conflict(object.bucket.clone()));
        }
        commit(tx, "write", &subject).await?;
        Ok(previous)
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<S3Object>, StoreError> {
        let subject = object_subject(bucket, key);
        let row = sqlx::query(sql::SELECT_OBJECT)
            .bind(bucket)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| backend("read", &subject, error))?;
        row.as_ref()
            .map(|row| decode_object_row(row, &subject))
            .transpose()
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<Option<S3Object>, StoreError> {
        let subject = object_subject(bucket, key);
        let failed = |error: sqlx::Error| backend("delete", &subject, error);
        let mut tx = self.begin("delete", &subject).await?;
        lock(&mut tx, &object_key(bucket, key), Lock::Exclusive, &failed).await?;
        let previous = object_in_tx(&mut tx, bucket, key, &subject, &failed).await?;
        sqlx::query(sql::DELETE_OBJECT)
            .bind(bucket)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        commit(tx, "delete", &subject).await?;
        Ok(previous)
    }

    async fn update_object_if(
        &self,
        object: &S3Object,
        expected: &S3Object,
    ) -> Result<bool, StoreError> {
        let subject = object_subject(&object.bucket, &object.key);
        let doc = serde_json::to_string(object)
            .map_err(|error| StoreError::Backend(format!("cannot serialize {subject}: {error}")))?;
        let failed = |error: sqlx::Error| backend("write", &subject, error);
        let mut tx = self.begin("write", &subject).await?;
        lock(
            &mut tx,
            &object_key(&object.bucket, &object.key),
            Lock::Exclusive,
            &failed,
        )
        .await?;
        let current = object_in_tx(&mut tx, &object.bucket, &object.key, &subject, &failed).await?;
        if current.as_ref() != Some(expected) {
            rollback(tx).await;
            return Ok(false);
        }
        upsert_object_in_tx(&mut tx, object, &doc, &failed).await?;
        commit(tx, "write", &subject).await?;
        Ok(true)
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<S3Object>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let subject = format!("objects of bucket {bucket}");
        let rows = sqlx::query(sql::LIST_OBJECTS)
            .bind(bucket)
            .bind(prefix)
            .bind(after.unwrap_or(""))
            .bind(sql::limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", &subject, error))?;
        rows.iter()
            .map(|row| decode_object_row(row, &subject))
            .collect()
    }

    async fn list_unfinished_tasks(&self) -> Result<Vec<Task>, StoreError> {
        let text = sql::select_records_in_states(sql::UNFINISHED_TASK_STATES.len());
        let mut statement = sqlx::query(AssertSqlSafe(text)).bind(<Task as Record>::KIND);
        for state in sql::UNFINISHED_TASK_STATES {
            statement = statement.bind(sql::task_state_word(state));
        }
        let rows = statement
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", "unfinished tasks", error))?;
        rows.iter().map(decode_record_row).collect()
    }

    async fn list_tasks_by_owner(
        &self,
        owner_id: &str,
        region: &str,
        created_since_ms: i64,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(sql::SELECT_TASKS_BY_OWNER)
            .bind(<Task as Record>::KIND)
            .bind(region)
            .bind(owner_id)
            .bind(created_since_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", &format!("tasks of {owner_id}"), error))?;
        rows.iter().map(decode_record_row).collect()
    }

    async fn put_block(&self, map_id: &str, index: i64, hash: &str) -> Result<(), StoreError> {
        sqlx::query(sql::PUT_BLOCK)
            .bind(map_id)
            .bind(index)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(|error| backend("write", &format!("block {index} of {map_id}"), error))?;
        Ok(())
    }

    async fn put_blocks(&self, map_id: &str, entries: &[(i64, String)]) -> Result<(), StoreError> {
        let subject = format!("{} blocks of {map_id}", entries.len());
        let failed = |error: sqlx::Error| backend("write", &subject, error);
        let mut tx = self.begin("write", &subject).await?;
        for (index, hash) in entries {
            sqlx::query(sql::PUT_BLOCK)
                .bind(map_id)
                .bind(index)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        commit(tx, "write", &subject).await
    }

    async fn get_block(&self, map_id: &str, index: i64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(sql::SELECT_BLOCK)
            .bind(map_id)
            .bind(index)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| backend("read", &format!("block {index} of {map_id}"), error))
    }

    async fn list_blocks(
        &self,
        map_id: &str,
        start_index: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_as(sql::LIST_BLOCKS)
            .bind(map_id)
            .bind(start_index)
            .bind(sql::limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", &format!("block map {map_id}"), error))
    }

    async fn count_blocks(&self, map_id: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar(sql::COUNT_BLOCKS)
            .bind(map_id)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| backend("count", &format!("block map {map_id}"), error))
    }

    async fn copy_blocks(&self, from: &str, to: &str) -> Result<i64, StoreError> {
        if from == to {
            // Already an exact copy of itself; deleting first would empty it.
            return self.count_blocks(from).await;
        }
        let subject = format!("block map {from} to {to}");
        let failed = |error: sqlx::Error| backend("copy", &subject, error);
        let mut tx = self.begin("copy", &subject).await?;
        // Concurrent copies into one map would both delete, then collide.
        lock(&mut tx, &format!("map:{to}"), Lock::Exclusive, &failed).await?;
        sqlx::query(sql::DELETE_BLOCKS)
            .bind(to)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        let copied = sqlx::query(sql::COPY_BLOCKS)
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await
            .map_err(failed)?
            .rows_affected();
        commit(tx, "copy", &subject).await?;
        i64::try_from(copied)
            .map_err(|_| StoreError::Backend(format!("{subject}: {copied} rows copied")))
    }

    async fn merge_blocks(&self, base: &str, into: &str) -> Result<(), StoreError> {
        if base == into {
            return Ok(());
        }
        // One statement, so one (implicit) transaction.
        sqlx::query(sql::MERGE_BLOCKS)
            .bind(base)
            .bind(into)
            .execute(&self.pool)
            .await
            .map_err(|error| backend("merge", &format!("block map {base} into {into}"), error))?;
        Ok(())
    }

    async fn delete_blocks(&self, map_id: &str) -> Result<(), StoreError> {
        sqlx::query(sql::DELETE_BLOCKS)
            .bind(map_id)
            .execute(&self.pool)
            .await
            .map_err(|error| backend("delete", &format!("block map {map_id}"), error))?;
        Ok(())
    }

    async fn referenced_among(&self, hashes: &[String]) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::new();
        for chunk in hashes.chunks(sql::IN_CHUNK) {
            let text = sql::select_referenced_among(chunk.len());
            let mut query = sqlx::query(AssertSqlSafe(text));
            for hash in chunk {
                query = query.bind(hash.as_str());
            }
            let rows = query
                .fetch_all(&self.pool)
                .await
                .map_err(|error| backend("read", "referenced hashes", error))?;
            for row in &rows {
                found.push(
                    row.try_get::<String, _>(0)
                        .map_err(|error| backend("decode", "referenced hash", error))?,
                );
            }
        }
        Ok(found)
    }

    async fn delete_orphan_block_maps(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::DELETE_ORPHAN_BLOCKS)
            .execute(&self.pool)
            .await
            .map_err(|error| backend("delete", "orphan block maps", error))?;
        Ok(done.rows_affected())
    }

    async fn referenced_hashes(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(sql::REFERENCED_HASHES)
            .bind(after.unwrap_or(""))
            .bind(ZERO_BLOCK)
            .bind(sql::limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", "referenced block hashes", error))
    }

    async fn claim_client_token(
        &self,
        scope: &str,
        token: &str,
        fingerprint: &str,
        result: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let subject = format!("client token {token} in {scope}");
        for _ in 0..WRITE_ATTEMPTS {
            let claimed = sqlx::query(sql::CLAIM_CLIENT_TOKEN)
                .bind(scope)
                .bind(token)
                .bind(fingerprint)
                .bind(result)
                .bind(now_ms())
                .execute(&self.pool)
                .await
                .map_err(|error| backend("claim", &subject, error))?;
            if claimed.rows_affected() == 1 {
                return Ok(None);
            }
            let first: Option<(String, String)> = sqlx::query_as(sql::SELECT_CLIENT_TOKEN)
                .bind(scope)
                .bind(token)
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| backend("read", &subject, error))?;
            if first.is_some() {
                return Ok(first);
            }
            // Claimed, then removed (a reset) before it could be read: try again.
        }
        Err(gave_up("claim", &subject))
    }

    async fn insert_upload(&self, upload: &MultipartUpload) -> Result<(), StoreError> {
        let subject = upload_subject(&upload.upload_id);
        let doc = serde_json::to_string(upload)
            .map_err(|error| StoreError::Backend(format!("cannot serialize {subject}: {error}")))?;
        let failed = |error: sqlx::Error| backend("insert", &subject, error);
        let mut tx = self.begin("insert", &subject).await?;
        // Shared on the bucket, as for put_object.
        lock(&mut tx, &bucket_key(&upload.bucket), Lock::Shared, &failed).await?;
        let result = sqlx::query(sql::INSERT_UPLOAD)
            .bind(&upload.upload_id)
            .bind(&upload.bucket)
            .bind(&upload.key)
            .bind(upload.initiated_ms)
            .bind(MultipartUpload::RECORD_VERSION)
            .bind(&doc)
            .execute(&mut *tx)
            .await;
        // Dropping `tx` unfinished rolls it back.
        match result {
            Ok(result) if result.rows_affected() == 1 => commit(tx, "insert", &subject).await,
            Ok(_) => Err(StoreError::Conflict(upload.bucket.clone())),
            Err(sqlx::Error::Database(error)) if error.kind() == ErrorKind::UniqueViolation => {
                Err(StoreError::DuplicateId(upload.upload_id.clone()))
            }
            Err(error) => Err(backend("insert", &subject, error)),
        }
    }

    async fn get_upload(&self, upload_id: &str) -> Result<Option<MultipartUpload>, StoreError> {
        let subject = upload_subject(upload_id);
        let row = sqlx::query(sql::SELECT_UPLOAD)
            .bind(upload_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| backend("read", &subject, error))?;
        row.as_ref()
            .map(|row| decode_doc(row, &subject, MultipartUpload::RECORD_VERSION))
            .transpose()
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after_key: &str,
        after_upload_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MultipartUpload>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let subject = format!("multipart uploads of bucket {bucket}");
        let statement = match after_upload_id {
            Some(upload_id) => sqlx::query(sql::LIST_UPLOADS_AFTER_UPLOAD)
                .bind(bucket)
                .bind(prefix)
                .bind(after_key)
                .bind(upload_id),
            None => sqlx::query(sql::LIST_UPLOADS_AFTER_KEY)
                .bind(bucket)
                .bind(prefix)
                .bind(after_key),
        };
        let rows = statement
            .bind(sql::limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", &subject, error))?;
        rows.iter()
            .map(|row| decode_doc(row, &subject, MultipartUpload::RECORD_VERSION))
            .collect()
    }

    async fn uploads_initiated_before(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<MultipartUpload>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let subject = "abandoned multipart uploads";
        let rows = sqlx::query(sql::LIST_UPLOADS_BEFORE)
            .bind(before_ms)
            .bind(sql::limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", subject, error))?;
        rows.iter()
            .map(|row| decode_doc(row, subject, MultipartUpload::RECORD_VERSION))
            .collect()
    }

    async fn put_part(&self, part: &UploadPart) -> Result<Option<UploadPart>, StoreError> {
        let subject = format!(
            "part {} of {}",
            part.part_number,
            upload_subject(&part.upload_id)
        );
        let doc = serde_json::to_string(part)
            .map_err(|error| StoreError::Backend(format!("cannot serialize {subject}: {error}")))?;
        let failed = |error: sqlx::Error| backend("write", &subject, error);
        let mut tx = self.begin("write", &subject).await?;
        // This part's number, so the previous part read is the one replaced;
        // shared on the upload, so completing or aborting it waits.
        lock(
            &mut tx,
            &format!("part:{}:{}", part.upload_id, part.part_number),
            Lock::Exclusive,
            &failed,
        )
        .await?;
        lock(&mut tx, &upload_key(&part.upload_id), Lock::Shared, &failed).await?;
        let previous = sqlx::query(sql::SELECT_PART)
            .bind(&part.upload_id)
            .bind(part.part_number)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
        let previous = previous
            .as_ref()
            .map(|row| decode_doc(row, &subject, UploadPart::RECORD_VERSION))
            .transpose()?;
        let stored = sqlx::query(sql::UPSERT_PART)
            .bind(&part.upload_id)
            .bind(part.part_number)
            .bind(UploadPart::RECORD_VERSION)
            .bind(&doc)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        if stored.rows_affected() != 1 {
            rollback(tx).await;
            return Err(StoreError::Conflict(part.upload_id.clone()));
        }
        commit(tx, "write", &subject).await?;
        Ok(previous)
    }

    async fn list_parts(
        &self,
        upload_id: &str,
        after: i32,
        limit: usize,
    ) -> Result<Vec<UploadPart>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let subject = format!("parts of {}", upload_subject(upload_id));
        let rows = sqlx::query(sql::LIST_PARTS)
            .bind(upload_id)
            .bind(after)
            .bind(sql::limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", &subject, error))?;
        rows.iter()
            .map(|row| decode_doc(row, &subject, UploadPart::RECORD_VERSION))
            .collect()
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        object: &S3Object,
    ) -> Result<CompletedUpload, StoreError> {
        let subject = upload_subject(upload_id);
        let doc = serde_json::to_string(object)
            .map_err(|error| StoreError::Backend(format!("cannot serialize {subject}: {error}")))?;
        let failed = |error: sqlx::Error| backend("complete", &subject, error);
        let mut tx = self.begin("complete", &subject).await?;
        // The upload (no part may change meanwhile), the object's key (as
        // put_object) and, shared, its bucket (which may not go meanwhile).
        lock(&mut tx, &upload_key(upload_id), Lock::Exclusive, &failed).await?;
        lock(
            &mut tx,
            &object_key(&object.bucket, &object.key),
            Lock::Exclusive,
            &failed,
        )
        .await?;
        lock(&mut tx, &bucket_key(&object.bucket), Lock::Shared, &failed).await?;
        let upload = sqlx::query(sql::SELECT_UPLOAD)
            .bind(upload_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
        if upload.is_none() {
            rollback(tx).await;
            return Err(StoreError::Conflict(upload_id.to_owned()));
        }
        let rows = sqlx::query(sql::LIST_PARTS)
            .bind(upload_id)
            .bind(0_i32)
            .bind(i64::MAX)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
        let parts: Vec<UploadPart> = rows
            .iter()
            .map(|row| decode_doc(row, &subject, UploadPart::RECORD_VERSION))
            .collect::<Result<_, _>>()?;
        let current: HashSet<&str> = parts.iter().map(|part| part.file_name.as_str()).collect();
        let used: HashSet<&str> = object
            .parts
            .iter()
            .map(|part| part.file_name.as_str())
            .collect();
        if !used.iter().all(|file| current.contains(file)) {
            // A part the object names was replaced (or never was one).
            rollback(tx).await;
            return Err(StoreError::Conflict(upload_id.to_owned()));
        }
        let replaced =
            object_in_tx(&mut tx, &object.bucket, &object.key, &subject, &failed).await?;
        let stored = upsert_object_in_tx(&mut tx, object, &doc, &failed).await?;
        if !stored {
            rollback(tx).await;
            return Err(StoreError::Conflict(object.bucket.clone()));
        }
        for statement in [sql::DELETE_PARTS, sql::DELETE_UPLOAD] {
            sqlx::query(statement)
                .bind(upload_id)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        commit(tx, "complete", &subject).await?;
        let unused_parts = parts
            .into_iter()
            .filter(|part| !used.contains(part.file_name.as_str()))
            .collect();
        Ok(CompletedUpload {
            replaced,
            unused_parts,
        })
    }

    async fn delete_upload(&self, upload_id: &str) -> Result<Option<Vec<UploadPart>>, StoreError> {
        let subject = upload_subject(upload_id);
        let failed = |error: sqlx::Error| backend("delete", &subject, error);
        let mut tx = self.begin("delete", &subject).await?;
        lock(&mut tx, &upload_key(upload_id), Lock::Exclusive, &failed).await?;
        let upload = sqlx::query(sql::SELECT_UPLOAD)
            .bind(upload_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
        if upload.is_none() {
            rollback(tx).await;
            return Ok(None);
        }
        let rows = sqlx::query(sql::LIST_PARTS)
            .bind(upload_id)
            .bind(0_i32)
            .bind(i64::MAX)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
        let parts: Vec<UploadPart> = rows
            .iter()
            .map(|row| decode_doc(row, &subject, UploadPart::RECORD_VERSION))
            .collect::<Result<_, _>>()?;
        for statement in [sql::DELETE_PARTS, sql::DELETE_UPLOAD] {
            sqlx::query(statement)
                .bind(upload_id)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        commit(tx, "delete", &subject).await?;
        Ok(Some(parts))
    }
}

/// The engine behind every kind of document record, and transactions.
impl PostgresStore {
    async fn insert_record<T: Record>(&self, record: &T) -> Result<(), StoreError> {
        let row = record_row(record, record.revision())?;
        let inserted = bind_record_row(sqlx::query(sql::INSERT_RECORD), &row)
            .execute(&self.pool)
            .await
            .map_err(|error| backend("insert", &subject_of::<T>(&row.id), error))?;
        if inserted.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::DuplicateId(row.id))
        }
    }

    /// Replaces the record if its stored revision is still `record`'s, and
    /// stores it with the next one.
    async fn update_record<T: Record>(&self, record: &T) -> Result<i64, StoreError> {
        let subject = subject_of::<T>(record.id());
        let new_revision = next_revision(record.revision(), &subject)?;
        let row = record_row(record, new_revision)?;
        let updated = bind_record_row(sqlx::query(sql::UPDATE_RECORD), &row)
            .bind(record.revision())
            .execute(&self.pool)
            .await
            .map_err(|error| backend("update", &subject, error))?;
        if updated.rows_affected() == 1 {
            Ok(new_revision)
        } else {
            Err(StoreError::Conflict(row.id))
        }
    }

    async fn get_record<T: Record>(&self, id: &str) -> Result<Option<T>, StoreError> {
        let row = sqlx::query(sql::SELECT_RECORD)
            .bind(T::KIND)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| backend("read", &subject_of::<T>(id), error))?;
        row.as_ref().map(decode_record_row).transpose()
    }

    async fn list_records<T: Record>(&self, query: &RecordQuery) -> Result<Vec<T>, StoreError> {
        let Some((text, binds)) = sql::list_records(T::KIND, query) else {
            return Ok(Vec::new());
        };
        let mut statement = sqlx::query(AssertSqlSafe(text));
        for value in binds {
            statement = statement.bind(value);
        }
        let rows = statement
            .fetch_all(&self.pool)
            .await
            .map_err(|error| backend("list", &format!("{}s", T::KIND), error))?;
        rows.iter().map(decode_record_row).collect()
    }

    /// Deletes the record and the block map under its ID, in one
    /// transaction. The map goes even when the record was already gone.
    async fn delete_record_and_map<T: Record>(&self, id: &str) -> Result<bool, StoreError> {
        let subject = subject_of::<T>(id);
        let failed = |error: sqlx::Error| backend("delete", &subject, error);
        let mut tx = self.begin("delete", &subject).await?;
        let deleted = sqlx::query(sql::DELETE_RECORD)
            .bind(T::KIND)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(failed)?
            .rows_affected();
        sqlx::query(sql::DELETE_BLOCKS)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        commit(tx, "delete", &subject).await?;
        Ok(deleted == 1)
    }

    /// A READ COMMITTED transaction: each statement sees what was committed
    /// before it started; read-then-write sequences take [`lock`] first.
    async fn begin(
        &self,
        operation: &str,
        subject: &str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool
            .begin()
            .await
            .map_err(|error| backend(operation, subject, error))
    }
}

/// The object record of `(bucket, key)` as transaction `tx` sees it.
async fn object_in_tx(
    tx: &mut Transaction<'static, Postgres>,
    bucket: &str,
    key: &str,
    subject: &str,
    failed: &impl Fn(sqlx::Error) -> StoreError,
) -> Result<Option<S3Object>, StoreError> {
    let row = sqlx::query(sql::SELECT_OBJECT)
        .bind(bucket)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(failed)?;
    row.as_ref()
        .map(|row| decode_object_row(row, subject))
        .transpose()
}

/// Stores `object` (serialized as `doc`) in transaction `tx`, replacing the
/// record of its key; `false` when its bucket does not exist (nothing
/// stored).
async fn upsert_object_in_tx(
    tx: &mut Transaction<'static, Postgres>,
    object: &S3Object,
    doc: &str,
    failed: &impl Fn(sqlx::Error) -> StoreError,
) -> Result<bool, StoreError> {
    let stored = sqlx::query(sql::UPSERT_OBJECT)
        .bind(&object.bucket)
        .bind(&object.key)
        .bind(S3Object::RECORD_VERSION)
        .bind(doc)
        .execute(&mut **tx)
        .await
        .map_err(failed)?;
    Ok(stored.rows_affected() == 1)
}

/// How a transaction holds an advisory lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Against every other holder.
    Exclusive,
    /// Alongside other shared holders; against an exclusive one.
    Shared,
}

/// Takes a transaction-scoped advisory lock on `key` (released at commit or
/// rollback), waiting for a conflicting holder on any node. Keys are hashed
/// to PostgreSQL's 64-bit lock space: a collision only makes two unrelated
/// writers wait for each other.
async fn lock(
    tx: &mut Transaction<'static, Postgres>,
    key: &str,
    mode: Lock,
    failed: &impl Fn(sqlx::Error) -> StoreError,
) -> Result<(), StoreError> {
    let statement = match mode {
        Lock::Exclusive => "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        Lock::Shared => "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))",
    };
    sqlx::query(statement)
        .bind(key)
        .execute(&mut **tx)
        .await
        .map_err(failed)?;
    Ok(())
}

fn bucket_key(bucket: &str) -> String {
    format!("bucket:{bucket}")
}

fn object_key(bucket: &str, key: &str) -> String {
    format!("object:{bucket}/{key}")
}

fn upload_key(upload_id: &str) -> String {
    format!("upload:{upload_id}")
}

/// `url` with any password in its user info replaced by `***` and its
/// query string (libpq accepts `?password=...`) dropped, for messages and
/// logs.
pub fn redact_url(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(before, _)| before);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

async fn commit(
    tx: Transaction<'static, Postgres>,
    operation: &str,
    subject: &str,
) -> Result<(), StoreError> {
    tx.commit()
        .await
        .map_err(|error| backend(operation, subject, error))
}

/// Undoes a transaction that found a reason to refuse. Failing to roll back
/// is logged, not returned: the refusal is the answer, and the connection
/// rolls back anyway before it is used again.
async fn rollback(tx: Transaction<'static, Postgres>) {
    if let Err(error) = tx.rollback().await {
        tracing::warn!(%error, "metadata store rollback failed");
    }
}

/// Why an image insert inside `tx` inserted nothing: its ID or its live name
/// is taken.
async fn image_refusal(
    tx: &mut Transaction<'static, Postgres>,
    row: &ImageRow,
) -> Result<StoreError, StoreError> {
    let subject = format!("image {}", row.image_id);
    let existing = sqlx::query(sql::SELECT_IMAGE)
        .bind(&row.image_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|error| backend("read", &subject, error))?;
    if existing.is_some() {
        return Ok(StoreError::DuplicateId(row.image_id.clone()));
    }
    let holder: Option<String> = sqlx::query_scalar(sql::SELECT_LIVE_NAME_HOLDER)
        .bind(&row.region)
        .bind(&row.owner_id)
        .bind(&row.name)
        .bind(&row.image_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|error| backend("name lookup", &subject, error))?;
    Ok(match holder {
        Some(existing_image_id) => StoreError::ImageNameTaken { existing_image_id },
        None => StoreError::Backend(format!(
            "postgres insert of {subject}: refused, yet neither its ID nor its name is taken"
        )),
    })
}

fn bind_image_row<'q>(query: Query<'q>, row: &ImageRow) -> Query<'q> {
    query
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
}

fn bind_record_row<'q>(query: Query<'q>, row: &RecordRow) -> Query<'q> {
    query
        .bind(row.kind)
        .bind(&row.id)
        .bind(&row.region)
        .bind(&row.owner_id)
        .bind(row.state)
        .bind(row.created_ms)
        .bind(row.revision)
        .bind(row.record_version)
        .bind(&row.doc)
}

fn image_row(image: &Image, revision: i64) -> Result<ImageRow, StoreError> {
    ImageRow::new(image, revision).map_err(StoreError::Backend)
}

fn record_row<T: Record>(record: &T, revision: i64) -> Result<RecordRow, StoreError> {
    RecordRow::new(record, revision).map_err(StoreError::Backend)
}

/// `snapshot snap-...`: a record named in messages.
fn subject_of<T: Record>(id: &str) -> String {
    format!("{} {id}", T::KIND)
}

fn next_revision(revision: i64, subject: &str) -> Result<i64, StoreError> {
    revision
        .checked_add(1)
        .ok_or_else(|| StoreError::Backend(format!("{subject}: revision overflow")))
}

fn decode_row(row: &PgRow) -> Result<Image, StoreError> {
    let image_id: String = row
        .try_get("image_id")
        .map_err(column_error("image ?", "image_id"))?;
    let subject = format!("image {image_id}");
    let column = |name| column_error(&subject, name);
    let revision = row.try_get("revision").map_err(column("revision"))?;
    let record_version = row
        .try_get("record_version")
        .map_err(column("record_version"))?;
    let doc: String = row.try_get("doc").map_err(column("doc"))?;
    sql::decode_image(&image_id, revision, record_version, &doc).map_err(StoreError::Backend)
}

fn decode_record_row<T: Record>(row: &PgRow) -> Result<T, StoreError> {
    let unknown = format!("{} ?", T::KIND);
    let id: String = row.try_get("id").map_err(column_error(&unknown, "id"))?;
    let subject = subject_of::<T>(&id);
    let column = |name| column_error(&subject, name);
    let revision = row.try_get("revision").map_err(column("revision"))?;
    let record_version = row
        .try_get("record_version")
        .map_err(column("record_version"))?;
    let doc: String = row.try_get("doc").map_err(column("doc"))?;
    sql::decode_record(&id, revision, record_version, &doc).map_err(StoreError::Backend)
}

fn object_subject(bucket: &str, key: &str) -> String {
    format!("object {key:?} of bucket {bucket}")
}

fn decode_object_row(row: &PgRow, subject: &str) -> Result<S3Object, StoreError> {
    let column = |name| column_error(subject, name);
    let record_version: i64 = row
        .try_get("record_version")
        .map_err(column("record_version"))?;
    let doc: String = row.try_get("doc").map_err(column("doc"))?;
    if record_version != S3Object::RECORD_VERSION {
        return Err(StoreError::Backend(format!(
            "{subject}: unknown record version {record_version}"
        )));
    }
    serde_json::from_str(&doc)
        .map_err(|error| StoreError::Backend(format!("{subject}: cannot decode: {error}")))
}

fn upload_subject(upload_id: &str) -> String {
    format!("multipart upload {upload_id}")
}

/// A row of `record_version` and `doc` columns, decoded as `T` when its
/// version is `expected`.
fn decode_doc<T: serde::de::DeserializeOwned>(
    row: &PgRow,
    subject: &str,
    expected: i64,
) -> Result<T, StoreError> {
    let column = |name| column_error(subject, name);
    let record_version: i64 = row
        .try_get("record_version")
        .map_err(column("record_version"))?;
    let doc: String = row.try_get("doc").map_err(column("doc"))?;
    if record_version != expected {
        return Err(StoreError::Backend(format!(
            "{subject}: unknown record version {record_version}"
        )));
    }
    serde_json::from_str(&doc)
        .map_err(|error| StoreError::Backend(format!("{subject}: cannot decode: {error}")))
}

fn column_error<'a>(
    subject: &'a str,
    column: &'a str,
) -> impl FnOnce(sqlx::Error) -> StoreError + 'a {
    move |error| StoreError::Backend(format!("{subject}: bad column {column}: {error}"))
}

fn backend(operation: &str, subject: &str, error: sqlx::Error) -> StoreError {
    tracing::warn!(%error, operation, subject, "metadata store failure");
    StoreError::Backend(format!("postgres {operation} of {subject}: {error}"))
}

fn gave_up(operation: &str, subject: &str) -> StoreError {
    StoreError::Backend(format!(
        "postgres {operation} of {subject}: kept colliding with rows that vanished; gave up after {WRITE_ATTEMPTS} attempts"
    ))
}

/// The wall clock, for when a client token was first seen.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
