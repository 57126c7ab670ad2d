package records

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Document is a source the clone learned from: a file, a page, a transcript. Its text
// lives in its chunks ([Chunk]); its bytes, if kept, in an object store under ObjectKey.
type Document struct {
	TenantID    uuid.UUID       `db:"tenant_id" json:"tenant_id"`       // from the clone context
	CloneID     uuid.UUID       `db:"clone_id" json:"clone_id"`         // from the clone context
	ID          uuid.UUID       `db:"id" json:"id"`                     // zero on create: a new random ID
	UserID      *string         `db:"user_id" json:"user_id,omitempty"` // legacy user the record was migrated from, if any; set on create only
	Title       string          `db:"title" json:"title"`               // at most MaxTitleBytes
	SourceName  string          `db:"source_name" json:"source_name"`   // e.g. the uploaded file's name; at most MaxTitleBytes
	ContentType string          `db:"content_type" json:"content_type"` // a media type; at most MaxShortBytes
	SizeBytes   int64           `db:"size_bytes" json:"size_bytes"`     // of the original, >= 0
	ContentHash string          `db:"content_hash" json:"content_hash"` // e.g. "sha256:…", for FindDocumentsByHash; at most MaxShortBytes
	ObjectKey   string          `db:"object_key" json:"object_key"`     // the original's full object key, as package ingest stores it (informational: read it back with ingest.ObjectName through the clone-scoped bucket); at most MaxTitleBytes
	Status      DocumentStatus  `db:"status" json:"status"`             // StatusPending (default on create), StatusProcessing, StatusReady or StatusFailed
	Error       string          `db:"error" json:"error,omitempty"`     // why ingestion failed, at most MaxErrorBytes
	ChunkCount  int             `db:"chunk_count" json:"chunk_count"`   // maintained by ReplaceDocumentChunks
	Metadata    json.RawMessage `db:"-" json:"metadata,omitempty"`      // a JSON object, at most MaxJSONBytes; stored re-encoded
	CreatedAt   time.Time       `db:"created_at" json:"created_at"`
	UpdatedAt   time.Time       `db:"updated_at" json:"updated_at"`
}

type documentRow struct {
	Document
	MetadataText string `db:"metadata"`
}

func (r documentRow) record() Document {
	d := r.Document
	d.Metadata = json.RawMessage(r.MetadataText)
	d.CreatedAt, d.UpdatedAt = utc(d.CreatedAt), utc(d.UpdatedAt)
	return d
}

const documentCols = `tenant_id, clone_id, id, user_id, title, source_name, content_type, size_bytes, content_hash,
	object_key, status, error, chunk_count, metadata, created_at, updated_at`

// documents runs the shared create, get, delete, list and count; updates (plain and
// optimistic) are updateDocument's, so update and updateArgs stay unset.
var documents = &table[Document, documentRow]{
	record: "document", name: "documents",
	keys: newKeyset("document", "documents", documentCols, "", false),
	get:  `SELECT ` + documentCols + ` FROM documents WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`,
	insert: `INSERT INTO documents (tenant_id, clone_id, id, user_id, title, source_name, content_type,
		size_bytes, content_hash, object_key, status, error, chunk_count, metadata, created_at, updated_at)
		VALUES (:tenant_id, :clone_id, :id, :user_id, :title, :source_name, :content_type, :size_bytes, :content_hash,
		:object_key, :status, :error, 0, :metadata, :created_at, :created_at)`,
	// Creation only: an empty Status becomes StatusPending, ChunkCount starts at 0.
	validate: func(op string, d *Document) (string, error) {
		d.ChunkCount = 0
		return validateDocument(op, d, true)
	},
	fields: func(d *Document) common {
		return common{&d.TenantID, &d.CloneID, &d.ID, &d.Metadata, &d.CreatedAt, &d.UpdatedAt}
	},
	insertArgs: func(d *Document) map[string]any {
		return map[string]any{
			"user_id": d.UserID, "title": d.Title, "source_name": d.SourceName, "content_type": d.ContentType,
			"size_bytes": d.SizeBytes, "content_hash": d.ContentHash, "object_key": d.ObjectKey, "status": string(d.Status),
			"error": d.Error,
		}
	},
}

// ValidDocumentStatus reports whether s is one of the document statuses.
func ValidDocumentStatus(s DocumentStatus) bool {
	switch s {
	case StatusPending, StatusProcessing, StatusReady, StatusFailed:
		return true
	}
	return false
}

// validateDocument checks the caller-settable fields of d and returns its metadata as
// stored.
func validateDocument(op string, d *Document, create bool) (string, error) {
	if d.Status == "" && create {
		d.Status = StatusPending
	}
	if !ValidDocumentStatus(d.Status) {
		return "", errs.New(errs.InvalidInput, op, "unknown document status %q", truncate(string(d.Status)))
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"title", d.Title, MaxTitleBytes},
		{"source name", d.SourceName, MaxTitleBytes},
		{"content type", d.ContentType, MaxShortBytes},
		{"content hash", d.ContentHash, MaxShortBytes},
		{"object key", d.ObjectKey, MaxTitleBytes},
		{"error", d.Error, MaxErrorBytes},
	} {
		if err := checkText(op, f.name, f.v, f.max, false); err != nil {
			return "", err
		}
	}
	if err := checkUserID(op, d.UserID); err != nil {
		return "", err
	}
	if d.SizeBytes < 0 {
		return "", errs.New(errs.InvalidInput, op, "negative size")
	}
	return jsonText(op, "metadata", d.Metadata, '{')
}

// CreateDocument stores a new document for the clone in cc and returns it as stored:
// TenantID and CloneID from cc (a payload naming another clone is refused with
// clone.ErrCloneMismatch and audited), a new ID unless d.ID is set (an ID the clone
// already uses is clone.ErrConflict), Status StatusPending if empty, ChunkCount 0 (see
// [ReplaceDocumentChunks]) and both timestamps now.
func CreateDocument(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, d Document) (Document, error) {
	return documents.create(ctx, q, cc, "records.CreateDocument", d)
}

// GetDocument returns document id of the clone in cc. A document that is missing or
// another clone's is clone.ErrNotFound, and audited.
func GetDocument(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) (Document, error) {
	return documents.read(ctx, q, cc, "records.GetDocument", id)
}

// UpdateDocument replaces the caller-settable fields of document d.ID (title, source
// name, content type, size, content hash, object key, status, error, metadata) with
// d's — read the document, change it, write it back; an empty Status is refused — sets
// UpdatedAt and returns the document as stored. UserID, ChunkCount and CreatedAt are
// kept. A document that is missing or another clone's is clone.ErrNotFound, and audited.
func UpdateDocument(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, d Document) (Document, error) {
	return updateDocument(ctx, q, cc, "records.UpdateDocument", d, false)
}

// UpdateDocumentIfUnchanged is [UpdateDocument] with optimistic concurrency: it writes
// only while the stored document's UpdatedAt still equals d.UpdatedAt (as read by
// [GetDocument]), and otherwise fails with clone.ErrConflict and changes nothing. The
// new UpdatedAt is always later than the one it replaces, so two writers holding the
// same version cannot both succeed. A document that is missing or another clone's is
// clone.ErrNotFound, and audited.
func UpdateDocumentIfUnchanged(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, d Document) (Document, error) {
	return updateDocument(ctx, q, cc, "records.UpdateDocumentIfUnchanged", d, true)
}

func updateDocument(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string, d Document, ifUnchanged bool) (Document, error) {
	if err := begin(ctx, q, cc, op); err != nil {
		return Document{}, err
	}
	if err := checkScope(ctx, q, cc, op, d.TenantID, d.CloneID); err != nil {
		return Document{}, err
	}
	if err := checkID(op, "document ID", d.ID); err != nil {
		return Document{}, err
	}
	meta, err := validateDocument(op, &d, false)
	if err != nil {
		return Document{}, err
	}
	arg := map[string]any{
		"id": d.ID, "title": d.Title, "source_name": d.SourceName, "content_type": d.ContentType,
		"size_bytes": d.SizeBytes, "content_hash": d.ContentHash, "object_key": d.ObjectKey, "status": string(d.Status),
		"error": d.Error, "metadata": meta, "now": now(),
	}
	query := `UPDATE documents SET title = :title, source_name = :source_name,
		content_type = :content_type, size_bytes = :size_bytes, content_hash = :content_hash, object_key = :object_key,
		status = :status, error = :error, metadata = :metadata, updated_at = :now
		WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`
	if ifUnchanged {
		if d.UpdatedAt.IsZero() {
			return Document{}, errs.New(errs.InvalidInput, op, "no UpdatedAt to compare with")
		}
		was := d.UpdatedAt.UTC().Truncate(time.Microsecond)
		if t := arg["now"].(time.Time); !t.After(was) {
			arg["now"] = was.Add(time.Microsecond)
		}
		arg["was"] = was
		query += ` AND updated_at = :was`
	}
	var r documentRow
	err = q.Get(ctx, cc, &r, query+` RETURNING `+documentCols, arg)
	if ifUnchanged && errs.KindOf(err) == errs.NotFound {
		// Changed since it was read, or not the clone's: tell the two apart.
		ok, xerr := exists(ctx, q, cc, "documents", d.ID)
		if xerr != nil {
			return Document{}, xerr
		}
		if ok {
			return Document{}, errs.New(errs.Conflict, op, "the document was changed since it was read")
		}
	}
	if err := found(ctx, q, cc, op, "document", d.ID, err); err != nil {
		return Document{}, err
	}
	return r.record(), nil
}

// SetDocumentStatus sets the status (and error message, "" to clear it) of document
// id, as ingestion progresses. A document that is missing or another clone's is
// clone.ErrNotFound, and audited.
func SetDocumentStatus(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID, status DocumentStatus, errMsg string) error {
	const op = "records.SetDocumentStatus"
	if err := begin(ctx, q, cc, op); err != nil {
		return err
	}
	if err := checkID(op, "document ID", id); err != nil {
		return err
	}
	if !ValidDocumentStatus(status) {
		return errs.New(errs.InvalidInput, op, "unknown document status %q", truncate(string(status)))
	}
	if err := checkText(op, "error", errMsg, MaxErrorBytes, false); err != nil {
		return err
	}
	res, err := q.Exec(ctx, cc, `UPDATE documents SET status = :status, error = :error, updated_at = :now
		WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`,
		map[string]any{"id": id, "status": string(status), "error": errMsg, "now": now()})
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return clonesql.ClassifyError(op, err)
	} else if n == 0 {
		return notFound(ctx, q, cc, op, "document", id.String())
	}
	return nil
}

// DeleteDocument deletes document id and its chunks. A document that is missing or
// another clone's is clone.ErrNotFound, and audited. The document's vectors and
// objects live in other stores and are the caller's to delete.
func DeleteDocument(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) error {
	return documents.remove(ctx, q, cc, "records.DeleteDocument", id)
}

// ListDocuments returns one page of the clone's documents, oldest first (or newest
// first with opts.Descending), in the stable order (CreatedAt, ID).
func ListDocuments(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, opts *ListOptions) (Page[Document], error) {
	return documents.list(ctx, q, cc, "records.ListDocuments", opts)
}

// CountDocuments returns the number of the clone's documents.
func CountDocuments(ctx context.Context, q clonesql.Querier, cc clone.CloneContext) (int64, error) {
	return documents.count(ctx, q, cc, "records.CountDocuments")
}

// FindDocumentsByHash returns the clone's documents whose ContentHash is hash (at most
// MaxPageSize, oldest first), so ingestion can skip content it already has.
func FindDocumentsByHash(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, hash string) ([]Document, error) {
	const op = "records.FindDocumentsByHash"
	if err := begin(ctx, q, cc, op); err != nil {
		return nil, err
	}
	if err := checkText(op, "content hash", hash, MaxShortBytes, true); err != nil {
		return nil, err
	}
	var rows []documentRow
	if err := q.Select(ctx, cc, &rows, `SELECT `+documentCols+` FROM documents
		WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND content_hash = :hash
		ORDER BY created_at, id LIMIT :limit`, map[string]any{"hash": hash, "limit": MaxPageSize}); err != nil {
		return nil, err
	}
	out := make([]Document, len(rows))
	for i, r := range rows {
		out[i] = r.record()
	}
	return out, nil
}

// truncate shortens an echoed bad value.
func truncate(s string) string {
	const max = 40
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
