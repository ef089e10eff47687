-- Images: one row per image. `doc` is the serde_json form of hangar-core's
-- `Image` (the source of truth); the other columns copy the fields that are
-- indexed or constrained. `record_version` is the version of `doc`'s format
-- (`Image::RECORD_VERSION`); `revision` guards read-modify-write cycles.
--
-- Keep this portable: the PostgreSQL engine's migrations/postgres/ carries
-- the same schema and the engines share the query text.
CREATE TABLE images (
    image_id       TEXT   PRIMARY KEY,
    region         TEXT   NOT NULL,
    owner_id       TEXT   NOT NULL,
    owner_alias    TEXT   NULL,
    name           TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    created_ms     BIGINT,
    revision       BIGINT NOT NULL,
    record_version BIGINT NOT NULL,
    doc            TEXT   NOT NULL
);

CREATE INDEX images_region_owner ON images (region, owner_id);

CREATE INDEX images_region_alias ON images (region, owner_alias);

-- An owner's live (not deregistered) images in a region have distinct names.
-- The index enforces it, so two concurrent registrations cannot both win.
CREATE UNIQUE INDEX images_live_name ON images (region, owner_id, name)
    WHERE state <> 'deregistered';
