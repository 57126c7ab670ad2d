-- Enterprise administration, SQLite: break-glass grants and the offboarding tombstone;
-- see the PostgreSQL migration of the same number. SQLite serializes writers, so the
-- triggers need no lock to be race-free against the status change. RAISE(ABORT) fails
-- the statement with SQLITE_CONSTRAINT_TRIGGER.

-- +goose Up
CREATE TABLE break_glass_grants (
    tenant_id       TEXT      NOT NULL,
    id              TEXT      NOT NULL,
    target_clone_id TEXT      NOT NULL,
    subject         text      NOT NULL,
    granted_by      text      NOT NULL,
    reason          text      NOT NULL CHECK (length(reason) > 0),
    created_at      TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at      TIMESTAMP NOT NULL,
    revoked_at      TIMESTAMP,
    revoked_by      text      NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, target_clone_id) REFERENCES clones (tenant_id, id),
    CHECK (expires_at > created_at)
);
CREATE INDEX break_glass_grants_lookup ON break_glass_grants (tenant_id, target_clone_id, subject, expires_at);

-- +goose StatementBegin
CREATE TRIGGER documents_clone_writable BEFORE INSERT ON documents
WHEN (SELECT status FROM clones WHERE tenant_id = NEW.tenant_id AND id = NEW.clone_id) IN ('offboarding', 'offboarded')
BEGIN
    SELECT RAISE(ABORT, 'clone is offboarded: its data can no longer be written');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER document_chunks_clone_writable BEFORE INSERT ON document_chunks
WHEN (SELECT status FROM clones WHERE tenant_id = NEW.tenant_id AND id = NEW.clone_id) IN ('offboarding', 'offboarded')
BEGIN
    SELECT RAISE(ABORT, 'clone is offboarded: its data can no longer be written');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER insights_clone_writable BEFORE INSERT ON insights
WHEN (SELECT status FROM clones WHERE tenant_id = NEW.tenant_id AND id = NEW.clone_id) IN ('offboarding', 'offboarded')
BEGIN
    SELECT RAISE(ABORT, 'clone is offboarded: its data can no longer be written');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER training_examples_clone_writable BEFORE INSERT ON training_examples
WHEN (SELECT status FROM clones WHERE tenant_id = NEW.tenant_id AND id = NEW.clone_id) IN ('offboarding', 'offboarded')
BEGIN
    SELECT RAISE(ABORT, 'clone is offboarded: its data can no longer be written');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER conversations_clone_writable BEFORE INSERT ON conversations
WHEN (SELECT status FROM clones WHERE tenant_id = NEW.tenant_id AND id = NEW.clone_id) IN ('offboarding', 'offboarded')
BEGIN
    SELECT RAISE(ABORT, 'clone is offboarded: its data can no longer be written');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER messages_clone_writable BEFORE INSERT ON messages
WHEN (SELECT status FROM clones WHERE tenant_id = NEW.tenant_id AND id = NEW.clone_id) IN ('offboarding', 'offboarded')
BEGIN
    SELECT RAISE(ABORT, 'clone is offboarded: its data can no longer be written');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER messages_clone_writable;
DROP TRIGGER conversations_clone_writable;
DROP TRIGGER training_examples_clone_writable;
DROP TRIGGER insights_clone_writable;
DROP TRIGGER document_chunks_clone_writable;
DROP TRIGGER documents_clone_writable;
DROP TABLE break_glass_grants;
