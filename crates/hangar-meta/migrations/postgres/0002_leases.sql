-- Leases: see migrations/sqlite/0007_leases.sql (the same table). Claims of
-- tasks lock candidate task rows with `FOR UPDATE SKIP LOCKED`, so nodes
-- claiming at once pass each other's candidates by instead of queueing on
-- them; the conditional upsert of the lease row is what decides.
CREATE TABLE leases (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    node_id    TEXT COLLATE "C" NOT NULL,
    run_id     TEXT COLLATE "C" NOT NULL,
    token      BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
