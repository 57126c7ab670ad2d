package records

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Chunk is one passage of a document's text, the unit that is embedded and retrieved.
// It is identified by its document and its ordinal (its position in the document).
type Chunk struct {
	TenantID    uuid.UUID       `db:"tenant_id" json:"tenant_id"` // from the clone context
	CloneID     uuid.UUID       `db:"clone_id" json:"clone_id"`   // from the clone context
	DocumentID  uuid.UUID       `db:"document_id" json:"document_id"`
	Ordinal     int             `db:"ordinal" json:"ordinal"` // 0 to MaxInt32, unique within the document
	UserID      *string         `db:"user_id" json:"user_id,omitempty"`
	Content     string          `db:"content" json:"content"` // 1 to MaxContentBytes
	TokenCount  int             `db:"token_count" json:"token_count"`
	StartOffset int             `db:"start_offset" json:"start_offset"` // byte offsets of the passage in the document's text
	EndOffset   int             `db:"end_offset" json:"end_offset"`
	VectorID    string          `db:"vector_id" json:"vector_id"`  // the chunk's vector in the clone's vector namespace
	Metadata    json.RawMessage `db:"-" json:"metadata,omitempty"` // a JSON object, at most MaxJSONBytes
	CreatedAt   time.Time       `db:"created_at" json:"created_at"`
}

// ChunkKey names one chunk of the clone: its document and ordinal.
type ChunkKey struct {
	DocumentID uuid.UUID `json:"document_id"`
	Ordinal    int       `json:"ordinal"`
}

type chunkRow struct {
	Chunk
	MetadataText string `db:"metadata"`
}

func (r chunkRow) record() Chunk {
	c := r.Chunk
	c.Metadata = json.RawMessage(r.MetadataText)
	c.CreatedAt = utc(c.CreatedAt)
	return c
}

const chunkCols = `tenant_id, clone_id, document_id, ordinal, user_id, content, token_count, start_offset, end_offset,
	vector_id, metadata, created_at`

var chunks = newKeyset("chunk", "document_chunks", chunkCols, "document_id", true)

// chunkBatch is the most chunks inserted by one statement.
const chunkBatch = 50

// ReplaceDocumentChunks replaces all chunks of document documentID with chunks (none
// deletes them all), sets the document's ChunkCount and UpdatedAt, and returns the
// chunks as stored. It runs in one transaction: on a *clonesql.DB it opens one, on a
// *clonesql.Tx it joins it. Each chunk's DocumentID must be zero or documentID, its
// ordinal unique, its content non-empty. A document that is missing or another clone's
// is clone.ErrNotFound, and audited.
func ReplaceDocumentChunks(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, documentID uuid.UUID, chunks []Chunk) ([]Chunk, error) {
	const op = "records.ReplaceDocumentChunks"
	if err := begin(ctx, q, cc, op); err != nil {
		return nil, err
	}
	if err := checkID(op, "document ID", documentID); err != nil {
		return nil, err
	}
	if len(chunks) > MaxChunksPerDocument {
		return nil, errs.New(errs.TooLarge, op, "%d chunks; the limit is %d", len(chunks), MaxChunksPerDocument)
	}
	stored := make([]Chunk, len(chunks))
	metas := make([]string, len(chunks))
	seen := make(map[int]bool, len(chunks))
	t := now()
	for i, c := range chunks {
		if err := checkScope(ctx, q, cc, op, c.TenantID, c.CloneID); err != nil {
			return nil, err
		}
		if c.DocumentID != uuid.Nil && c.DocumentID != documentID {
			return nil, errs.New(errs.InvalidInput, op, "chunk %d names another document", i)
		}
		meta, err := validateChunk(op, i, &c)
		if err != nil {
			return nil, err
		}
		if seen[c.Ordinal] {
			return nil, errs.New(errs.InvalidInput, op, "duplicate chunk ordinal %d", c.Ordinal)
		}
		seen[c.Ordinal] = true
		c.TenantID, c.CloneID, c.DocumentID, c.CreatedAt = cc.TenantID(), cc.CloneID(), documentID, t
		c.Metadata = json.RawMessage(meta)
		stored[i], metas[i] = c, meta
	}
	err := inTx(ctx, q, cc, func(q clonesql.Querier) error {
		res, err := q.Exec(ctx, cc, `UPDATE documents SET chunk_count = :n, updated_at = :now
			WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`,
			map[string]any{"id": documentID, "n": len(chunks), "now": t})
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return clonesql.ClassifyError(op, err)
		} else if n == 0 {
			return notFound(ctx, q, cc, op, "document", documentID.String())
		}
		if _, err := q.Exec(ctx, cc, `DELETE FROM document_chunks
			WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND document_id = :id`,
			map[string]any{"id": documentID}); err != nil {
			return err
		}
		for start := 0; start < len(stored); start += chunkBatch {
			end := min(start+chunkBatch, len(stored))
			if _, err := q.Exec(ctx, cc, insertChunksSQL(end-start), chunkArgs(stored[start:end], metas[start:end], t)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

func validateChunk(op string, i int, c *Chunk) (string, error) {
	field := "chunk " + strconv.Itoa(i)
	if err := checkText(op, field+" content", c.Content, MaxContentBytes, true); err != nil {
		return "", err
	}
	if err := checkText(op, field+" vector ID", c.VectorID, MaxShortBytes, false); err != nil {
		return "", err
	}
	if err := checkUserID(op, c.UserID); err != nil {
		return "", err
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"ordinal", c.Ordinal}, {"token count", c.TokenCount}, {"start offset", c.StartOffset}, {"end offset", c.EndOffset}} {
		if err := checkCount(op, field+" "+n.name, int64(n.v), MaxInt32); err != nil {
			return "", err
		}
	}
	if c.EndOffset < c.StartOffset {
		return "", errs.New(errs.InvalidInput, op, "%s ends before it starts", field)
	}
	return jsonText(op, field+" metadata", c.Metadata, '{')
}

var insertChunksCache [chunkBatch + 1]string

func init() {
	for n := 1; n <= chunkBatch; n++ {
		var b strings.Builder
		b.WriteString(`INSERT INTO document_chunks (tenant_id, clone_id, document_id, ordinal, user_id, content,
			token_count, start_offset, end_offset, vector_id, metadata, created_at) VALUES `)
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			s := strconv.Itoa(i)
			b.WriteString("(:tenant_id, :clone_id, :document_id, :o" + s + ", :u" + s + ", :c" + s + ", :t" + s +
				", :s" + s + ", :e" + s + ", :v" + s + ", :m" + s + ", :created_at)")
		}
		insertChunksCache[n] = b.String()
	}
}

func insertChunksSQL(n int) string { return insertChunksCache[n] }

func chunkArgs(cs []Chunk, metas []string, t time.Time) map[string]any {
	arg := make(map[string]any, 2+9*len(cs))
	arg["document_id"], arg["created_at"] = cs[0].DocumentID, t
	for i, c := range cs {
		s := strconv.Itoa(i)
		arg["o"+s], arg["u"+s], arg["c"+s], arg["t"+s] = c.Ordinal, c.UserID, c.Content, c.TokenCount
		arg["s"+s], arg["e"+s], arg["v"+s], arg["m"+s] = c.StartOffset, c.EndOffset, c.VectorID, metas[i]
	}
	return arg
}

// ListDocumentChunks returns one page of the chunks of document documentID, by ordinal.
// A document that is missing or another clone's is clone.ErrNotFound, and audited (it
// is looked up only when the page would be empty).
func ListDocumentChunks(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, documentID uuid.UUID, opts *ListOptions) (Page[Chunk], error) {
	const op = "records.ListDocumentChunks"
	if err := begin(ctx, q, cc, op); err != nil {
		return Page[Chunk]{}, err
	}
	if err := checkID(op, "document ID", documentID); err != nil {
		return Page[Chunk]{}, err
	}
	p, err := listPage(ctx, q, cc, op, chunks, documentID, opts, chunkRow.record,
		func(c Chunk) (time.Time, uuid.UUID, int64) { return time.Time{}, uuid.Nil, int64(c.Ordinal) })
	if err != nil {
		return Page[Chunk]{}, err
	}
	if len(p.Items) == 0 {
		if err := parentExists(ctx, q, cc, op, "document", "documents", documentID); err != nil {
			return Page[Chunk]{}, err
		}
	}
	return p, nil
}

// CountDocumentChunks returns the number of chunks of document documentID. A document
// that is missing or another clone's is clone.ErrNotFound, and audited.
func CountDocumentChunks(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, documentID uuid.UUID) (int64, error) {
	const op = "records.CountDocumentChunks"
	if err := begin(ctx, q, cc, op); err != nil {
		return 0, err
	}
	if err := checkID(op, "document ID", documentID); err != nil {
		return 0, err
	}
	n, err := count(ctx, q, cc, chunks, documentID)
	if err == nil && n == 0 {
		err = parentExists(ctx, q, cc, op, "document", "documents", documentID)
	}
	return n, err
}

// parentExists answers not found (audited) unless the clone has row id in table.
func parentExists(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op, record, table string, id uuid.UUID) error {
	ok, err := exists(ctx, q, cc, table, id)
	if err != nil {
		return err
	}
	if !ok {
		return notFound(ctx, q, cc, op, record, id.String())
	}
	return nil
}

// GetChunks returns the clone's chunks named by keys (at most MaxChunkKeys), in the
// order of keys, for example to turn vector matches into passages. Keys the clone has
// no chunk for (missing, or another clone's) are left out of the result, and one audit
// event per call records how many were. Duplicate keys are returned once.
func GetChunks(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, keys []ChunkKey) ([]Chunk, error) {
	const op = "records.GetChunks"
	if err := begin(ctx, q, cc, op); err != nil {
		return nil, err
	}
	if len(keys) > MaxChunkKeys {
		return nil, errs.New(errs.TooLarge, op, "%d keys; the limit is %d", len(keys), MaxChunkKeys)
	}
	uniq := make([]ChunkKey, 0, len(keys))
	pos := make(map[ChunkKey]int, len(keys))
	for _, k := range keys {
		if err := checkID(op, "document ID", k.DocumentID); err != nil {
			return nil, err
		}
		if err := checkCount(op, "ordinal", int64(k.Ordinal), MaxInt32); err != nil {
			return nil, err
		}
		if _, ok := pos[k]; !ok {
			pos[k] = len(uniq)
			uniq = append(uniq, k)
		}
	}
	out := make([]Chunk, 0, len(uniq))
	for start := 0; start < len(uniq); start += chunkBatch {
		batch := uniq[start:min(start+chunkBatch, len(uniq))]
		var rows []chunkRow
		if err := q.Select(ctx, cc, &rows, getChunksSQL(len(batch)), keyArgs(batch)); err != nil {
			return nil, err
		}
		for _, r := range rows {
			out = append(out, r.record())
		}
	}
	slices.SortFunc(out, func(a, b Chunk) int {
		return pos[ChunkKey{a.DocumentID, a.Ordinal}] - pos[ChunkKey{b.DocumentID, b.Ordinal}]
	})
	if missing := len(uniq) - len(out); missing > 0 {
		deny(ctx, q, cc, op, "no such chunks for this clone (missing or another clone's)",
			map[string]string{"record": "chunk", "missing": strconv.Itoa(missing), "requested": strconv.Itoa(len(uniq))})
	}
	return out, nil
}

var getChunksCache [chunkBatch + 1]string

func init() {
	for n := 1; n <= chunkBatch; n++ {
		var b strings.Builder
		// One primary-key lookup per key, joined with UNION ALL: an OR of (document,
		// ordinal) pairs makes SQLite's planner scan all of the clone's chunks from five
		// keys on; single lookups stay index probes on both dialects.
		for i := range n {
			if i > 0 {
				b.WriteString(" UNION ALL ")
			}
			s := strconv.Itoa(i)
			b.WriteString(`SELECT ` + chunkCols + ` FROM document_chunks WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND document_id = :d` + s + ` AND ordinal = :o` + s)
		}
		getChunksCache[n] = b.String()
	}
}

func getChunksSQL(n int) string { return getChunksCache[n] }

func keyArgs(keys []ChunkKey) map[string]any {
	arg := make(map[string]any, 2*len(keys))
	for i, k := range keys {
		s := strconv.Itoa(i)
		arg["d"+s], arg["o"+s] = k.DocumentID, k.Ordinal
	}
	return arg
}
