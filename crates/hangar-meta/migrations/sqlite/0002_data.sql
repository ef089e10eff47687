-- Snapshots, volumes, instances and tasks: one row per record, in one table
-- keyed by kind (`snapshot`, `volume`, `instance`, `task`) and ID. As for
-- images, `doc` is the serde_json form of the hangar-core record (the source
-- of truth), `record_version` the version of that form (`Snapshot::
-- RECORD_VERSION`, ...), `revision` guards read-modify-write cycles, and the
-- other columns copy the fields listings narrow or order by. `created_ms` is
-- the record's own moment of creation (a snapshot's start, a volume's
-- creation, an instance's launch, a task's creation): tasks are resumed
-- oldest first.
--
-- Keep this portable: the PostgreSQL engine carries the same schema and the
-- engines share the query text.
CREATE TABLE records (
    kind           TEXT   NOT NULL,
    id             TEXT   NOT NULL,
    region         TEXT   NOT NULL,
    owner_id       TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    created_ms     BIGINT NOT NULL,
    revision       BIGINT NOT NULL,
    record_version BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE INDEX records_region_owner ON records (kind, region, owner_id);

-- Unfinished tasks, oldest first, at start-up.
CREATE INDEX records_state ON records (kind, state, created_ms);

-- Block maps: for a snapshot or volume ID (`map_id`), which block holds the
-- data at each 512 KiB index. `hash` is the block's hex SHA-256, or `zero`
-- (`ZERO_BLOCK`) for a block of zeros that is not stored. A map has no
-- foreign key to its record (the two are written independently, a map
-- possibly first); deleting a snapshot or volume deletes its map in the same
-- transaction.
CREATE TABLE block_maps (
    map_id      TEXT   NOT NULL,
    block_index BIGINT NOT NULL,
    hash        TEXT   NOT NULL,
    PRIMARY KEY (map_id, block_index)
);

-- The block collector's mark phase walks the distinct hashes in order.
CREATE INDEX block_maps_hash ON block_maps (hash);

-- Idempotency tokens (`ClientToken`): the first request with a token in a
-- scope records a fingerprint of its parameters and its result; retries
-- find them here.
CREATE TABLE client_tokens (
    scope       TEXT   NOT NULL,
    token       TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    result      TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (scope, token)
);
