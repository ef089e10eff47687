-- The PostgreSQL engine's schema: the same tables, columns and indexes as
-- migrations/sqlite/0001..0006 brought up to date (the engines share the
-- query text in src/sql.rs), in one step since this engine starts here.
--
-- Every TEXT column that is compared, ordered or paginated on is declared
-- `COLLATE "C"`: byte (UTF-8) order, as SQLite compares TEXT and as S3 and
-- EC2 list. The database's default collation (often en_US.UTF-8) would sort
-- `B` after `a` and make pagination disagree with the SQLite engine.

-- Images: `doc` is the serde_json form of hangar-core's `Image` (the source
-- of truth); the other columns copy what is indexed or constrained.
CREATE TABLE images (
    image_id       TEXT COLLATE "C" PRIMARY KEY,
    region         TEXT COLLATE "C" NOT NULL,
    owner_id       TEXT COLLATE "C" NOT NULL,
    owner_alias    TEXT COLLATE "C" NULL,
    name           TEXT COLLATE "C" NOT NULL,
    state          TEXT COLLATE "C" NOT NULL,
    created_ms     BIGINT,
    revision       BIGINT NOT NULL,
    record_version BIGINT NOT NULL,
    doc            TEXT   NOT NULL
);

CREATE INDEX images_region_owner ON images (region, owner_id);

CREATE INDEX images_region_alias ON images (region, owner_alias);

CREATE INDEX images_region_owner_image ON images (region, owner_id, image_id);

-- An owner's live (not deregistered) images in a region have distinct names.
-- The index enforces it across every node: of two concurrent registrations
-- the second waits for the first to commit and then finds the name taken.
CREATE UNIQUE INDEX images_live_name ON images (region, owner_id, name)
    WHERE state <> 'deregistered';

-- Snapshots, volumes, instances, tasks and buckets, keyed by kind and ID.
CREATE TABLE records (
    kind           TEXT COLLATE "C" NOT NULL,
    id             TEXT COLLATE "C" NOT NULL,
    region         TEXT COLLATE "C" NOT NULL,
    owner_id       TEXT COLLATE "C" NOT NULL,
    state          TEXT COLLATE "C" NOT NULL,
    created_ms     BIGINT NOT NULL,
    revision       BIGINT NOT NULL,
    record_version BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE INDEX records_region_owner ON records (kind, region, owner_id);

CREATE INDEX records_state ON records (kind, state, created_ms);

-- Block maps: which block holds the data at each 512 KiB index of a
-- snapshot or volume. (No index on `hash`: see sqlite/0004.)
CREATE TABLE block_maps (
    map_id      TEXT COLLATE "C" NOT NULL,
    block_index BIGINT NOT NULL,
    hash        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (map_id, block_index)
);

-- Idempotency tokens (`ClientToken`).
CREATE TABLE client_tokens (
    scope       TEXT COLLATE "C" NOT NULL,
    token       TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT   NOT NULL,
    result      TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (scope, token)
);

-- S3 objects: one row per (bucket, key), listed in key (byte) order.
CREATE TABLE objects (
    bucket         TEXT COLLATE "C" NOT NULL,
    object_key     TEXT COLLATE "C" NOT NULL,
    record_version BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (bucket, object_key)
);

-- S3 multipart uploads in progress and their parts.
CREATE TABLE multipart_uploads (
    upload_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    bucket         TEXT COLLATE "C" NOT NULL,
    object_key     TEXT COLLATE "C" NOT NULL,
    initiated_ms   BIGINT NOT NULL,
    record_version BIGINT NOT NULL,
    doc            TEXT   NOT NULL
);

CREATE INDEX multipart_uploads_by_key ON multipart_uploads (bucket, object_key, upload_id);

CREATE INDEX multipart_uploads_by_age ON multipart_uploads (initiated_ms);

CREATE TABLE multipart_parts (
    upload_id      TEXT COLLATE "C" NOT NULL,
    part_number    INTEGER NOT NULL,
    record_version BIGINT  NOT NULL,
    doc            TEXT    NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
