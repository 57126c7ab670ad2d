-- Enterprise administration: break-glass grants, and the offboarding tombstone.
--
-- break_glass_grants records each explicit, time-boxed permission for one tenant owner or
-- admin to read one clone's content (see tenant.Admin.GrantBreakGlass). It is a
-- control-plane table read before any clone is in scope, so it has no row-level
-- security; its clone column is named target_clone_id so that migrate.CheckIsolation
-- does not mistake it for a clone-owned table. Grants are never deleted, only revoked
-- (revoked_at) or left to expire: together with the audit log they are the record of
-- who could read what, when and why.
--
-- The trigger cloneiso_clone_writable on every clone-owned table refuses an INSERT
-- for a clone whose status is offboarding or offboarded: once offboarding has begun,
-- no row can be added behind its back, and an offboarded clone can never hold rows
-- again. It locks the clone's row FOR SHARE, which conflicts with the status change
-- (FOR NO KEY UPDATE): an insert either commits before offboarding starts (and its row
-- is then deleted by it) or sees the new status and fails. The error uses SQLSTATE
-- 23503 (foreign_key_violation), classified as clone.ErrConflict.

-- +goose Up
CREATE TABLE break_glass_grants (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    target_clone_id uuid        NOT NULL,
    subject         text        NOT NULL, -- the owner or admin who may read the clone
    granted_by      text        NOT NULL,
    reason          text        NOT NULL CHECK (length(reason) > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_by      text        NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, target_clone_id) REFERENCES clones (tenant_id, id),
    CHECK (expires_at > created_at)
);
CREATE INDEX break_glass_grants_lookup ON break_glass_grants (tenant_id, target_clone_id, subject, expires_at);

-- +goose StatementBegin
CREATE FUNCTION cloneiso_clone_writable() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    st text;
BEGIN
    SELECT status INTO st FROM clones WHERE tenant_id = NEW.tenant_id AND id = NEW.clone_id FOR SHARE;
    IF st IN ('offboarding', 'offboarded') THEN
        RAISE EXCEPTION 'clone is %: its data can no longer be written', st
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER cloneiso_clone_writable BEFORE INSERT ON documents FOR EACH ROW EXECUTE FUNCTION cloneiso_clone_writable();
CREATE TRIGGER cloneiso_clone_writable BEFORE INSERT ON document_chunks FOR EACH ROW EXECUTE FUNCTION cloneiso_clone_writable();
CREATE TRIGGER cloneiso_clone_writable BEFORE INSERT ON insights FOR EACH ROW EXECUTE FUNCTION cloneiso_clone_writable();
CREATE TRIGGER cloneiso_clone_writable BEFORE INSERT ON training_examples FOR EACH ROW EXECUTE FUNCTION cloneiso_clone_writable();
CREATE TRIGGER cloneiso_clone_writable BEFORE INSERT ON conversations FOR EACH ROW EXECUTE FUNCTION cloneiso_clone_writable();
CREATE TRIGGER cloneiso_clone_writable BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION cloneiso_clone_writable();

-- +goose Down
DROP TRIGGER cloneiso_clone_writable ON messages;
DROP TRIGGER cloneiso_clone_writable ON conversations;
DROP TRIGGER cloneiso_clone_writable ON training_examples;
DROP TRIGGER cloneiso_clone_writable ON insights;
DROP TRIGGER cloneiso_clone_writable ON document_chunks;
DROP TRIGGER cloneiso_clone_writable ON documents;
DROP FUNCTION cloneiso_clone_writable();
DROP TABLE break_glass_grants;
