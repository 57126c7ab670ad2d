-- Per-tenant hash chain over audit_events (see clonesql.AuditSink and
-- clonesql.VerifyAuditChain). Each event stores the hash of its predecessor in the same
-- chain and its own hash; audit_chain_heads holds the newest hash of every chain, so a
-- deleted or edited event anywhere, including the last one, breaks verification.
-- Events without a tenant form the chain of the nil UUID.

-- +goose Up
CREATE TABLE audit_chain_heads (
    chain_id  uuid   PRIMARY KEY,
    last_id   bigint NOT NULL,
    last_hash bytea  NOT NULL
);
ALTER TABLE audit_events ADD COLUMN chain_id uuid;
CREATE INDEX audit_events_chain ON audit_events (chain_id, id);

-- +goose Down
DROP INDEX audit_events_chain;
ALTER TABLE audit_events DROP COLUMN chain_id;
DROP TABLE audit_chain_heads;
