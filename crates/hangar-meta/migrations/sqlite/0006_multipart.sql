-- S3 multipart uploads in progress and their parts. `doc` is the serde_json
-- form of `hangar_core::model::MultipartUpload` / `UploadPart` (the source
-- of truth), `record_version` the version of that form; the other columns
-- are what queries narrow and order by.
--
-- Uploads list by bucket, key and upload ID (upload IDs sort in order of
-- initiation), and the collector of abandoned uploads reads by age.
-- (As for `objects`, the PostgreSQL schema must declare `object_key` and
-- `upload_id` with `COLLATE "C"`.)
--
-- Keep this portable: the PostgreSQL engine carries the same schema and the
-- engines share the query text.
CREATE TABLE multipart_uploads (
    upload_id      TEXT   NOT NULL PRIMARY KEY,
    bucket         TEXT   NOT NULL,
    object_key     TEXT   NOT NULL,
    initiated_ms   BIGINT NOT NULL,
    record_version BIGINT NOT NULL,
    doc            TEXT   NOT NULL
);

CREATE INDEX multipart_uploads_by_key ON multipart_uploads (bucket, object_key, upload_id);

CREATE INDEX multipart_uploads_by_age ON multipart_uploads (initiated_ms);

-- One row per (upload, part number): uploading a part again replaces it.
CREATE TABLE multipart_parts (
    upload_id      TEXT    NOT NULL,
    part_number    INTEGER NOT NULL,
    record_version BIGINT  NOT NULL,
    doc            TEXT    NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
