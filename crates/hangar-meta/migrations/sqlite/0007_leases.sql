-- Leases: which node runs a task (name `task/<task id>`) or the block
-- collector (`block-collector`) now, until when, and under which fencing
-- token. A claim takes a lease that is free (expired, released, or held by
-- an earlier run of the same node) and adds one to `token`; a released
-- lease keeps its row (expiry 0), so a token is never handed out twice for
-- one name and a holder that lost its lease can always tell.
--
-- Keep this portable: the PostgreSQL engine carries the same table (with
-- `COLLATE "C"` names) and the engines share the query text.
CREATE TABLE leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    node_id    TEXT   NOT NULL,
    run_id     TEXT   NOT NULL,
    token      BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
