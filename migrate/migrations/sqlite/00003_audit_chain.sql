-- Per-tenant hash chain over audit_events; see the PostgreSQL migration of the same
-- number.

-- +goose Up
CREATE TABLE audit_chain_heads (
    chain_id  TEXT    PRIMARY KEY,
    last_id   INTEGER NOT NULL,
    last_hash BLOB    NOT NULL
);
ALTER TABLE audit_events ADD COLUMN chain_id TEXT;
CREATE INDEX audit_events_chain ON audit_events (chain_id, id);

-- +goose Down
DROP INDEX audit_events_chain;
ALTER TABLE audit_events DROP COLUMN chain_id;
DROP TABLE audit_chain_heads;
