//! Query text shared by the engines, and the mapping between records and
//! rows. Portable SQL only: `$n` placeholders, `BIGINT`/`TEXT`,
//! `ON CONFLICT ... DO NOTHING / DO UPDATE` (SQLite 3.24+, PostgreSQL 9.5+).
//! Every statement reads or writes whole rows in the column order below.

use hangar_core::model::{Bucket, Image, Instance, Snapshot, Task, TaskState, Volume};
use hangar_core::repo::{ImageListQuery, RecordQuery};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most values bound in one `IN (...)` list. SQLite's default limit on
/// host parameters is 32766 (999 before 3.32), PostgreSQL's 65535.
pub(crate) const IN_CHUNK: usize = 500;

/// Columns a read returns, in this order.
const READ_COLUMNS: &str = "image_id, revision, record_version, doc";

/// Inserts a row, or does nothing when it would break the primary key or the
/// live-name index; the caller then looks up which one it was.
/// Binds: the ten columns of [`ImageRow`] in declaration order.
pub(crate) const INSERT_IMAGE: &str = "INSERT INTO images \
     (image_id, region, owner_id, owner_alias, name, state, created_ms, revision, record_version, doc) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT DO NOTHING";

/// Replaces a row whose revision is still `$11`. Binds: the ten columns of
/// [`ImageRow`] (its `revision` is the new one), then the expected revision.
/// Affects no row when the image is gone or its revision moved on.
pub(crate) const UPDATE_IMAGE: &str = "UPDATE images SET \
     region = $2, owner_id = $3, owner_alias = $4, name = $5, state = $6, created_ms = $7, \
     revision = $8, record_version = $9, doc = $10 \
     WHERE image_id = $1 AND revision = $11";

pub(crate) const SELECT_IMAGE: &str =
    "SELECT image_id, revision, record_version, doc FROM images WHERE image_id = $1";

/// The live image (other than `$4`) holding a name: who an `ImageNameTaken`
/// points at.
pub(crate) const SELECT_LIVE_NAME_HOLDER: &str = "SELECT image_id FROM images \
     WHERE region = $1 AND owner_id = $2 AND name = $3 AND state <> 'deregistered' \
     AND image_id <> $4 \
     ORDER BY image_id LIMIT 1";

/// What `reset` runs, in one transaction.
pub(crate) const DELETE_ALL: [&str; 7] = [
    "DELETE FROM images",
    "DELETE FROM objects",
    "DELETE FROM multipart_parts",
    "DELETE FROM multipart_uploads",
    "DELETE FROM records",
    "DELETE FROM block_maps",
    "DELETE FROM client_tokens",
];

/// The indexed columns of an image plus its serialized form, ready to bind.
#[derive(Debug, Clone)]
pub(crate) struct ImageRow {
    pub image_id: String,
    pub region: String,
    pub owner_id: String,
    pub owner_alias: Option<String>,
    pub name: String,
    pub state: &'static str,
    pub created_ms: i64,
    pub revision: i64,
    pub record_version: i64,
    pub doc: String,
}

impl ImageRow {
    /// The row for `image` stored at `revision` (the stored document carries
    /// that revision too, so a later read returns it).
    pub(crate) fn new(image: &Image, revision: i64) -> Result<Self, String> {
        let doc = if image.revision == revision {
            serde_json::to_string(image)
        } else {
            let mut stored = image.clone();
            stored.revision = revision;
            serde_json::to_string(&stored)
        }
        .map_err(|error| format!("cannot serialize image {}: {error}", image.image_id))?;
        Ok(Self {
            image_id: image.image_id.clone(),
            region: image.region.clone(),
            owner_id: image.owner_id.clone(),
            owner_alias: image.owner_alias.clone(),
            name: image.name.clone(),
            state: image.state.as_str(),
            created_ms: image.creation_ms,
            revision,
            record_version: Image::RECORD_VERSION,
            doc,
        })
    }
}

/// Turns a stored row back into an image, refusing a document format this
/// build does not know. The `revision` column wins over the document's copy.
pub(crate) fn decode_image(
    image_id: &str,
    revision: i64,
    record_version: i64,
    doc: &str,
) -> Result<Image, String> {
    if record_version != Image::RECORD_VERSION {
        return Err(format!(
            "image {image_id} is stored with record version {record_version}; \
             this build reads record version {}",
            Image::RECORD_VERSION
        ));
    }
    let mut image: Image = serde_json::from_str(doc)
        .map_err(|error| format!("image {image_id} has an unreadable record: {error}"))?;
    image.revision = revision;
    Ok(image)
}

/// `$first, $first+1, ...` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT ... WHERE image_id IN ($1, ..., $count)`.
/// Which of `count` hashes some block map references.
pub(crate) fn select_referenced_among(count: usize) -> String {
    format!(
        "SELECT DISTINCT hash FROM block_maps WHERE hash IN ({})",
        placeholders(1, count)
    )
}

pub(crate) fn select_images_by_id(count: usize) -> String {
    format!(
        "SELECT {READ_COLUMNS} FROM images WHERE image_id IN ({})",
        placeholders(1, count)
    )
}

/// A listing query and the values to bind to it, in order; `None` when the
/// query cannot match anything (an empty `IN` list).
/// Selects `image_id, revision` (the listing reads documents separately).
pub(crate) fn list_images(query: &ImageListQuery) -> Option<(String, Vec<&str>)> {
    let mut sql = "SELECT image_id, revision FROM images WHERE region = $1".to_string();
    let mut binds = vec![query.region.as_str()];
    for (column, values) in [
        ("owner_id", &query.owner_ids),
        ("owner_alias", &query.owner_aliases),
    ] {
        if let Some(values) = values {
            if values.is_empty() {
                return None;
            }
            sql.push_str(&format!(
                " AND {column} IN ({})",
                placeholders(binds.len() + 1, values.len())
            ));
            binds.extend(values.iter().map(String::as_str));
        }
    }
    if query.exclude_deregistered {
        sql.push_str(" AND state <> 'deregistered'");
    }
    sql.push_str(" ORDER BY image_id");
    Some((sql, binds))
}

// ---------------------------------------------------------------------------
// Document records: snapshots, volumes, instances, tasks, in `records`.

/// A record kept in the `records` table: its kind and the fields copied into
/// columns. The engines handle every kind through this one trait.
pub(crate) trait Record:
    Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
    /// The `kind` column, and the word naming the record in errors.
    const KIND: &'static str;
    /// The version of the stored form (`Snapshot::RECORD_VERSION`, ...).
    const RECORD_VERSION: i64;
    fn id(&self) -> &str;
    fn region(&self) -> &str;
    fn owner_id(&self) -> &str;
    fn state(&self) -> &'static str;
    /// When the record came to be; listings of tasks order by it.
    fn created_ms(&self) -> i64;
    fn revision(&self) -> i64;
    fn set_revision(&mut self, revision: i64);
}

impl Record for Snapshot {
    const KIND: &'static str = "snapshot";
    const RECORD_VERSION: i64 = Snapshot::RECORD_VERSION;
    fn id(&self) -> &str {
        &self.snapshot_id
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn owner_id(&self) -> &str {
        &self.owner_id
    }
    fn state(&self) -> &'static str {
        self.state.as_str()
    }
    fn created_ms(&self) -> i64 {
        self.start_ms
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }
}

impl Record for Volume {
    const KIND: &'static str = "volume";
    const RECORD_VERSION: i64 = Volume::RECORD_VERSION;
    fn id(&self) -> &str {
        &self.volume_id
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn owner_id(&self) -> &str {
        &self.owner_id
    }
    fn state(&self) -> &'static str {
        self.state.as_str()
    }
    fn created_ms(&self) -> i64 {
        self.create_ms
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }
}

impl Record for Instance {
    const KIND: &'static str = "instance";
    const RECORD_VERSION: i64 = Instance::RECORD_VERSION;
    fn id(&self) -> &str {
        &self.instance_id
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn owner_id(&self) -> &str {
        &self.owner_id
    }
    /// The stored state, not the one in effect now (see `Instance::state_at`).
    fn state(&self) -> &'static str {
        self.state.as_str()
    }
    fn created_ms(&self) -> i64 {
        self.launch_ms
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }
}

impl Record for Task {
    const KIND: &'static str = "task";
    const RECORD_VERSION: i64 = Task::RECORD_VERSION;
    fn id(&self) -> &str {
        &self.task_id
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn owner_id(&self) -> &str {
        &self.owner_id
    }
    fn state(&self) -> &'static str {
        task_state_word(self.state)
    }
    fn created_ms(&self) -> i64 {
        self.created_ms
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }
}

/// Buckets: the ID is the bucket name, so the primary key makes names unique
/// across every owner and region. The `state` column is always `active`.
impl Record for Bucket {
    const KIND: &'static str = "bucket";
    const RECORD_VERSION: i64 = Bucket::RECORD_VERSION;
    fn id(&self) -> &str {
        &self.name
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn owner_id(&self) -> &str {
        &self.owner_id
    }
    fn state(&self) -> &'static str {
        "active"
    }
    fn created_ms(&self) -> i64 {
        self.created_ms
    }
    fn revision(&self) -> i64 {
        self.revision
    }
    fn set_revision(&mut self, revision: i64) {
        self.revision = revision;
    }
}

/// The `state` column of a task (the word serde writes, too).
pub(crate) fn task_state_word(state: TaskState) -> &'static str {
    match state {
        TaskState::Queued => "queued",
        TaskState::Running => "running",
        TaskState::Completed => "completed",
        TaskState::Failed => "failed",
    }
}

/// The task states `list_unfinished_tasks` returns.
pub(crate) const UNFINISHED_TASK_STATES: [TaskState; 2] = [TaskState::Queued, TaskState::Running];

/// Columns a read of `records` returns, in this order.
const RECORD_READ_COLUMNS: &str = "id, revision, record_version, doc";

/// Inserts a row, or does nothing when the kind and ID exist.
/// Binds: the nine columns of [`RecordRow`] in declaration order.
pub(crate) const INSERT_RECORD: &str = "INSERT INTO records \
     (kind, id, region, owner_id, state, created_ms, revision, record_version, doc) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (kind, id) DO NOTHING";

/// Replaces a row whose revision is still `$10`. Binds: the nine columns of
/// [`RecordRow`] (its `revision` is the new one), then the expected revision.
pub(crate) const UPDATE_RECORD: &str = "UPDATE records SET \
     region = $3, owner_id = $4, state = $5, created_ms = $6, \
     revision = $7, record_version = $8, doc = $9 \
     WHERE kind = $1 AND id = $2 AND revision = $10";

/// Binds: kind, ID.
pub(crate) const SELECT_RECORD: &str =
    "SELECT id, revision, record_version, doc FROM records WHERE kind = $1 AND id = $2";

/// Binds: kind, ID.
pub(crate) const DELETE_RECORD: &str = "DELETE FROM records WHERE kind = $1 AND id = $2";

/// Deletes bucket `$1` only while it holds no object and no multipart
/// upload: one statement, so an object stored (or an upload created)
/// concurrently either keeps the bucket or is refused.
pub(crate) const DELETE_EMPTY_BUCKET: &str = "DELETE FROM records \
     WHERE kind = 'bucket' AND id = $1 \
     AND NOT EXISTS (SELECT 1 FROM objects WHERE bucket = $1) \
     AND NOT EXISTS (SELECT 1 FROM multipart_uploads WHERE bucket = $1)";

/// Columns an object read returns, in this order.
pub(crate) const SELECT_OBJECT: &str =
    "SELECT record_version, doc FROM objects WHERE bucket = $1 AND object_key = $2";

/// Stores object `($1, $2)` while bucket `$1` exists, replacing the row of
/// the same key. Binds: bucket, key, record version, document. Affects no
/// row when the bucket is gone.
pub(crate) const UPSERT_OBJECT: &str = "INSERT INTO objects \
     (bucket, object_key, record_version, doc) \
     SELECT $1, $2, $3, $4 \
     WHERE EXISTS (SELECT 1 FROM records WHERE kind = 'bucket' AND id = $1) \
     ON CONFLICT (bucket, object_key) DO UPDATE SET \
     record_version = excluded.record_version, doc = excluded.doc";

pub(crate) const DELETE_OBJECT: &str = "DELETE FROM objects WHERE bucket = $1 AND object_key = $2";

/// Objects of bucket `$1` whose key starts with `$2` and sorts after `$3`
/// (`''` for no bound: keys are never empty), in key order, at most `$4`.
/// `substr`/`length` count characters alike on both engines.
pub(crate) const LIST_OBJECTS: &str = "SELECT record_version, doc FROM objects \
     WHERE bucket = $1 AND substr(object_key, 1, length($2)) = $2 AND object_key > $3 \
     ORDER BY object_key LIMIT $4";

/// Stores upload `$1` while bucket `$2` exists. Binds: upload ID, bucket,
/// key, initiated, record version, document. Affects no row when the bucket
/// is gone (and fails on a duplicate ID).
pub(crate) const INSERT_UPLOAD: &str = "INSERT INTO multipart_uploads \
     (upload_id, bucket, object_key, initiated_ms, record_version, doc) \
     SELECT $1, $2, $3, $4, $5, $6 \
     WHERE EXISTS (SELECT 1 FROM records WHERE kind = 'bucket' AND id = $2)";

pub(crate) const SELECT_UPLOAD: &str =
    "SELECT record_version, doc FROM multipart_uploads WHERE upload_id = $1";

pub(crate) const DELETE_UPLOAD: &str = "DELETE FROM multipart_uploads WHERE upload_id = $1";

/// Uploads of bucket `$1` whose key starts with `$2`, with a key after `$3`
/// or (key `$3` and an upload ID after `$4`), in (key, upload ID) order, at
/// most `$5`.
pub(crate) const LIST_UPLOADS_AFTER_UPLOAD: &str = "SELECT record_version, doc \
     FROM multipart_uploads \
     WHERE bucket = $1 AND substr(object_key, 1, length($2)) = $2 \
     AND (object_key > $3 OR (object_key = $3 AND upload_id > $4)) \
     ORDER BY object_key, upload_id LIMIT $5";

/// Uploads of bucket `$1` whose key starts with `$2` and sorts after `$3`
/// (`''`: every key), in (key, upload ID) order, at most `$4`.
pub(crate) const LIST_UPLOADS_AFTER_KEY: &str = "SELECT record_version, doc \
     FROM multipart_uploads \
     WHERE bucket = $1 AND substr(object_key, 1, length($2)) = $2 AND object_key > $3 \
     ORDER BY object_key, upload_id LIMIT $4";

/// Uploads initiated before `$1`, oldest first, at most `$2`.
pub(crate) const LIST_UPLOADS_BEFORE: &str = "SELECT record_version, doc \
     FROM multipart_uploads WHERE initiated_ms < $1 \
     ORDER BY initiated_ms, upload_id LIMIT $2";

pub(crate) const SELECT_PART: &str = "SELECT record_version, doc FROM multipart_parts \
     WHERE upload_id = $1 AND part_number = $2";

/// Stores part `($1, $2)` while upload `$1` exists, replacing the row of the
/// same number. Binds: upload ID, part number, record version, document.
/// Affects no row when the upload is gone.
pub(crate) const UPSERT_PART: &str = "INSERT INTO multipart_parts \
     (upload_id, part_number, record_version, doc) \
     SELECT $1, $2, $3, $4 \
     WHERE EXISTS (SELECT 1 FROM multipart_uploads WHERE upload_id = $1) \
     ON CONFLICT (upload_id, part_number) DO UPDATE SET \
     record_version = excluded.record_version, doc = excluded.doc";

/// Parts of upload `$1` numbered above `$2`, in order, at most `$3`.
pub(crate) const LIST_PARTS: &str = "SELECT record_version, doc FROM multipart_parts \
     WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT $3";

pub(crate) const DELETE_PARTS: &str = "DELETE FROM multipart_parts WHERE upload_id = $1";

/// The indexed columns of a record plus its serialized form, ready to bind.
#[derive(Debug, Clone)]
pub(crate) struct RecordRow {
    pub kind: &'static str,
    pub id: String,
    pub region: String,
    pub owner_id: String,
    pub state: &'static str,
    pub created_ms: i64,
    pub revision: i64,
    pub record_version: i64,
    pub doc: String,
}

impl RecordRow {
    /// The row for `record` stored at `revision` (the stored document carries
    /// that revision too, so a later read returns it).
    pub(crate) fn new<T: Record>(record: &T, revision: i64) -> Result<Self, String> {
        let doc = if record.revision() == revision {
            serde_json::to_string(record)
        } else {
            let mut stored = record.clone();
            stored.set_revision(revision);
            serde_json::to_string(&stored)
        }
        .map_err(|error| format!("cannot serialize {} {}: {error}", T::KIND, record.id()))?;
        Ok(Self {
            kind: T::KIND,
            id: record.id().to_owned(),
            region: record.region().to_owned(),
            owner_id: record.owner_id().to_owned(),
            state: record.state(),
            created_ms: record.created_ms(),
            revision,
            record_version: T::RECORD_VERSION,
            doc,
        })
    }
}

/// Turns a stored row back into a record, refusing a document format this
/// build does not know. The `revision` column wins over the document's copy.
pub(crate) fn decode_record<T: Record>(
    id: &str,
    revision: i64,
    record_version: i64,
    doc: &str,
) -> Result<T, String> {
    let kind = T::KIND;
    if record_version != T::RECORD_VERSION {
        return Err(format!(
            "{kind} {id} is stored with record version {record_version}; \
             this build reads record version {}",
            T::RECORD_VERSION
        ));
    }
    let mut record: T = serde_json::from_str(doc)
        .map_err(|error| format!("{kind} {id} has an unreadable record: {error}"))?;
    record.set_revision(revision);
    Ok(record)
}

/// A listing of one kind of record and the values to bind to it, in order;
/// `None` when the query cannot match anything (an empty `IN` list).
pub(crate) fn list_records<'a>(
    kind: &'a str,
    query: &'a RecordQuery,
) -> Option<(String, Vec<&'a str>)> {
    let mut sql = format!("SELECT {RECORD_READ_COLUMNS} FROM records WHERE kind = $1");
    let mut binds = vec![kind];
    if let Some(region) = &query.region {
        binds.push(region);
        sql.push_str(&format!(" AND region = ${}", binds.len()));
    }
    if let Some(owner_ids) = &query.owner_ids {
        if owner_ids.is_empty() {
            return None;
        }
        sql.push_str(&format!(
            " AND owner_id IN ({})",
            placeholders(binds.len() + 1, owner_ids.len())
        ));
        binds.extend(owner_ids.iter().map(String::as_str));
    }
    sql.push_str(" ORDER BY id");
    Some((sql, binds))
}

/// Records of one kind in any of `states`, oldest first (ties by ID).
/// Binds: kind, then the states.
pub(crate) fn select_records_in_states(states: usize) -> String {
    format!(
        "SELECT {RECORD_READ_COLUMNS} FROM records WHERE kind = $1 AND state IN ({}) \
         ORDER BY created_ms, id",
        placeholders(2, states)
    )
}

/// The tasks of one owner in one region created at or after a moment,
/// newest first (ties by ID, descending). Binds: kind, region, owner,
/// earliest `created_ms`.
pub(crate) const SELECT_TASKS_BY_OWNER: &str = "SELECT id, revision, record_version, doc \
     FROM records WHERE kind = $1 AND region = $2 AND owner_id = $3 AND created_ms >= $4 \
     ORDER BY created_ms DESC, id DESC";

// ---------------------------------------------------------------------------
// Leases (see `migrations/sqlite/0007_leases.sql`).

/// Unfinished tasks whose lease is free for the claimer, oldest first, at
/// most `$5`; `lock` is appended (PostgreSQL: `FOR UPDATE OF r SKIP
/// LOCKED`; SQLite: nothing, its one writer transaction is enough). Binds:
/// kind, now, node ID, run ID, limit, then the unfinished states.
pub(crate) fn select_claimable_tasks(lock: &str) -> String {
    format!(
        "SELECT r.id FROM records r LEFT JOIN leases l ON l.name = '{prefix}' || r.id \
         WHERE r.kind = $1 AND r.state IN ({states}) \
         AND (l.name IS NULL OR l.expires_ms <= $2 OR (l.node_id = $3 AND l.run_id <> $4)) \
         ORDER BY r.created_ms, r.id LIMIT $5 {lock}",
        prefix = hangar_core::repo::TASK_LEASE_PREFIX,
        states = placeholders(6, UNFINISHED_TASK_STATES.len()),
    )
}

/// Takes a lease if it is free for the claimer: creates it with token 1,
/// or, when its holder's time is up (or that holder is an earlier run of
/// this node), moves it to the claimer with the next token. Returns the
/// token, no row when someone else holds it. One statement, so concurrent
/// claims of one name serialize on its row (PostgreSQL re-checks the
/// condition on the newest version after waiting). Binds: name, node ID,
/// run ID, expiry, now.
pub(crate) const ACQUIRE_LEASE: &str = "INSERT INTO leases \
     (name, node_id, run_id, token, expires_ms) VALUES ($1, $2, $3, 1, $4) \
     ON CONFLICT (name) DO UPDATE SET node_id = excluded.node_id, \
     run_id = excluded.run_id, token = leases.token + 1, expires_ms = excluded.expires_ms \
     WHERE leases.expires_ms <= $5 OR (leases.node_id = $2 AND leases.run_id <> $3) \
     RETURNING token";

/// A heartbeat: a new expiry while the token is current. Binds: name,
/// token, expiry.
pub(crate) const RENEW_LEASE: &str =
    "UPDATE leases SET expires_ms = $3 WHERE name = $1 AND token = $2";

/// Frees the lease while the token is current; the row (and so the token)
/// stays. Binds: name, token.
pub(crate) const RELEASE_LEASE: &str = "UPDATE leases SET expires_ms = 0, node_id = '', \
     run_id = '' WHERE name = $1 AND token = $2";

/// Inside a fenced write: matches (and, on PostgreSQL, locks until the
/// commit) the lease row only while the token is current, so a claim
/// cannot move the lease between this check and the commit. Binds: name,
/// token.
pub(crate) const HOLD_LEASE: &str =
    "UPDATE leases SET expires_ms = expires_ms WHERE name = $1 AND token = $2";

// ---------------------------------------------------------------------------
// Block maps.

/// Sets one entry. Binds: map ID, index, hash.
pub(crate) const PUT_BLOCK: &str = "INSERT INTO block_maps (map_id, block_index, hash) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (map_id, block_index) DO UPDATE SET hash = excluded.hash";

/// Binds: map ID, index.
pub(crate) const SELECT_BLOCK: &str =
    "SELECT hash FROM block_maps WHERE map_id = $1 AND block_index = $2";

/// One page of a map. Binds: map ID, first index, limit.
pub(crate) const LIST_BLOCKS: &str = "SELECT block_index, hash FROM block_maps \
     WHERE map_id = $1 AND block_index >= $2 \
     ORDER BY block_index LIMIT $3";

/// Binds: map ID.
pub(crate) const COUNT_BLOCKS: &str = "SELECT COUNT(*) FROM block_maps WHERE map_id = $1";

/// Binds: map ID.
pub(crate) const DELETE_BLOCKS: &str = "DELETE FROM block_maps WHERE map_id = $1";

/// Block map rows whose snapshot or volume record no longer exists.
pub(crate) const DELETE_ORPHAN_BLOCKS: &str = "DELETE FROM block_maps WHERE NOT EXISTS \
     (SELECT 1 FROM records r WHERE r.id = block_maps.map_id AND r.kind IN ('snapshot', 'volume'))";

/// Copies every entry of `$1` into `$2`, which must be empty (the engine
/// deletes it first, in the same transaction). Binds: from, to.
pub(crate) const COPY_BLOCKS: &str = "INSERT INTO block_maps (map_id, block_index, hash) \
     SELECT $2, block_index, hash FROM block_maps WHERE map_id = $1";

/// Copies every entry of `$1` whose index `$2` lacks into `$2`. (SQLite
/// needs the `WHERE` for `INSERT ... SELECT ... ON CONFLICT` to parse.)
/// Binds: base, into.
pub(crate) const MERGE_BLOCKS: &str = "INSERT INTO block_maps (map_id, block_index, hash) \
     SELECT $2, block_index, hash FROM block_maps WHERE map_id = $1 \
     ON CONFLICT (map_id, block_index) DO NOTHING";

/// One page of the distinct hashes any map references, zero blocks left
/// out. Binds: the hash to start after (`''` for the first page), the zero
/// block's word, limit. (PostgreSQL needs byte order on `hash`: `COLLATE "C"`.)
pub(crate) const REFERENCED_HASHES: &str = "SELECT DISTINCT hash FROM block_maps \
     WHERE hash > $1 AND hash <> $2 \
     ORDER BY hash LIMIT $3";

// ---------------------------------------------------------------------------
// Client tokens.

/// Records a token unless its scope already has it.
/// Binds: scope, token, fingerprint, result, created_ms.
pub(crate) const CLAIM_CLIENT_TOKEN: &str = "INSERT INTO client_tokens \
     (scope, token, fingerprint, result, created_ms) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (scope, token) DO NOTHING";

/// Binds: scope, token.
pub(crate) const SELECT_CLIENT_TOKEN: &str =
    "SELECT fingerprint, result FROM client_tokens WHERE scope = $1 AND token = $2";

/// Binds a `LIMIT`: SQL wants a signed 64-bit count.
pub(crate) fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use hangar_core::model::ImageState;

    /// The queries, the live-name index and the model agree on the word.
    #[test]
    fn deregistered_matches_the_model() {
        let word = format!("state <> '{}'", ImageState::Deregistered.as_str());
        for schema in [
            include_str!("../migrations/sqlite/0001_images.sql"),
            include_str!("../migrations/postgres/0001_schema.sql"),
        ] {
            assert!(schema.contains(&format!("WHERE {word}")));
        }
        assert!(SELECT_LIVE_NAME_HOLDER.contains(&word));
        let query = ImageListQuery {
            exclude_deregistered: true,
            ..ImageListQuery::default()
        };
        assert!(list_images(&query).expect("some").0.contains(&word));
    }

    #[test]
    fn listing_binds_in_placeholder_order() {
        let query = ImageListQuery {
            region: "r".into(),
            owner_ids: Some(vec!["a".into(), "b".into()]),
            owner_aliases: Some(vec!["amazon".into()]),
            exclude_deregistered: true,
        };
        let (sql, binds) = list_images(&query).expect("some");
        assert_eq!(
            sql,
            "SELECT image_id, revision FROM images WHERE region = $1 \
             AND owner_id IN ($2, $3) AND owner_alias IN ($4) \
             AND state <> 'deregistered' ORDER BY image_id"
        );
        assert_eq!(binds, ["r", "a", "b", "amazon"]);
    }

    #[test]
    fn an_empty_in_list_matches_nothing() {
        let query = ImageListQuery {
            region: "r".into(),
            owner_ids: Some(vec![]),
            ..ImageListQuery::default()
        };
        assert!(list_images(&query).is_none());
    }

    /// The `state` column of tasks holds the words serde writes.
    #[test]
    fn task_state_words_match_serde() {
        for state in [
            TaskState::Queued,
            TaskState::Running,
            TaskState::Completed,
            TaskState::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(state).expect("serialize"),
                serde_json::Value::from(task_state_word(state))
            );
            assert_eq!(
                UNFINISHED_TASK_STATES.contains(&state),
                !state.is_finished()
            );
        }
    }

    #[test]
    fn record_listing_binds_in_placeholder_order() {
        let query = RecordQuery {
            region: Some("r".into()),
            owner_ids: Some(vec!["a".into(), "b".into()]),
        };
        let (sql, binds) = list_records("volume", &query).expect("some");
        assert_eq!(
            sql,
            "SELECT id, revision, record_version, doc FROM records WHERE kind = $1 \
             AND region = $2 AND owner_id IN ($3, $4) ORDER BY id"
        );
        assert_eq!(binds, ["volume", "r", "a", "b"]);

        let query = RecordQuery {
            region: None,
            owner_ids: Some(vec!["a".into()]),
        };
        let (sql, binds) = list_records("snapshot", &query).expect("some");
        assert!(sql.ends_with("WHERE kind = $1 AND owner_id IN ($2) ORDER BY id"));
        assert_eq!(binds, ["snapshot", "a"]);

        let query = RecordQuery {
            region: Some("r".into()),
            owner_ids: Some(vec![]),
        };
        assert!(list_records("instance", &query).is_none());
    }

    #[test]
    fn record_rows_carry_the_stored_revision() {
        let task = Task {
            task_id: "task-1".into(),
            region: "r".into(),
            owner_id: "o".into(),
            state: TaskState::Running,
            work: hangar_core::model::TaskWork::BuildImage {
                image_id: "ami-1".into(),
                snapshots: vec![],
                snapshot_tags: vec![],
                description: None,
            },
            progress: 5,
            created_ms: 42,
            updated_ms: 43,
            attempts: 1,
            failure_reason: None,
            revision: 3,
        };
        let row = RecordRow::new(&task, 4).expect("row");
        assert_eq!(
            (
                row.kind,
                row.id.as_str(),
                row.state,
                row.created_ms,
                row.revision
            ),
            ("task", "task-1", "running", 42, 4)
        );
        let stored: Task = serde_json::from_str(&row.doc).expect("doc");
        assert_eq!(stored.revision, 4, "the document carries the new revision");
        // The column wins over the document.
        let read: Task = decode_record("task-1", 9, Task::RECORD_VERSION, &row.doc).expect("read");
        assert_eq!(
            read,
            Task {
                revision: 9,
                ..task
            }
        );
        let refused = decode_record::<Task>("task-1", 9, 99, &row.doc).expect_err("refused");
        assert!(refused.contains("99"), "{refused}");
    }

    #[test]
    fn id_lookup_numbers_its_placeholders() {
        assert_eq!(
            select_images_by_id(3),
            "SELECT image_id, revision, record_version, doc FROM images \
             WHERE image_id IN ($1, $2, $3)"
        );
    }
}
