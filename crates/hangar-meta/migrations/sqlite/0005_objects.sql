-- S3 objects: one row per (bucket, key). `doc` is the serde_json form of
-- `hangar_core::model::S3Object` (the source of truth), `record_version` the
-- version of that form. Listings read by bucket and key range, in key order:
-- the primary key serves them. (SQLite compares TEXT byte by byte, i.e. in
-- UTF-8 order, as S3 lists; the PostgreSQL schema must declare
-- `object_key` with `COLLATE "C"` for the same order.)
--
-- Keep this portable: the PostgreSQL engine carries the same schema and the
-- engines share the query text.
CREATE TABLE objects (
    bucket         TEXT   NOT NULL,
    object_key     TEXT   NOT NULL,
    record_version BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (bucket, object_key)
);
