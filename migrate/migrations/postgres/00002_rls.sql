-- Row-level security on every clone-owned table.
--
-- Each policy lets a statement see and write only the rows whose tenant_id and clone_id
-- equal the transaction-local settings cloneiso.tenant_id and cloneiso.clone_id, which
-- the scoped SQL wrapper sets with set_config(name, value, true) at the start of each
-- transaction. An unset setting reads as NULL (never set in this session) or '' (set by
-- an earlier transaction on the same connection); NULLIF turns both into NULL, and a
-- comparison with NULL is never true: no setting, no rows (fail closed).
--
-- The (SELECT ...) wrapper makes PostgreSQL evaluate each setting once per statement
-- as an initplan, so the predicate is a plain indexed equality, as fast as an explicit
-- WHERE. FORCE applies the policies to the tables' owner too; superusers and BYPASSRLS
-- roles still bypass them, which is why the application must connect as a role that is
-- neither (see migrate.AppRoleSQL and migrate.CheckIsolation).

-- +goose Up
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
CREATE POLICY clone_isolation ON documents
    USING (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid));

ALTER TABLE document_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY clone_isolation ON document_chunks
    USING (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid));

ALTER TABLE insights ENABLE ROW LEVEL SECURITY;
ALTER TABLE insights FORCE ROW LEVEL SECURITY;
CREATE POLICY clone_isolation ON insights
    USING (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid));

ALTER TABLE training_examples ENABLE ROW LEVEL SECURITY;
ALTER TABLE training_examples FORCE ROW LEVEL SECURITY;
CREATE POLICY clone_isolation ON training_examples
    USING (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid));

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY clone_isolation ON conversations
    USING (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid));

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY clone_isolation ON messages
    USING (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid));

-- +goose Down
DROP POLICY clone_isolation ON documents;
ALTER TABLE documents NO FORCE ROW LEVEL SECURITY;
ALTER TABLE documents DISABLE ROW LEVEL SECURITY;

DROP POLICY clone_isolation ON document_chunks;
ALTER TABLE document_chunks NO FORCE ROW LEVEL SECURITY;
ALTER TABLE document_chunks DISABLE ROW LEVEL SECURITY;

DROP POLICY clone_isolation ON insights;
ALTER TABLE insights NO FORCE ROW LEVEL SECURITY;
ALTER TABLE insights DISABLE ROW LEVEL SECURITY;

DROP POLICY clone_isolation ON training_examples;
ALTER TABLE training_examples NO FORCE ROW LEVEL SECURITY;
ALTER TABLE training_examples DISABLE ROW LEVEL SECURITY;

DROP POLICY clone_isolation ON conversations;
ALTER TABLE conversations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE conversations DISABLE ROW LEVEL SECURITY;

DROP POLICY clone_isolation ON messages;
ALTER TABLE messages NO FORCE ROW LEVEL SECURITY;
ALTER TABLE messages DISABLE ROW LEVEL SECURITY;
