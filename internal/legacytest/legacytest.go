// Package legacytest builds legacy (user_id keyed) deployments for tests and benchmarks
// of package legacy: a PostgreSQL schema shaped like cloneiso's tables before the clone
// model, with deterministic data, and the configuration that migrates it.
//
// The generated data has Users legacy users in a users table (u001, u002, ...); the
// last NoRowUsers of them own no row at all; the others own documents, chunks,
// insights, conversations, messages and rows of a host table, notes (user column
// "owner"). Some documents have no user (NULL) and some notes have an empty owner:
// rows without a user, which a migration must report and never assign. There is no
// training_examples table (a legacy deployment that predates it). Primary keys are
// derived from the user and position (md5-based UUIDs), so two databases generated
// alike hold the same rows.
package legacytest

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/migrate/legacy"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
)

// Sizes of the generated fixture.
const (
	Users          = 60 // legacy users in the users table
	NoRowUsers     = 5  // of which the last ones own no row
	OrphanDocs     = 7  // documents without a user
	OrphanNotes    = 4  // notes with an empty owner
	UsersQuery     = "SELECT id FROM users"
	HostTable      = "notes"
	HostUserColumn = "owner"
)

// Schema is the legacy schema: cloneiso's clone-owned tables keyed by their own IDs and
// user_id, without tenant_id and clone_id, plus the users table and a host table.
const Schema = `
CREATE TABLE users (
    id    text PRIMARY KEY,
    email text NOT NULL
);
CREATE TABLE documents (
    id           uuid        PRIMARY KEY,
    user_id      text        REFERENCES users (id),
    title        text        NOT NULL DEFAULT '',
    source_name  text        NOT NULL DEFAULT '',
    content_type text        NOT NULL DEFAULT '',
    size_bytes   bigint      NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    content_hash text        NOT NULL DEFAULT '',
    object_key   text        NOT NULL DEFAULT '',
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    error        text        NOT NULL DEFAULT '',
    chunk_count  integer     NOT NULL DEFAULT 0,
    metadata     jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_user ON documents (user_id);
CREATE TABLE document_chunks (
    document_id  uuid        NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal      integer     NOT NULL CHECK (ordinal >= 0),
    user_id      text,
    content      text        NOT NULL,
    token_count  integer     NOT NULL DEFAULT 0,
    start_offset integer     NOT NULL DEFAULT 0,
    end_offset   integer     NOT NULL DEFAULT 0,
    vector_id    text        NOT NULL DEFAULT '',
    metadata     jsonb       NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, ordinal)
);
CREATE TABLE insights (
    id         uuid        PRIMARY KEY,
    user_id    text        NOT NULL,
    category   text        NOT NULL DEFAULT '',
    content    text        NOT NULL,
    metadata   jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE conversations (
    id         uuid        PRIMARY KEY,
    user_id    text,
    subject    text        NOT NULL DEFAULT '',
    title      text        NOT NULL DEFAULT '',
    metadata   jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE messages (
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    id              uuid        PRIMARY KEY,
    user_id         text,
    role            text        NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         text        NOT NULL,
    citations       jsonb       NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE notes (
    note_id bigint  PRIMARY KEY,
    owner   text    NOT NULL,
    body    text    NOT NULL,
    pinned  boolean NOT NULL DEFAULT false
);
`

// dataSQL fills the schema; %[1]d is the number of users, %[2]d the users without rows,
// %[3]d the scale (rows per user multiply by it).
var dataSQL = `
INSERT INTO users (id, email)
SELECT 'u' || lpad(i::text, 3, '0'), 'user' || i || '@example.com' FROM generate_series(1, %[1]d) i;

INSERT INTO documents (id, user_id, title, source_name, content_type, size_bytes, content_hash, object_key, status, chunk_count, metadata, created_at, updated_at)
SELECT md5('doc-' || u.i || '-' || j)::uuid, 'u' || lpad(u.i::text, 3, '0'), 'Document ' || j || ' of user ' || u.i,
       'doc-' || j || '.txt', 'text/plain', (u.i * j * 37) %% 10000, md5('content-' || u.i || '-' || j),
       'users/u' || lpad(u.i::text, 3, '0') || '/documents/doc-' || j || '.txt', 'ready', 0,
       jsonb_build_object('n', j, 'tags', jsonb_build_array('a', u.i)),
       timestamptz '2024-01-01 00:00:00+00' + (u.i * 97 + j) * interval '1 minute',
       timestamptz '2024-02-01 00:00:00+00' + (u.i * 97 + j) * interval '1 minute'
FROM generate_series(1, %[1]d - %[2]d) u(i), generate_series(1, (1 + u.i %% 4) * %[3]d) j;

INSERT INTO documents (id, user_id, title, created_at, updated_at)
SELECT md5('orphan-doc-' || j)::uuid, NULL, 'Orphan ' || j, timestamptz '2024-01-01 00:00:00+00', timestamptz '2024-01-01 00:00:00+00'
FROM generate_series(1, ` + fmt.Sprint(OrphanDocs) + `) j;

INSERT INTO document_chunks (document_id, ordinal, user_id, content, token_count, start_offset, end_offset, vector_id, created_at)
SELECT d.id, k, d.user_id, 'Chunk ' || k || ' of ' || d.title, 10 + k, k * 100, k * 100 + 99, d.id || '#' || k, d.created_at
FROM documents d, generate_series(0, get_byte(decode(md5(d.id::text), 'hex'), 0) %% 4) k
WHERE d.user_id IS NOT NULL;

INSERT INTO insights (id, user_id, category, content, metadata, created_at, updated_at)
SELECT md5('insight-' || u.i || '-' || j)::uuid, 'u' || lpad(u.i::text, 3, '0'), (ARRAY['style', 'fact', 'preference'])[1 + j %% 3],
       'Insight ' || j || ' about user ' || u.i || E' with a quote '' and a tab \t', '{}',
       timestamptz '2024-03-01 00:00:00+00' + j * interval '1 second', timestamptz '2024-03-01 00:00:00+00'
FROM generate_series(1, %[1]d - %[2]d) u(i), generate_series(1, (u.i %% 6) * %[3]d) j;

INSERT INTO conversations (id, user_id, subject, title, created_at, updated_at)
SELECT md5('conv-' || u.i || '-' || j)::uuid, 'u' || lpad(u.i::text, 3, '0'), 'visitor-' || j, 'Conversation ' || j,
       timestamptz '2024-04-01 00:00:00+00' + j * interval '1 hour', timestamptz '2024-04-01 00:00:00+00' + j * interval '2 hours'
FROM generate_series(1, %[1]d - %[2]d) u(i), generate_series(1, (1 + u.i %% 3) * %[3]d) j;

INSERT INTO messages (conversation_id, id, user_id, role, content, citations, created_at)
SELECT c.id, md5('msg-' || c.id || '-' || k)::uuid, c.user_id, (ARRAY['user', 'assistant'])[1 + k %% 2], 'Message ' || k || ' in ' || c.title,
       jsonb_build_array(k), c.created_at + k * interval '1 second'
FROM conversations c, generate_series(1, get_byte(decode(md5(c.id::text), 'hex'), 1) %% 6) k;

INSERT INTO notes (note_id, owner, body, pinned)
SELECT u.i * 1000 + j, 'u' || lpad(u.i::text, 3, '0'), 'Note ' || j || ' of ' || u.i, j %% 2 = 0
FROM generate_series(1, %[1]d - %[2]d) u(i), generate_series(1, (u.i %% 3) * %[3]d) j;
INSERT INTO notes (note_id, owner, body) SELECT 900000000 + j, '', 'Ownerless note ' || j FROM generate_series(1, ` + fmt.Sprint(OrphanNotes) + `) j;
`

// Create creates the legacy schema in db (the connection's current schema, which must
// not have cloneiso's tables) and fills it; scale (at least 1) multiplies the rows per
// user.
func Create(ctx context.Context, db *sqlx.DB, scale int) error {
	if scale < 1 {
		scale = 1
	}
	if _, err := db.ExecContext(ctx, Schema); err != nil {
		return fmt.Errorf("legacy schema: %w", err)
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf(dataSQL, Users, NoRowUsers, scale)); err != nil {
		return fmt.Errorf("legacy data: %w", err)
	}
	return nil
}

// Config returns the migration configuration of the fixture: the SDK's tables, the host
// table notes (user column owner) and the users table as the source of users, so that
// users without rows get a clone too.
func Config() legacy.Config {
	return legacy.Config{
		Tables:     append(legacy.DefaultTables(), legacy.Table{Name: HostTable, UserColumn: HostUserColumn}),
		UsersQuery: UsersQuery,
	}
}

// UserID returns the ID of the i-th legacy user (1-based).
func UserID(i int) string { return fmt.Sprintf("u%03d", i) }

// Object fixture: LegacyKeyTemplate is the layout of the legacy objects that PutObjects
// writes; UnmatchedKeys are legacy keys no migration may assign (an unknown user, an
// invalid name, a key too short for the template).
const LegacyKeyTemplate = "users/{user_id}/{kind}/{name}"

// UnmatchedKeys are written by PutObjects besides the users' objects.
var UnmatchedKeys = []string{"users/u999/documents/stranger.txt", "users/u002/documents/bad%2e%2e/name.txt", "users/lonely.txt"}

// ObjectsOf returns the keys and contents PutObjects writes for the i-th user (1-based):
// documents and uploads, one of them nested, of varying sizes; users without rows have
// objects too.
func ObjectsOf(i int) map[string][]byte {
	out := map[string][]byte{}
	u := UserID(i)
	for j := range 1 + i%3 {
		out[fmt.Sprintf("users/%s/documents/doc-%d.txt", u, j+1)] = content(i, j, 64+(i*j*131)%4000)
	}
	if i%4 == 0 {
		out[fmt.Sprintf("users/%s/uploads/2024/img-%d.bin", u, i)] = content(i, 99, 10000+i)
	}
	return out
}

func content(i, j, n int) []byte {
	b := make([]byte, n)
	x := uint32(i*7919 + j*104729 + 1)
	for k := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[k] = byte(x)
	}
	return b
}

// PutObjects writes the legacy objects of every user (ObjectsOf) and UnmatchedKeys into
// bucket with a plain S3 client, and returns how many objects each user has.
func PutObjects(ctx context.Context, c *s3.Client, bucket string) (map[string]int, error) {
	per := map[string]int{}
	put := func(key string, body []byte) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
			ContentType: aws.String("application/octet-stream"), Metadata: map[string]string{"origin": "legacy"}})
		return err
	}
	for i := 1; i <= Users; i++ {
		for k, b := range ObjectsOf(i) {
			if err := put(k, b); err != nil {
				return nil, err
			}
			per[UserID(i)]++
		}
	}
	for _, k := range UnmatchedKeys {
		if err := put(k, []byte("unmatched")); err != nil {
			return nil, err
		}
	}
	return per, nil
}

// VectorDimension is the dimension of the fixture's vectors.
const VectorDimension = 8

// VectorsOf returns the legacy vectors of the i-th user (1-based): i%5 of them (some
// users have none), with metadata, IDs unique across users.
func VectorsOf(i int) []driver.Vector {
	var out []driver.Vector
	for j := range i % 5 {
		vals := make([]float32, VectorDimension)
		for k := range vals {
			vals[k] = float32((i*31+j*7+k*3)%17) + 0.5
		}
		out = append(out, driver.Vector{
			ID:       fmt.Sprintf("%s-chunk-%d", UserID(i), j),
			Values:   vals,
			Metadata: map[string]any{"document": fmt.Sprintf("doc-%d", j), "position": float64(j), "tags": []string{"legacy", UserID(i)}},
		})
	}
	return out
}

// UnmatchedVectors are written by PutVectors into the shared namespace besides the
// users' vectors: one without a user, one of an unknown user.
var UnmatchedVectors = []string{"orphan-vector", "stranger-vector"}

// PutVectors writes every user's legacy vectors (VectorsOf) through the raw driver d:
// with perUser, into namespace "user-{user_id}"; otherwise into the shared namespace
// with the user in metadata "user_id", plus UnmatchedVectors. It returns how many
// vectors each user has.
func PutVectors(ctx context.Context, d driver.Index, perUser bool, shared string) (map[string]int, error) {
	return PutVectorsWith(ctx, d.Upsert, perUser, shared)
}

// PutVectorsWith is PutVectors writing through upsert (for namespaces a driver refuses,
// such as Pinecone's default one).
func PutVectorsWith(ctx context.Context, upsert func(ctx context.Context, ns string, vs []driver.Vector) error, perUser bool, shared string) (map[string]int, error) {
	per := map[string]int{}
	var all []driver.Vector
	for i := 1; i <= Users; i++ {
		vs := VectorsOf(i)
		per[UserID(i)] = len(vs)
		if perUser {
			if len(vs) > 0 {
				if err := upsert(ctx, "user-"+UserID(i), vs); err != nil {
					return nil, err
				}
			}
			continue
		}
		for _, v := range vs {
			v.Metadata["user_id"] = UserID(i)
			all = append(all, v)
		}
	}
	if perUser {
		return per, nil
	}
	vals := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	all = append(all,
		driver.Vector{ID: UnmatchedVectors[0], Values: vals, Metadata: map[string]any{"document": "x"}},
		driver.Vector{ID: UnmatchedVectors[1], Values: vals, Metadata: map[string]any{"user_id": "u999"}})
	for start := 0; start < len(all); start += 100 {
		if err := upsert(ctx, shared, all[start:min(start+100, len(all))]); err != nil {
			return nil, err
		}
	}
	return per, nil
}

// CreateLarge creates a legacy table "events" (bigint key, user_id, payload, time) of
// rows rows spread over users users (IDs "big00001"...), for benchmarks; the data is
// generated in the server.
func CreateLarge(ctx context.Context, db *sqlx.DB, rows, users int) error {
	_, err := db.ExecContext(ctx, fmt.Sprintf(`
CREATE TABLE events (
    id         bigint      PRIMARY KEY,
    user_id    text,
    kind       text        NOT NULL,
    payload    text        NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO events (id, user_id, kind, payload, created_at)
SELECT i, 'big' || lpad(((i::bigint * 7919) %% %[2]d + 1)::text, 5, '0'), (ARRAY['view', 'chat', 'upload'])[1 + i %% 3],
       md5(i::text) || md5((i + 1)::text), timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
FROM generate_series(1, %[1]d) i;
ANALYZE events;`, rows, users))
	return err
}

// State describes a migrated database so that two runs compare equal when they did the
// same, whatever random tenant and clone IDs they drew: for each table, a checksum of
// its rows (all columns but tenant_id and clone_id) each followed by the legacy user
// its clone was given to; the user → subject mapping; the clones, tenants and members
// provisioned; the snapshot; and which steps completed.
func State(ctx context.Context, db *sqlx.DB, tables []legacy.Table) (map[string]string, error) {
	out := map[string]string{}
	for _, tbl := range tables {
		var exists bool
		if err := db.GetContext(ctx, &exists, "SELECT to_regclass($1) IS NOT NULL", tbl.Name); err != nil {
			return nil, err
		}
		if !exists {
			continue
		}
		var cols []string
		if err := db.SelectContext(ctx, &cols, `SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
			AND attname NOT IN ('tenant_id', 'clone_id') ORDER BY attnum`, tbl.Name); err != nil {
			return nil, err
		}
		var sum string
		q := fmt.Sprintf(`SELECT coalesce(md5(string_agg(r, E'\n' ORDER BY r)), '') FROM (
			SELECT ROW(%s)::text || ' -> ' || coalesce(m.user_id, '<none>') AS r
			FROM %s t LEFT JOIN cloneiso_legacy_users m ON m.to_tenant_id = t.tenant_id AND m.to_clone_id = t.clone_id) s`,
			"t."+strings.Join(cols, ", t."), pq.QuoteIdentifier(tbl.Name))
		if err := db.GetContext(ctx, &sum, q); err != nil {
			return nil, err
		}
		out["table "+tbl.Name] = sum
	}
	for name, q := range map[string]string{
		"users":     "SELECT string_agg(user_id || '=' || subject, ',' ORDER BY user_id) FROM cloneiso_legacy_users",
		"clones":    "SELECT string_agg(c.user_id || ':' || c.owner_subject || ':' || c.status, ',' ORDER BY c.user_id) FROM clones c",
		"tenants":   "SELECT count(*)::text || ' ' || string_agg(signup_subject || ':' || plan || ':' || clone_limit, ',' ORDER BY signup_subject) FROM tenants",
		"members":   "SELECT string_agg(subject || ':' || role, ',' ORDER BY subject) FROM tenant_members",
		"snapshot":  "SELECT md5(string_agg(table_name || user_id || row_count || checksum, ',' ORDER BY table_name, user_id)) FROM cloneiso_legacy_snapshot",
		"completed": "SELECT string_agg(step || ':' || name || ':' || done, ',' ORDER BY step, name) FROM cloneiso_legacy_checkpoints WHERE step <> 'adopt'",
	} {
		var s *string
		if err := db.GetContext(ctx, &s, q); err != nil {
			return nil, err
		}
		if s != nil {
			out[name] = *s
		}
	}
	return out, nil
}
