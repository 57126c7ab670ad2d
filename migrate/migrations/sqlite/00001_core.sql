-- cloneiso core schema, SQLite (the embedded default; no row-level security).
--
-- Control-plane tables (tenants, clones, tenant_members, clone_grants) are read by the
-- resolver before a request has a clone, so they carry no row-level security; they hold
-- no clone content. Every clone-owned table carries tenant_id and clone_id, keeps a
-- nullable legacy user_id, leads its primary and foreign keys with tenant_id (so it can
-- be distributed by tenant on Citus in the PostgreSQL schema). SQLite has no row-level
-- security: on SQLite, isolation rests on the scoped statements of package clonesql.

-- +goose Up
CREATE TABLE tenants (
    id             TEXT        PRIMARY KEY,
    name           text        NOT NULL DEFAULT '',
    plan           text        NOT NULL CHECK (plan IN ('solo', 'enterprise')),
    clone_limit    integer     NOT NULL DEFAULT 1 CHECK (clone_limit >= 1),
    status         text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'offboarded')),
    signup_subject text        UNIQUE, -- the subject whose first sign-in created this solo tenant
    created_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at     TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE clones (
    tenant_id     TEXT        NOT NULL REFERENCES tenants (id),
    id            TEXT        NOT NULL,
    name          text        NOT NULL DEFAULT '',
    owner_subject text        NOT NULL,
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'offboarding', 'offboarded')),
    user_id       text,
    created_at    TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at    TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX clones_owner_subject ON clones (owner_subject);

CREATE TABLE tenant_members (
    tenant_id  TEXT        NOT NULL REFERENCES tenants (id),
    subject    text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (tenant_id, subject)
);
CREATE INDEX tenant_members_subject ON tenant_members (subject);

-- A member's access to one clone of an enterprise tenant.
CREATE TABLE clone_grants (
    tenant_id  TEXT        NOT NULL,
    clone_id   TEXT        NOT NULL,
    subject    text        NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (tenant_id, clone_id, subject),
    FOREIGN KEY (tenant_id, clone_id) REFERENCES clones (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, subject) REFERENCES tenant_members (tenant_id, subject) ON DELETE CASCADE
);
CREATE INDEX clone_grants_subject ON clone_grants (subject);

CREATE TABLE documents (
    tenant_id    TEXT        NOT NULL,
    clone_id     TEXT        NOT NULL,
    id           TEXT        NOT NULL,
    user_id      text,
    title        text        NOT NULL DEFAULT '',
    source_name  text        NOT NULL DEFAULT '',
    content_type text        NOT NULL DEFAULT '',
    size_bytes   bigint      NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    content_hash text        NOT NULL DEFAULT '',
    object_key   text        NOT NULL DEFAULT '',
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    error        text        NOT NULL DEFAULT '',
    chunk_count  integer     NOT NULL DEFAULT 0,
    metadata     TEXT        NOT NULL DEFAULT '{}',
    created_at   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (tenant_id, clone_id, id),
    FOREIGN KEY (tenant_id, clone_id) REFERENCES clones (tenant_id, id)
);
CREATE INDEX documents_content_hash ON documents (tenant_id, clone_id, content_hash);
CREATE INDEX documents_created ON documents (tenant_id, clone_id, created_at, id);

CREATE TABLE document_chunks (
    tenant_id    TEXT        NOT NULL,
    clone_id     TEXT        NOT NULL,
    document_id  TEXT        NOT NULL,
    ordinal      integer     NOT NULL CHECK (ordinal >= 0),
    user_id      text,
    content      text        NOT NULL,
    token_count  integer     NOT NULL DEFAULT 0,
    start_offset integer     NOT NULL DEFAULT 0,
    end_offset   integer     NOT NULL DEFAULT 0,
    vector_id    text        NOT NULL DEFAULT '',
    metadata     TEXT        NOT NULL DEFAULT '{}',
    created_at   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (tenant_id, clone_id, document_id, ordinal),
    FOREIGN KEY (tenant_id, clone_id, document_id) REFERENCES documents (tenant_id, clone_id, id) ON DELETE CASCADE
);

CREATE TABLE insights (
    tenant_id  TEXT        NOT NULL,
    clone_id   TEXT        NOT NULL,
    id         TEXT        NOT NULL,
    user_id    text,
    category   text        NOT NULL DEFAULT '',
    content    text        NOT NULL,
    metadata   TEXT        NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (tenant_id, clone_id, id),
    FOREIGN KEY (tenant_id, clone_id) REFERENCES clones (tenant_id, id)
);
CREATE INDEX insights_created ON insights (tenant_id, clone_id, created_at, id);

CREATE TABLE training_examples (
    tenant_id  TEXT        NOT NULL,
    clone_id   TEXT        NOT NULL,
    id         TEXT        NOT NULL,
    user_id    text,
    prompt     text        NOT NULL,
    response   text        NOT NULL,
    metadata   TEXT        NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (tenant_id, clone_id, id),
    FOREIGN KEY (tenant_id, clone_id) REFERENCES clones (tenant_id, id)
);
CREATE INDEX training_examples_created ON training_examples (tenant_id, clone_id, created_at, id);

CREATE TABLE conversations (
    tenant_id  TEXT        NOT NULL,
    clone_id   TEXT        NOT NULL,
    id         TEXT        NOT NULL,
    user_id    text,
    subject    text        NOT NULL DEFAULT '', -- who is talking to the clone
    title      text        NOT NULL DEFAULT '',
    metadata   TEXT        NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (tenant_id, clone_id, id),
    FOREIGN KEY (tenant_id, clone_id) REFERENCES clones (tenant_id, id)
);
CREATE INDEX conversations_updated ON conversations (tenant_id, clone_id, updated_at, id);

CREATE TABLE messages (
    tenant_id       TEXT        NOT NULL,
    clone_id        TEXT        NOT NULL,
    conversation_id TEXT        NOT NULL,
    id              TEXT        NOT NULL,
    user_id         text,
    role            text        NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         text        NOT NULL,
    citations       TEXT        NOT NULL DEFAULT '[]',
    created_at      TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (tenant_id, clone_id, id),
    FOREIGN KEY (tenant_id, clone_id, conversation_id) REFERENCES conversations (tenant_id, clone_id, id) ON DELETE CASCADE
);
CREATE INDEX messages_conversation ON messages (tenant_id, clone_id, conversation_id, created_at, id);

-- Append-only: the triggers below refuse every update and delete.
CREATE TABLE audit_events (
    id          INTEGER     PRIMARY KEY AUTOINCREMENT,
    occurred_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    actor       text        NOT NULL DEFAULT '',
    action      text        NOT NULL,
    tenant_id   TEXT,
    clone_id    TEXT,
    outcome     text        NOT NULL CHECK (outcome IN ('allowed', 'denied', 'violation', 'failed')),
    reason      text        NOT NULL DEFAULT '',
    request_id  text        NOT NULL DEFAULT '',
    detail      TEXT        NOT NULL DEFAULT '{}',
    prev_hash   BLOB,
    hash        BLOB
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);

-- +goose StatementBegin
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER audit_events_no_delete;
DROP TRIGGER audit_events_no_update;
DROP TABLE audit_events;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE training_examples;
DROP TABLE insights;
DROP TABLE document_chunks;
DROP TABLE documents;
DROP TABLE clone_grants;
DROP TABLE tenant_members;
DROP TABLE clones;
DROP TABLE tenants;
