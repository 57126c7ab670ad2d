package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/ingest/extract"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// ObjectKind is the objectstore kind under which originals are kept: each document's
// original is the object "<document ID>/<version>" of this kind (see DocumentVersion).
const ObjectKind = "documents"

// Defaults of Options.
const (
	DefaultMaxDocumentBytes = 32 << 20
	DefaultWorkers          = 4
	DefaultEmbedBatch       = 64
	DefaultStaleAfter       = 30 * time.Minute
	// compensationTimeout bounds the clean-up of a failed attempt, which runs even when
	// the caller's context is done.
	compensationTimeout = 30 * time.Second
	// MaxEmbedBatch bounds Options.EmbedBatch, which is also the number of vectors per
	// upsert: Pinecone takes at most 1000 per request.
	MaxEmbedBatch = 1000
	deleteBatch   = 1000
	versionLen    = 16
)

// Metadata keys the pipeline writes into every vector (besides the scope keys of
// package vectorstore).
const (
	MetaDocumentID = "document_id"
	MetaOrdinal    = "ordinal"
	MetaVersion    = "version"
)

// MetaPage is the chunk metadata key (records.Chunk.Metadata) of the page (from 1) of
// a chunk of a paged document (PDF): such documents are chunked page by page, so a
// chunk lies on one page. Package rag cites it as "[1, p. 3]".
const MetaPage = "page"

// Options configure a Pipeline. Nil means the defaults.
type Options struct {
	// Extractors turn documents into text; nil means extract.NewRegistry with
	// MaxDocumentBytes as its input limit.
	Extractors *extract.Registry
	// Chunking configures the chunker; nil means chunk's defaults.
	Chunking *chunk.Options
	// MaxDocumentBytes is the largest document accepted: 0 means
	// DefaultMaxDocumentBytes. Larger ones are refused with clone.ErrTooLarge before
	// anything is stored.
	MaxDocumentBytes int64
	// Workers bounds the documents IngestAll processes at once: 0 means DefaultWorkers.
	Workers int
	// EmbedBatch is the number of chunks given to the embedder per call, and of vectors
	// per upsert: 0 means DefaultEmbedBatch; at most MaxEmbedBatch. (The OpenAI adapter
	// splits further by the API's limits.)
	EmbedBatch int
	// StaleAfter is how long a document may stay "processing" before another attempt
	// or Reconcile may take it over as abandoned by a crashed process: 0 means
	// DefaultStaleAfter.
	StaleAfter time.Duration
	// Progress, if set, receives progress events. Calls are serialized per Ingest or
	// IngestAll call and must not block for long.
	Progress func(Progress)
	// Now returns the current time; nil means time.Now. Tests use it.
	Now func() time.Time
}

// Pipeline ingests documents for clones: store the original, extract its text, chunk,
// embed, upsert the vectors and record the document and its chunks, all scoped to the
// clone of the CloneContext passed to each call. It is safe for concurrent use.
type Pipeline struct {
	db        *clonesql.DB
	vectors   *vectorstore.Index
	objects   *objectstore.Bucket
	embedder  embed.Embedder
	extractor *extract.Registry
	chunker   *chunk.Chunker
	maxBytes  int64
	workers   int
	batch     int
	stale     time.Duration
	progress  func(Progress)
	now       func() time.Time

	// cloneLocks serialize Reconcile against Ingest and Delete of one clone in this
	// process (Reconcile takes the write lock); docLocks serialize work on one
	// document. Both are striped by hash, so memory does not grow with clones.
	cloneLocks [64]sync.RWMutex
	docLocks   [256]sync.Mutex
	seed       maphash.Seed
}

// New returns a Pipeline over a scoped SQL database (migrated by package migrate), a
// vector index and an object bucket, embedding chunks with embedder. objects may be
// nil: originals are then not kept and upload-ticket sources are refused.
//
// The embedder is required (a nil one is an error of kind clone.ErrInvalidInput, never
// a silent default): it must be the one answers are retrieved with (rag.NewRetriever),
// and its dimension the index's. Every document records its model
// (records.Document.Metadata, "cloneiso"."embedding_model"; see EmbeddingModel), so a
// retriever with another model refuses to answer from it instead of comparing vectors
// of two models. embed.NewLocal is the embedded, offline embedder.
func New(db *clonesql.DB, vectors *vectorstore.Index, objects *objectstore.Bucket, embedder embed.Embedder, opts *Options) (*Pipeline, error) {
	const op = "ingest.New"
	if db == nil || vectors == nil {
		return nil, errs.New(errs.InvalidInput, op, "a database and a vector index are required")
	}
	if embedder == nil {
		return nil, errs.New(errs.InvalidInput, op, "an embedder is required (embed.NewLocal is the embedded one; answers must be retrieved with the same one)")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxDocumentBytes == 0 {
		o.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.EmbedBatch == 0 {
		o.EmbedBatch = DefaultEmbedBatch
	}
	if o.StaleAfter == 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxDocumentBytes < 0 || o.Workers < 0 || o.EmbedBatch < 0 || o.StaleAfter < 0 {
		return nil, errs.New(errs.InvalidInput, op, "negative option")
	}
	if o.EmbedBatch > MaxEmbedBatch {
		return nil, errs.New(errs.InvalidInput, op, "EmbedBatch over %d", MaxEmbedBatch)
	}
	if embedder.Dimension() != vectors.Dimension() {
		return nil, errs.New(errs.InvalidInput, op, "embedder dimension %d differs from the index's %d", embedder.Dimension(), vectors.Dimension())
	}
	if o.Extractors == nil {
		r, err := extract.NewRegistry(&extract.Options{MaxInputBytes: o.MaxDocumentBytes})
		if err != nil {
			return nil, err
		}
		o.Extractors = r
	}
	ch, err := chunk.New(o.Chunking)
	if err != nil {
		return nil, err
	}
	return &Pipeline{
		db: db, vectors: vectors, objects: objects, embedder: embedder, extractor: o.Extractors,
		chunker: ch, maxBytes: o.MaxDocumentBytes, workers: o.Workers, batch: o.EmbedBatch,
		stale: o.StaleAfter, progress: o.Progress, now: o.Now, seed: maphash.MakeSeed(),
	}, nil
}

// Source is one document to ingest. Exactly one of Data, Reader and Upload is set.
type Source struct {
	// DocumentID, if set, names an existing document of the clone to replace with this
	// content (a new version); zero ingests a new document, or finds the clone's
	// document with identical content.
	DocumentID uuid.UUID
	// Title and SourceName (a file name or URL) describe the document.
	Title, SourceName string
	// ContentType is the document's MIME type; "" guesses it from SourceName and the
	// content (extract.DetectContentType).
	ContentType string
	// Data is the document's content.
	Data []byte
	// Reader supplies the content; it is read to the end (at most MaxDocumentBytes).
	Reader io.Reader
	// Upload is an upload ticket (objectstore.Bucket.UploadTicket) whose object the
	// client has uploaded into the clone: it is verified with
	// objectstore.Bucket.VerifyUpload before use, and deleted once the document is
	// ingested (the original is then kept under ObjectKind).
	Upload *objectstore.UploadTicket
	// Metadata is stored with the document (a JSON object, at most
	// records.MaxJSONBytes). The key "cloneiso" is reserved.
	Metadata map[string]any
}

// Outcome says what Ingest did.
type Outcome string

// Outcomes.
const (
	// Created: a new document was ingested.
	Created Outcome = "created"
	// Updated: an existing ready document was replaced by a new version (new content,
	// or the same content under a new embedding model or chunking).
	Updated Outcome = "updated"
	// Unchanged: the clone already had this content ready, ingested with the same
	// embedding model and chunking, and its vectors are all in the index (any it had
	// lost were restored first: see Result.VectorsRestored); nothing else was written.
	Unchanged Outcome = "unchanged"
)

// Result is what Ingest did with one source.
type Result struct {
	Document records.Document
	Outcome  Outcome
	// Err is the source's error, for IngestAll (Ingest returns it directly).
	Err error
	// VectorsRestored, for an Unchanged outcome, counts the document's chunk vectors
	// that the index had lost and that were re-embedded and upserted again.
	VectorsRestored int
	// CleanupErr, if set, reports that removing the previous version's vectors or
	// original (or the consumed upload) failed after the new version was committed;
	// the document is fine, and Reconcile removes the leftovers.
	CleanupErr error
}

// Stage names a step of the pipeline in progress events.
type Stage string

// Stages, in order.
const (
	StageStarted   Stage = "started"
	StageStored    Stage = "stored"
	StageExtracted Stage = "extracted"
	StageChunked   Stage = "chunked"
	StageEmbedded  Stage = "embedded" // once per batch of chunks embedded and upserted
	StageUpserted  Stage = "upserted" // all vectors are written
	StageReady     Stage = "ready"
	StageUnchanged Stage = "unchanged"
	StageFailed    Stage = "failed"
)

// Progress is one progress event. Counters are totals over the Ingest or IngestAll
// call so far, so a host can draw a progress bar from any event.
type Progress struct {
	Stage      Stage
	DocumentID uuid.UUID // zero before the document is known
	SourceName string
	Err        error // for StageFailed

	DocumentsDone, DocumentsTotal int
	// ChunksDone counts embedded chunks; ChunksTotal the chunks of the documents
	// chunked so far.
	ChunksDone, ChunksTotal int
	// BytesDone counts the bytes of finished documents; BytesTotal those of all
	// documents whose size is known so far.
	BytesDone, BytesTotal int64
}

// tracker aggregates progress over one call.
type tracker struct {
	mu sync.Mutex
	fn func(Progress)
	p  Progress
}

func (t *tracker) emit(f func(p *Progress), stage Stage, id uuid.UUID, src string, err error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if f != nil {
		f(&t.p)
	}
	if t.fn == nil {
		return
	}
	ev := t.p
	ev.Stage, ev.DocumentID, ev.SourceName, ev.Err = stage, id, src, err
	t.fn(ev)
}

// Ingest ingests one document for the clone in cc and returns what it did. See the
// package documentation for the steps, idempotency and failure guarantees.
func (p *Pipeline) Ingest(ctx context.Context, cc clone.CloneContext, src Source) (Result, error) {
	if err := cc.Validate("ingest.Ingest"); err != nil {
		return Result{}, err
	}
	t := &tracker{fn: p.progress}
	t.p.DocumentsTotal = 1
	if src.Data != nil {
		t.p.BytesTotal = int64(len(src.Data))
	}
	r, err := p.ingest(ctx, cc, src, t)
	return r, err
}

// IngestAll ingests sources for the clone in cc with at most Options.Workers documents
// in flight, and returns one Result per source, in order (each with its Err), and
// the errors joined. When ctx is cancelled, sources not yet started fail with the
// context's error (kind clone.ErrCanceled; clone.ErrUnavailable for a passed
// deadline); those in flight are cleaned up as for any failure.
func (p *Pipeline) IngestAll(ctx context.Context, cc clone.CloneContext, sources []Source) ([]Result, error) {
	if err := cc.Validate("ingest.IngestAll"); err != nil {
		return nil, err
	}
	t := &tracker{fn: p.progress}
	t.p.DocumentsTotal = len(sources)
	for _, s := range sources {
		if s.Data != nil {
			t.p.BytesTotal += int64(len(s.Data))
		}
	}
	results := make([]Result, len(sources))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(p.workers, len(sources)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := ctx.Err(); err != nil {
					k, _ := errs.ContextKind(err)
					results[i] = Result{Err: errs.Wrap(k, "ingest.IngestAll", err, "not started: the context ended")}
					continue
				}
				r, err := p.ingest(ctx, cc, sources[i], t)
				r.Err = err
				results[i] = r
			}
		}()
	}
	for i := range sources {
		next <- i
	}
	close(next)
	wg.Wait()
	var all []error
	for i, r := range results {
		if r.Err != nil {
			all = append(all, fmt.Errorf("source %d: %w", i, r.Err))
		}
	}
	return results, errors.Join(all...)
}

// EmbeddingModel returns the model (embed.Embedder.Model) the pipeline embedded the
// document's committed version with, as recorded in its metadata ("cloneiso" →
// "embedding_model"), or "" for a document without the pipeline's metadata. Package
// rag refuses to answer from a document whose model is not the question's.
func EmbeddingModel(d records.Document) string {
	var m struct {
		Cloneiso struct {
			EmbeddingModel string `json:"embedding_model"`
		} `json:"cloneiso"`
	}
	if len(d.Metadata) == 0 || json.Unmarshal(d.Metadata, &m) != nil {
		return ""
	}
	return m.Cloneiso.EmbeddingModel
}

// DocumentVersion returns the version tag of the document's committed content, as
// recorded by the pipeline in its metadata: 16 hex digits of a SHA-256 over the
// content hash and the pipeline configuration that produced the chunks and vectors
// (embedding model, chunk target and overlap). The same content ingested with the
// same configuration always gets the same version (so a retry overwrites its own
// vectors), and a change of content or configuration a new one (so it never
// overwrites the version being served). For a document without the pipeline's
// metadata (its chunks written by the host) it is Version(ContentHash), and "" if
// that is not a SHA-256.
func DocumentVersion(d records.Document) string {
	var m struct {
		Cloneiso struct {
			Version string `json:"version"`
		} `json:"cloneiso"`
	}
	if len(d.Metadata) > 0 && json.Unmarshal(d.Metadata, &m) == nil {
		if v := m.Cloneiso.Version; len(v) == versionLen && isHex(v) {
			return v
		}
	}
	if v := Version(d.ContentHash); len(v) == versionLen && isHex(v) {
		return v
	}
	return ""
}

// Version returns the version tag derived from a content hash alone (as stored in
// records.Document.ContentHash): its first 16 hex digits. It is the version of a
// document whose chunks and vectors a host wrote itself, without the pipeline's
// metadata (see DocumentVersion); the pipeline's own versions also cover its
// configuration.
func Version(contentHash string) string {
	h := strings.TrimPrefix(contentHash, "sha256:")
	if len(h) < versionLen {
		return h
	}
	return h[:versionLen]
}

// versionOf returns the version of content with hash under p's configuration.
func (p *Pipeline) versionOf(hash string) string {
	sum := sha256.Sum256([]byte(hash + "\x00" + p.embedder.Model() + "\x00" +
		strconv.Itoa(p.chunker.TargetTokens()) + "\x00" + strconv.Itoa(p.chunker.OverlapTokens())))
	return hex.EncodeToString(sum[:])[:versionLen]
}

// current reports whether d is ready with exactly this content and configuration.
func (p *Pipeline) current(d *records.Document, hash string) bool {
	return d.Status == records.StatusReady && d.ContentHash == hash && DocumentVersion(*d) == p.versionOf(hash)
}

// ContentHash returns the hash the pipeline records for content: "sha256:<hex>".
func ContentHash(content []byte) string {
	sum := sha256.Sum256(content)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// VectorID returns the ID of chunk ordinal of version version of document doc in the
// clone's vector namespace: "<document ID>#<version>-<ordinal>" (see
// DocumentVersion). A retried attempt gets the same IDs, so its upserts overwrite
// instead of duplicating, and two versions of a document never share an ID.
func VectorID(doc uuid.UUID, version string, ordinal int) string {
	return doc.String() + "#" + version + "-" + strconv.Itoa(ordinal)
}

// ObjectName returns the name (of kind ObjectKind) of the original of version version
// of document doc: "<document ID>/<version>".
func ObjectName(doc uuid.UUID, version string) string {
	return doc.String() + "/" + version
}

// parseVectorID splits a vector ID written by the pipeline; ok is false for any other
// ID (hosts may keep their own vectors in a clone's namespace).
func parseVectorID(id string) (doc uuid.UUID, version string, ordinal int, ok bool) {
	d, rest, found := strings.Cut(id, "#")
	if !found {
		return uuid.Nil, "", 0, false
	}
	v, o, found := strings.Cut(rest, "-")
	if !found || len(v) != versionLen || !isHex(v) {
		return uuid.Nil, "", 0, false
	}
	n, err := strconv.Atoi(o)
	if err != nil || n < 0 || strconv.Itoa(n) != o {
		return uuid.Nil, "", 0, false
	}
	u, err := clone.ParseID(d)
	if err != nil {
		return uuid.Nil, "", 0, false
	}
	return u, v, n, true
}

func parseObjectName(name string) (doc uuid.UUID, version string, ok bool) {
	d, v, found := strings.Cut(name, "/")
	if !found || len(v) != versionLen || !isHex(v) {
		return uuid.Nil, "", false
	}
	u, err := clone.ParseID(d)
	if err != nil {
		return uuid.Nil, "", false
	}
	return u, v, true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// documentNamespace derives the IDs of new documents from their content, so that
// concurrent first ingestions of the same content in one clone converge on one row.
var documentNamespace = uuid.MustParse("5a0c3f7e-9b1d-4c6e-8f2a-1d3b5c7e9f01")

func newDocumentID(cc clone.CloneContext, hash string) uuid.UUID {
	return uuid.NewSHA1(documentNamespace, []byte(cc.TenantID().String()+"/"+cc.CloneID().String()+"/"+hash))
}

func (p *Pipeline) cloneLock(cc clone.CloneContext) *sync.RWMutex {
	return &p.cloneLocks[maphash.String(p.seed, cc.String())%uint64(len(p.cloneLocks))]
}

func (p *Pipeline) docLock(cc clone.CloneContext, key string) *sync.Mutex {
	return &p.docLocks[maphash.String(p.seed, cc.String()+"/"+key)%uint64(len(p.docLocks))]
}

func (p *Pipeline) q() clonesql.Querier { return p.db }

// read returns the source's content and content type, verifying an upload first.
func (p *Pipeline) read(ctx context.Context, cc clone.CloneContext, src *Source) ([]byte, string, error) {
	const op = "ingest.Ingest"
	if err := errors.Join(checkText("title", src.Title), checkText("source name", src.SourceName)); err != nil {
		return nil, "", err
	}
	n := 0
	for _, set := range []bool{src.Data != nil, src.Reader != nil, src.Upload != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, "", errs.New(errs.InvalidInput, op, "exactly one of Data, Reader and Upload must be set")
	}
	ct := src.ContentType
	var data []byte
	switch {
	case src.Data != nil:
		if int64(len(src.Data)) > p.maxBytes {
			return nil, "", errs.New(errs.TooLarge, op, "document of %d bytes is over the limit of %d", len(src.Data), p.maxBytes)
		}
		data = src.Data
	case src.Reader != nil:
		b, err := io.ReadAll(io.LimitReader(src.Reader, p.maxBytes+1))
		if err != nil {
			return nil, "", errs.Wrap(errs.InvalidInput, op, err, "cannot read the document")
		}
		if int64(len(b)) > p.maxBytes {
			return nil, "", errs.New(errs.TooLarge, op, "document is over the limit of %d bytes", p.maxBytes)
		}
		data = b
	default:
		if p.objects == nil {
			return nil, "", errs.New(errs.Unsupported, op, "upload sources need an object bucket")
		}
		attrs, err := p.objects.VerifyUpload(ctx, cc, src.Upload)
		if err != nil {
			return nil, "", err
		}
		if attrs.Size > p.maxBytes {
			return nil, "", errs.New(errs.TooLarge, op, "upload of %d bytes is over the limit of %d", attrs.Size, p.maxBytes)
		}
		b, err := p.objects.ReadAll(ctx, cc, src.Upload.Kind, src.Upload.Name)
		if err != nil {
			return nil, "", err
		}
		if int64(len(b)) > p.maxBytes {
			return nil, "", errs.New(errs.TooLarge, op, "upload is over the limit of %d bytes", p.maxBytes)
		}
		data = b
		if ct == "" {
			ct = src.Upload.ContentType
		}
	}
	if ct == "" {
		ct = extract.DetectContentType(src.SourceName, data)
	}
	// Typed error (unsupported or malformed type, content contradicting it) before
	// anything is written.
	if err := p.extractor.Check(ct, data); err != nil {
		return nil, "", err
	}
	return data, ct, nil
}

// split chunks an extracted document: page by page for paged documents (PDF), so
// every chunk lies on one page, which its citation names; pages[i] is the page of
// chunks[i] (nil without pages). Offsets stay offsets into the whole text.
func (p *Pipeline) split(doc extract.Document) (chunks []chunk.Chunk, pages []int) {
	if len(doc.Pages) == 0 {
		return p.chunker.Split(doc.Text), nil
	}
	for i, start := range doc.Pages {
		end := len(doc.Text)
		if i+1 < len(doc.Pages) {
			end = doc.Pages[i+1]
		}
		for _, c := range p.chunker.Split(doc.Text[start:end]) {
			c.Start, c.End = c.Start+start, c.End+start
			chunks = append(chunks, c)
			pages = append(pages, i+1)
		}
	}
	return chunks, pages
}

// pageMetadata returns the metadata of chunk i: {"page": n} for a chunk of a paged
// document, nil otherwise.
func pageMetadata(pages []int, i int) json.RawMessage {
	if pages == nil {
		return nil
	}
	return json.RawMessage(fmt.Sprintf(`{%q:%d}`, MetaPage, pages[i]))
}

// metadata returns the document's metadata JSON: the caller's, plus the pipeline's
// own under "cloneiso".
func (p *Pipeline) metadata(src *Source, version string) (json.RawMessage, error) {
	m := make(map[string]any, len(src.Metadata)+1)
	for k, v := range src.Metadata {
		if k == "cloneiso" {
			return nil, errs.New(errs.InvalidInput, "ingest.Ingest", `metadata key "cloneiso" is reserved`)
		}
		m[k] = v
	}
	m["cloneiso"] = map[string]any{
		"embedding_model": p.embedder.Model(),
		"chunk_tokens":    p.chunker.TargetTokens(),
		"overlap_tokens":  p.chunker.OverlapTokens(),
		"version":         version,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidInput, "ingest.Ingest", err, "metadata is not JSON")
	}
	if len(b) > records.MaxJSONBytes {
		return nil, errs.New(errs.TooLarge, "ingest.Ingest", "metadata of %d bytes is over the limit of %d", len(b), records.MaxJSONBytes)
	}
	return b, nil
}

// checkText validates a descriptive field up front, as records would at the end.
func checkText(field, v string) error {
	const op = "ingest.Ingest"
	if len(v) > records.MaxTitleBytes {
		return errs.New(errs.TooLarge, op, "%s of %d bytes is over the limit of %d", field, len(v), records.MaxTitleBytes)
	}
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return errs.New(errs.InvalidInput, op, "%s is not valid UTF-8 without NUL", field)
	}
	return nil
}

// attempt is the state of one ingestion attempt, for compensation.
type attempt struct {
	doc        records.Document // the row as claimed
	prev       records.Document // the row before the claim
	hadVersion bool             // prev was a ready version that must survive a failure
	vectorIDs  []string         // vectors this attempt may have written
	objectName string           // original this attempt may have written ("" if none)
	hash       string           // the new content's hash
	version    string           // and its version
	created    bool             // the row was created by this attempt
}

func (p *Pipeline) ingest(ctx context.Context, cc clone.CloneContext, src Source, t *tracker) (Result, error) {
	cl := p.cloneLock(cc)
	cl.RLock()
	defer cl.RUnlock()

	data, ct, err := p.read(ctx, cc, &src)
	if err != nil {
		t.emit(func(pp *Progress) { pp.DocumentsDone++; pp.BytesDone += int64(len(src.Data)) }, StageFailed, src.DocumentID, src.SourceName, err)
		return Result{}, err
	}
	if src.Data == nil {
		t.emit(func(pp *Progress) { pp.BytesTotal += int64(len(data)) }, StageStarted, src.DocumentID, src.SourceName, nil)
	} else {
		t.emit(nil, StageStarted, src.DocumentID, src.SourceName, nil)
	}
	hash := ContentHash(data)
	meta, err := p.metadata(&src, p.versionOf(hash))
	if err != nil {
		t.emit(func(pp *Progress) { pp.DocumentsDone++; pp.BytesDone += int64(len(data)) }, StageFailed, src.DocumentID, src.SourceName, err)
		return Result{}, err
	}
	lockKey := hash
	if src.DocumentID != uuid.Nil {
		lockKey = src.DocumentID.String()
	}
	dl := p.docLock(cc, lockKey)
	dl.Lock()
	defer dl.Unlock()

	done := func(stage Stage, id uuid.UUID, err error) {
		t.emit(func(pp *Progress) { pp.DocumentsDone++; pp.BytesDone += int64(len(data)) }, stage, id, src.SourceName, err)
	}

	a, unchanged, err := p.claim(ctx, cc, &src, hash, ct, int64(len(data)), meta)
	if err != nil {
		done(StageFailed, src.DocumentID, err)
		return Result{}, err
	}
	if unchanged != nil {
		// The content is already ready: answer "unchanged" only once its vectors are
		// verified to be in the index, restoring any it lost.
		n, err := p.verifyDocument(ctx, cc, unchanged)
		if err != nil {
			done(StageFailed, unchanged.ID, err)
			return Result{}, err
		}
		done(StageUnchanged, unchanged.ID, nil)
		return Result{Document: *unchanged, Outcome: Unchanged, VectorsRestored: n}, nil
	}
	res, err := p.run(ctx, cc, &src, a, data, hash, ct, t)
	if err != nil {
		err = errors.Join(err, p.compensate(ctx, cc, a, err))
		done(StageFailed, a.doc.ID, err)
		return Result{}, err
	}
	// The new version is live: remove what belonged to earlier versions and the
	// consumed upload. Failures here do not undo the ingestion.
	res.CleanupErr = p.cleanupOld(ctx, cc, a, &src)
	done(StageReady, a.doc.ID, nil)
	return res, nil
}

// claim finds or creates the document row and moves it to "processing", or returns
// the unchanged document if the clone already has this content ready.
func (p *Pipeline) claim(ctx context.Context, cc clone.CloneContext, src *Source, hash, ct string, size int64, meta json.RawMessage) (*attempt, *records.Document, error) {
	const op = "ingest.Ingest"
	var doc records.Document
	var err error
	created := false
	switch {
	case src.DocumentID != uuid.Nil:
		doc, err = records.GetDocument(ctx, p.q(), cc, src.DocumentID)
		if err != nil {
			return nil, nil, err
		}
		if p.current(&doc, hash) {
			return nil, &doc, nil
		}
	default:
		found, err := p.findByHash(ctx, cc, hash)
		if err != nil {
			return nil, nil, err
		}
		if found != nil && p.current(found, hash) {
			return nil, found, nil
		}
		if found != nil {
			doc = *found
			break
		}
		doc, err = records.CreateDocument(ctx, p.q(), cc, records.Document{
			ID: newDocumentID(cc, hash), Title: src.Title, SourceName: src.SourceName,
			ContentType: ct, SizeBytes: size, ContentHash: hash, Status: records.StatusPending, Metadata: meta,
		})
		created = err == nil
		if errors.Is(err, clone.ErrConflict) {
			// Created concurrently, or the ID is taken by a document that has since been
			// updated to other content: look again, else use a random ID.
			if found, ferr := p.findByHash(ctx, cc, hash); ferr != nil {
				return nil, nil, ferr
			} else if found != nil && p.current(found, hash) {
				return nil, found, nil
			} else if found != nil {
				doc, err = *found, nil
			} else {
				doc, err = records.CreateDocument(ctx, p.q(), cc, records.Document{
					Title: src.Title, SourceName: src.SourceName, ContentType: ct, SizeBytes: size,
					ContentHash: hash, Status: records.StatusPending, Metadata: meta,
				})
				created = err == nil
			}
		}
		if err != nil {
			return nil, nil, err
		}
	}
	// A ready document here has another content or configuration: its version is
	// served until the new one commits, and survives a failure.
	a := &attempt{prev: doc, hash: hash, version: p.versionOf(hash), hadVersion: doc.Status == records.StatusReady, created: created}
	if doc.Status == records.StatusProcessing && p.now().Sub(doc.UpdatedAt) < p.stale {
		return nil, nil, errs.New(errs.Conflict, op, "document is being ingested by another call")
	}
	if doc.Status == records.StatusProcessing {
		// Abandoned by a crashed attempt: whether an older version is intact is told by
		// its chunks, which only a committed version has.
		a.hadVersion = doc.ChunkCount > 0
	}
	now := p.now().UTC().Truncate(time.Microsecond)
	res, err := p.db.Exec(ctx, cc, `UPDATE documents SET status = 'processing', error = '', updated_at = :now
		WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id AND status = :status AND updated_at = :seen`,
		map[string]any{"id": doc.ID, "now": now, "status": doc.Status, "seen": doc.UpdatedAt})
	if err != nil {
		if doc.Status == records.StatusPending {
			// Do not leave a row this call may have just created pending (for example
			// when ctx was cancelled in between): record the failure.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), compensationTimeout)
			defer cancel()
			if rerr := p.release(cctx, cc, &attempt{doc: doc}, records.StatusFailed, errorMessage(err)); rerr != nil {
				err = errors.Join(err, fmt.Errorf("recording the failure: %w", rerr))
			}
		}
		return nil, nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, nil, clonesql.ClassifyError(op, err)
	} else if n == 0 {
		return nil, nil, errs.New(errs.Conflict, op, "document changed concurrently; try again")
	}
	doc.Status, doc.Error, doc.UpdatedAt = records.StatusProcessing, "", now
	a.doc = doc
	return a, nil, nil
}

// findByHash returns the clone's document with content hash, preferring a ready one.
func (p *Pipeline) findByHash(ctx context.Context, cc clone.CloneContext, hash string) (*records.Document, error) {
	docs, err := records.FindDocumentsByHash(ctx, p.q(), cc, hash)
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	for i := range docs {
		if docs[i].Status == records.StatusReady {
			return &docs[i], nil
		}
	}
	return &docs[0], nil
}

// run performs the steps after the claim, up to and including the commit.
func (p *Pipeline) run(ctx context.Context, cc clone.CloneContext, src *Source, a *attempt, data []byte, hash, ct string, t *tracker) (Result, error) {
	objectKey, err := p.storeOriginal(ctx, cc, src, a, data, ct, t)
	if err != nil {
		return Result{}, err
	}
	// The extractor learns the clone from the context: a PDF instance is reused
	// only for documents of the same clone (extract.PDFOptions.DocumentsPerInstance).
	chunks, pages, err := p.chunkDocument(clone.WithContext(ctx, cc), src, a, data, ct, t)
	if err != nil {
		return Result{}, err
	}
	if err := p.embedChunks(ctx, cc, src, a, chunks, t); err != nil {
		return Result{}, err
	}
	next := a.doc
	next.Title, next.SourceName, next.ContentType = src.Title, src.SourceName, ct
	next.SizeBytes, next.ContentHash, next.ObjectKey = int64(len(data)), hash, objectKey
	next.Status, next.Error = records.StatusReady, ""
	if next.Metadata, err = p.metadata(src, a.version); err != nil {
		return Result{}, err
	}
	stored, err := p.commit(ctx, cc, a, next, chunkRows(a, chunks, pages))
	if err != nil {
		return Result{}, err
	}
	outcome := Created
	if a.prev.Status == records.StatusReady {
		outcome = Updated
	}
	return Result{Document: stored, Outcome: outcome}, nil
}

// storeOriginal stores the document's bytes as the attempt's original, if the pipeline
// keeps originals, and returns its object key ("" if not).
func (p *Pipeline) storeOriginal(ctx context.Context, cc clone.CloneContext, src *Source, a *attempt, data []byte, ct string, t *tracker) (string, error) {
	if p.objects == nil {
		return "", nil
	}
	name := ObjectName(a.doc.ID, a.version)
	a.objectName = name
	if _, err := p.objects.Put(ctx, cc, ObjectKind, name, bytes.NewReader(data), &objectstore.WriteOptions{ContentType: ct, Size: int64(len(data))}); err != nil {
		return "", err
	}
	key, err := objectstore.Key(cc, ObjectKind, name)
	if err != nil {
		return "", err
	}
	t.emit(nil, StageStored, a.doc.ID, src.SourceName, nil)
	return key, nil
}

// chunkDocument extracts the document's text and splits it into chunks (with the page
// of each, if paged), within records.MaxChunksPerDocument.
func (p *Pipeline) chunkDocument(ctx context.Context, src *Source, a *attempt, data []byte, ct string, t *tracker) ([]chunk.Chunk, []int, error) {
	const op = "ingest.Ingest"
	doc, err := p.extractor.ExtractDocument(ctx, ct, data)
	if err != nil {
		return nil, nil, err
	}
	t.emit(nil, StageExtracted, a.doc.ID, src.SourceName, nil)

	chunks, pages := p.split(doc)
	if len(chunks) == 0 {
		return nil, nil, errs.New(errs.InvalidInput, op, "the document has no text")
	}
	if len(chunks) > records.MaxChunksPerDocument {
		return nil, nil, errs.New(errs.TooLarge, op, "the document has %d chunks; the limit is %d", len(chunks), records.MaxChunksPerDocument)
	}
	t.emit(func(pp *Progress) { pp.ChunksTotal += len(chunks) }, StageChunked, a.doc.ID, src.SourceName, nil)
	return chunks, pages, nil
}

// embedChunks embeds the chunks in batches and upserts their vectors, under the IDs it
// records in a.vectorIDs.
func (p *Pipeline) embedChunks(ctx context.Context, cc clone.CloneContext, src *Source, a *attempt, chunks []chunk.Chunk, t *tracker) error {
	const op = "ingest.Ingest"
	id, version := a.doc.ID, a.version
	a.vectorIDs = make([]string, len(chunks))
	for i := range chunks {
		a.vectorIDs[i] = VectorID(id, version, i)
	}
	texts := make([]string, len(chunks))
	for i, c := range chunks {
		texts[i] = c.Text
	}
	vectors := make([]vectorstore.Vector, 0, min(len(chunks), p.batch))
	for start := 0; start < len(chunks); start += p.batch {
		end := min(start+p.batch, len(chunks))
		if err := ctx.Err(); err != nil {
			k, _ := errs.ContextKind(err)
			return errs.Wrap(k, op, err, "the context ended")
		}
		vs, err := p.embedder.Embed(ctx, texts[start:end])
		if err != nil {
			if errs.KindOf(err) == errs.Unknown {
				err = errs.Wrap(errs.Unavailable, op, err, "embedder failed")
			}
			return err
		}
		if len(vs) != end-start {
			return errs.New(errs.Unavailable, op, "embedder returned %d vectors for %d texts", len(vs), end-start)
		}
		vectors = vectors[:0]
		for i, v := range vs {
			ord := start + i
			vectors = append(vectors, vectorstore.Vector{
				ID: a.vectorIDs[ord], Values: v,
				Metadata: map[string]any{MetaDocumentID: id.String(), MetaOrdinal: float64(ord), MetaVersion: version},
			})
		}
		if err := p.vectors.Upsert(ctx, cc, vectors); err != nil {
			return err
		}
		t.emit(func(pp *Progress) { pp.ChunksDone += end - start }, StageEmbedded, id, src.SourceName, nil)
	}
	t.emit(nil, StageUpserted, id, src.SourceName, nil)
	return nil
}

// chunkRows returns the chunk rows of the attempt's chunks.
func chunkRows(a *attempt, chunks []chunk.Chunk, pages []int) []records.Chunk {
	rows := make([]records.Chunk, len(chunks))
	for i, c := range chunks {
		rows[i] = records.Chunk{
			Ordinal: i, Content: c.Text, TokenCount: c.Tokens,
			StartOffset: c.Start, EndOffset: c.End, VectorID: a.vectorIDs[i],
			Metadata: pageMetadata(pages, i),
		}
	}
	return rows
}

// commit replaces the document's chunks with rows and stores next as the document, in
// one transaction that first checks the attempt still holds its claim. A commit whose
// acknowledgement was lost but that succeeded is a success.
func (p *Pipeline) commit(ctx context.Context, cc clone.CloneContext, a *attempt, next records.Document, rows []records.Chunk) (records.Document, error) {
	const op = "ingest.Ingest"
	id := a.doc.ID
	var stored records.Document
	err := p.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
		q := tx.Querier() // its Audit() holds denials until the transaction has ended
		cur, err := records.GetDocument(ctx, q, cc, id)
		if err != nil {
			return err
		}
		if cur.Status != records.StatusProcessing || !cur.UpdatedAt.Equal(a.doc.UpdatedAt) {
			return errs.New(errs.Conflict, op, "the document was changed or taken over while it was being ingested")
		}
		if _, err := records.ReplaceDocumentChunks(ctx, q, cc, id, rows); err != nil {
			return err
		}
		stored, err = records.UpdateDocument(ctx, q, cc, next)
		return err
	})
	if err != nil {
		// A commit whose acknowledgement was lost may still have succeeded.
		if cur, gerr := records.GetDocument(context.WithoutCancel(ctx), p.q(), cc, id); gerr == nil &&
			p.current(&cur, next.ContentHash) && cur.ChunkCount == len(rows) {
			return cur, nil
		}
		return records.Document{}, err
	}
	return stored, nil
}

// compensate removes what a failed attempt wrote and records the failure. It runs
// even if ctx is done, within compensationTimeout.
//
// If the attempt lost its claim (it ran so long that another attempt took the
// document over as abandoned, or the document was deleted), the document is not
// touched, and the attempt's vectors and original are kept when they are the same
// version as the document's current one (same content, same IDs).
func (p *Pipeline) compensate(ctx context.Context, cc clone.CloneContext, a *attempt, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), compensationTimeout)
	defer cancel()
	owned, shared := true, false
	if cur, err := records.GetDocument(cctx, p.q(), cc, a.doc.ID); err == nil {
		owned = cur.Status == records.StatusProcessing && cur.UpdatedAt.Equal(a.doc.UpdatedAt)
		shared = !owned && DocumentVersion(cur) == a.version
	} else if errors.Is(err, clone.ErrNotFound) {
		owned = false
	}
	var errsOut []error
	if len(a.vectorIDs) > 0 && !shared {
		if err := p.deleteVectors(cctx, cc, a.vectorIDs); err != nil {
			errsOut = append(errsOut, fmt.Errorf("removing this attempt's vectors: %w", err))
		}
	}
	if a.objectName != "" && p.objects != nil && !shared {
		if err := p.objects.Delete(cctx, cc, ObjectKind, a.objectName); err != nil && !errors.Is(err, clone.ErrNotFound) {
			errsOut = append(errsOut, fmt.Errorf("removing this attempt's original: %w", err))
		}
	}
	if owned {
		var err error
		if a.hadVersion {
			// The previous version is still committed and served: keep it ready, and say
			// that the update failed.
			err = p.release(cctx, cc, a, records.StatusReady, "update failed: "+errorMessage(cause))
		} else {
			err = p.release(cctx, cc, a, records.StatusFailed, errorMessage(cause))
		}
		if err != nil {
			errsOut = append(errsOut, fmt.Errorf("recording the failure: %w", err))
		}
	}
	return errors.Join(errsOut...)
}

// release ends the attempt's claim on its document: status (ready or failed) and
// errMsg, only if the row is still as the attempt left it (status and updated_at).
func (p *Pipeline) release(ctx context.Context, cc clone.CloneContext, a *attempt, status records.DocumentStatus, errMsg string) error {
	_, err := p.db.Exec(ctx, cc, `UPDATE documents SET status = :status, error = :error, updated_at = :now
		WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id AND status = :from AND updated_at = :seen`,
		map[string]any{"id": a.doc.ID, "status": string(status), "error": errMsg, "now": p.now().UTC().Truncate(time.Microsecond), "from": string(a.doc.Status), "seen": a.doc.UpdatedAt})
	return err
}

// errorMessage is the failure recorded in the document row: the error's message,
// valid UTF-8 without NUL, at most records.MaxErrorBytes.
func errorMessage(err error) string {
	m := strings.ToValidUTF8(strings.ReplaceAll(err.Error(), "\x00", ""), "")
	if len(m) > records.MaxErrorBytes-32 {
		m = m[:records.MaxErrorBytes-32]
		for !utf8.ValidString(m) {
			m = m[:len(m)-1]
		}
	}
	return m
}

// cleanupOld removes, after a committed version, what belonged to the document's
// earlier versions, and the consumed upload. A brand-new document has nothing to
// remove; a document that was ready had exactly its previous version's vectors and
// original, whose names are known; any other (a retry of a failed document, a
// takeover of an abandoned one) is listed by prefix, to catch what earlier attempts
// may have left.
func (p *Pipeline) cleanupOld(ctx context.Context, cc clone.CloneContext, a *attempt, src *Source) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), compensationTimeout)
	defer cancel()
	var out []error
	newObject := ObjectName(a.doc.ID, a.version)
	prevVersion := DocumentVersion(a.prev)
	switch {
	case a.created:
	case a.prev.Status == records.StatusReady && prevVersion != "":
		if prevVersion != a.version {
			ids := make([]string, a.prev.ChunkCount)
			for i := range ids {
				ids[i] = VectorID(a.doc.ID, prevVersion, i)
			}
			if err := p.deleteVectors(cctx, cc, ids); err != nil {
				out = append(out, err)
			}
			if name := ObjectName(a.doc.ID, prevVersion); p.objects != nil && a.prev.ObjectKey != "" {
				if err := p.objects.Delete(cctx, cc, ObjectKind, name); err != nil && !errors.Is(err, clone.ErrNotFound) {
					out = append(out, err)
				}
			}
		}
	default:
		keep := make(map[string]bool, len(a.vectorIDs))
		for _, id := range a.vectorIDs {
			keep[id] = true
		}
		if err := p.deleteDocumentVectors(cctx, cc, a.doc.ID, keep); err != nil {
			out = append(out, err)
		}
		if p.objects != nil {
			if err := p.deleteDocumentObjects(cctx, cc, a.doc.ID, newObject); err != nil {
				out = append(out, err)
			}
		}
	}
	if p.objects != nil && src.Upload != nil {
		if err := p.objects.Delete(cctx, cc, src.Upload.Kind, src.Upload.Name); err != nil && !errors.Is(err, clone.ErrNotFound) {
			out = append(out, err)
		}
	}
	return errors.Join(out...)
}

// deleteVectors deletes the clone's vectors with the given IDs, in batches.
func (p *Pipeline) deleteVectors(ctx context.Context, cc clone.CloneContext, ids []string) error {
	for start := 0; start < len(ids); start += deleteBatch {
		if err := p.vectors.Delete(ctx, cc, ids[start:min(start+deleteBatch, len(ids))]); err != nil {
			return err
		}
	}
	return nil
}

// deleteDocumentVectors deletes every vector of document doc whose ID is not in keep.
func (p *Pipeline) deleteDocumentVectors(ctx context.Context, cc clone.CloneContext, doc uuid.UUID, keep map[string]bool) error {
	prefix := doc.String() + "#"
	var drop []string
	token := ""
	for {
		page, err := p.vectors.List(ctx, cc, &vectorstore.ListOptions{Prefix: prefix, PageToken: token, Limit: vectorstore.MaxListLimit})
		if err != nil {
			return err
		}
		for _, id := range page.IDs {
			if !keep[id] {
				drop = append(drop, id)
			}
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
	}
	return p.deleteVectors(ctx, cc, drop)
}

// deleteDocumentObjects deletes every original of document doc except keepName.
func (p *Pipeline) deleteDocumentObjects(ctx context.Context, cc clone.CloneContext, doc uuid.UUID, keepName string) error {
	var drop []string
	token := ""
	for {
		page, err := p.objects.List(ctx, cc, &objectstore.ListOptions{Kind: ObjectKind, NamePrefix: doc.String() + "/", PageToken: token, PageSize: 1000})
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			if o.Name != keepName {
				drop = append(drop, o.Name)
			}
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
	}
	for _, name := range drop {
		if err := p.objects.Delete(ctx, cc, ObjectKind, name); err != nil && !errors.Is(err, clone.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Delete deletes document id of the clone in cc: its row and chunks (so readers stop
// finding it at once), then its vectors and originals. A document that is missing or
// another clone's is clone.ErrNotFound. If removing vectors or objects fails after
// the rows are gone, the error says so and Reconcile removes the leftovers.
func (p *Pipeline) Delete(ctx context.Context, cc clone.CloneContext, id uuid.UUID) error {
	if err := cc.Validate("ingest.Delete"); err != nil {
		return err
	}
	cl := p.cloneLock(cc)
	cl.RLock()
	defer cl.RUnlock()
	dl := p.docLock(cc, id.String())
	dl.Lock()
	defer dl.Unlock()
	if err := records.DeleteDocument(ctx, p.q(), cc, id); err != nil {
		return err
	}
	var out []error
	if err := p.deleteDocumentVectors(ctx, cc, id, nil); err != nil {
		out = append(out, err)
	}
	if p.objects != nil {
		if err := p.deleteDocumentObjects(ctx, cc, id, ""); err != nil {
			out = append(out, err)
		}
	}
	return errors.Join(out...)
}

// Resolve turns vector matches from the clone's index into the chunks they stand for,
// in the order of matches, for retrieval. Matches that are not the pipeline's vectors,
// whose chunk no longer exists, or whose ID differs from the chunk's current VectorID
// (a version being written or being removed) are dropped, so a reader never mixes
// two versions of a document. At most records.MaxChunkKeys matches are resolved.
func Resolve(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, matches []vectorstore.Match) ([]records.Chunk, error) {
	const op = "ingest.Resolve"
	if err := cc.Validate(op); err != nil {
		return nil, err
	}
	if len(matches) > records.MaxChunkKeys {
		return nil, errs.New(errs.InvalidInput, op, "%d matches; at most %d are resolved", len(matches), records.MaxChunkKeys)
	}
	keys := make([]records.ChunkKey, 0, len(matches))
	// Every matched vector ID per chunk: during a re-ingestion the old and the new
	// version of one chunk can both match, and the current one must not be dropped.
	want := make(map[records.ChunkKey][]string, len(matches))
	for _, m := range matches {
		doc, _, ord, ok := parseVectorID(m.ID)
		if !ok {
			continue
		}
		k := records.ChunkKey{DocumentID: doc, Ordinal: ord}
		if _, dup := want[k]; !dup {
			keys = append(keys, k)
		}
		want[k] = append(want[k], m.ID)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	// The keys come from the clone's own vector matches (re-checked by the index), not
	// from a request: a key without a row is an ingestion or deletion in flight, not a
	// probe of another clone's IDs, so it is not audited as a denial.
	chunks, err := records.GetChunks(ctx, records.WithAudit(q, audit.Discard), cc, keys)
	if err != nil {
		return nil, err
	}
	out := chunks[:0]
	for _, c := range chunks {
		if slices.Contains(want[records.ChunkKey{DocumentID: c.DocumentID, Ordinal: c.Ordinal}], c.VectorID) {
			out = append(out, c)
		}
	}
	return out, nil
}
