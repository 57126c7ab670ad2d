package rag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// Limits of a retrieval, checked before any store is called.
const (
	// MaxQuestionBytes bounds a question (bytes of UTF-8).
	MaxQuestionBytes = 16 << 10
	// DefaultTopK is the number of passages retrieved when RetrieveOptions.TopK is 0.
	DefaultTopK = 5
	// MaxTopK bounds RetrieveOptions.TopK.
	MaxTopK = 100
	// overfetch is the extra matches a query asks for beyond 2·TopK.
	overfetch = 5
	// MaxCandidates bounds the vector matches considered for MMR (the vector store's
	// limit for queries that return values).
	MaxCandidates = vectorstore.MaxTopKWithData
	// DefaultMMRLambda is the relevance weight of MMR when RetrieveOptions.MMRLambda is 0.
	DefaultMMRLambda = 0.5
)

// Citation names the source of a passage: which document, which chunk of it, and where
// in the document's text. It is what assistant messages store (as a JSON array) in
// their citations column.
type Citation struct {
	Marker      string    `json:"marker,omitempty"` // the passage's marker in the prompt and answer, e.g. "[1]"
	DocumentID  uuid.UUID `json:"document_id"`
	Title       string    `json:"title"`
	Ordinal     int       `json:"ordinal"`      // the chunk's position in the document
	StartOffset int       `json:"start_offset"` // byte offsets of the passage in the document's text
	EndOffset   int       `json:"end_offset"`
	Page        int       `json:"page,omitempty"` // the passage's page (from 1) in a paged document (PDF)
	Score       float32   `json:"score"`          // the vector similarity of the passage to the question
}

// Passage is one retrieved chunk of the clone's documents, with its text, its score and
// where it comes from. TenantID and CloneID are the owner the chunk row carried; the
// prompt builder refuses a passage whose owner differs from the context.
type Passage struct {
	TenantID    uuid.UUID
	CloneID     uuid.UUID
	DocumentID  uuid.UUID
	Title       string // the document's title
	Ordinal     int
	StartOffset int
	EndOffset   int
	Text        string
	Page        int     // the passage's page (from 1) in a paged document; 0 without pages (ingest.MetaPage)
	TokenCount  int     // the chunk's token count as stored by ingestion
	Score       float32 // vector similarity to the question (cosine on the embedded index)
	VectorID    string
}

// Citation returns p's citation (without a marker).
func (p Passage) Citation() Citation {
	return Citation{DocumentID: p.DocumentID, Title: p.Title, Ordinal: p.Ordinal,
		StartOffset: p.StartOffset, EndOffset: p.EndOffset, Page: p.Page, Score: p.Score}
}

// page returns the page of a chunk's metadata (ingest.MetaPage), 0 if none.
func page(meta json.RawMessage) int {
	if len(meta) == 0 {
		return 0
	}
	var m struct {
		Page int `json:"page"`
	}
	if json.Unmarshal(meta, &m) != nil || m.Page <= 0 {
		return 0
	}
	return m.Page
}

// RetrieveOptions tune one retrieval; nil means the defaults.
type RetrieveOptions struct {
	// TopK is the number of passages wanted: 0 means DefaultTopK; 1..MaxTopK.
	TopK int
	// MinScore, if not 0, drops matches whose similarity is below it (-1..1 for cosine).
	MinScore float32
	// MMR diversifies the passages by maximal marginal relevance: among Candidates
	// matches, each next passage maximizes MMRLambda·sim(question) −
	// (1−MMRLambda)·max sim(already chosen), so near-duplicates do not crowd out other
	// sources.
	MMR bool
	// MMRLambda weighs relevance against diversity, 0..1: 0 means DefaultMMRLambda.
	MMRLambda float64
	// Candidates is the number of vector matches MMR chooses from: 0 means 4·TopK (at
	// least 20); TopK..MaxCandidates. Ignored without MMR.
	Candidates int
	// Filter is an optional metadata filter in Pinecone's language, AND-ed with the
	// clone scope by the vector store.
	Filter map[string]any
}

// Timing is the latency breakdown of a retrieval (and, in a Response, of prompt
// building).
type Timing struct {
	Embed  time.Duration // embedding the question
	Query  time.Duration // the vector query (and MMR)
	Load   time.Duration // loading chunks and documents from SQL
	Prompt time.Duration // building the prompt (set by the Processor)
}

// Retrieval is the result of Retriever.Retrieve.
type Retrieval struct {
	Passages []Passage // best first
	Timing   Timing
}

// RetrieverOptions configure NewRetriever; nil means the defaults.
type RetrieverOptions struct {
	// Audit receives isolation violations found in store results. Default: the DB's
	// sink.
	Audit audit.Sink
}

// Retriever finds the passages of one clone's documents that best answer a question:
// it embeds the question, queries the clone's vectors, and loads the matching chunks
// and their documents from SQL — every step scoped to the CloneContext it is given.
// It is safe for concurrent use and keeps no per-clone state.
type Retriever struct {
	db    *clonesql.DB
	index *vectorstore.Index
	emb   embed.Embedder
	audit audit.Sink
}

// NewRetriever returns a Retriever over the clone-scoped SQL database db, the
// clone-scoped vector index and the embedder the documents were ingested with (its
// dimension must be the index's).
func NewRetriever(db *clonesql.DB, index *vectorstore.Index, embedder embed.Embedder, opts *RetrieverOptions) (*Retriever, error) {
	const op = "rag.NewRetriever"
	if db == nil || index == nil || embedder == nil {
		return nil, errs.New(errs.InvalidInput, op, "database, index and embedder are required")
	}
	if embedder.Dimension() != index.Dimension() {
		return nil, errs.New(errs.InvalidInput, op, "embedder dimension %d differs from index dimension %d", embedder.Dimension(), index.Dimension())
	}
	r := &Retriever{db: db, index: index, emb: embedder, audit: db.Audit()}
	if opts != nil && opts.Audit != nil {
		r.audit = opts.Audit
	}
	return r, nil
}

// ValidateQuestion checks a question as Retrieve and Process do before touching any
// store: not empty or only white space, valid UTF-8 without NUL bytes
// (clone.ErrInvalidInput), at most MaxQuestionBytes (clone.ErrTooLarge).
func ValidateQuestion(q string) error { return validateQuestion("rag.ValidateQuestion", q) }

func validateQuestion(op, q string) error {
	switch {
	case strings.TrimSpace(q) == "":
		return errs.New(errs.InvalidInput, op, "question is empty")
	case len(q) > MaxQuestionBytes:
		return errs.New(errs.TooLarge, op, "question is longer than %d bytes", MaxQuestionBytes)
	case !utf8.ValidString(q):
		return errs.New(errs.InvalidInput, op, "question is not valid UTF-8")
	case strings.IndexByte(q, 0) >= 0:
		return errs.New(errs.InvalidInput, op, "question contains a NUL byte")
	}
	return nil
}

type retrieveParams struct {
	topK, candidates int
	minScore         float32
	mmr              bool
	lambda           float64
	filter           map[string]any
}

func retrieveOptions(op string, opts *RetrieveOptions) (retrieveParams, error) {
	p := retrieveParams{topK: DefaultTopK, lambda: DefaultMMRLambda}
	if opts == nil {
		return p, nil
	}
	if opts.TopK < 0 || opts.TopK > MaxTopK {
		return p, errs.New(errs.InvalidInput, op, "top-k must be 1..%d", MaxTopK)
	}
	if opts.TopK > 0 {
		p.topK = opts.TopK
	}
	if f := float64(opts.MinScore); math.IsNaN(f) || math.IsInf(f, 0) || f < -1 || f > 1 {
		return p, errs.New(errs.InvalidInput, op, "minimum score must be -1..1")
	}
	p.minScore = opts.MinScore
	if math.IsNaN(opts.MMRLambda) || opts.MMRLambda < 0 || opts.MMRLambda > 1 {
		return p, errs.New(errs.InvalidInput, op, "MMR lambda must be 0..1")
	}
	if opts.MMRLambda > 0 {
		p.lambda = opts.MMRLambda
	}
	p.mmr = opts.MMR
	p.filter = opts.Filter
	if p.mmr {
		p.candidates = max(4*p.topK, 20)
		if opts.Candidates != 0 {
			if opts.Candidates < p.topK || opts.Candidates > MaxCandidates {
				return p, errs.New(errs.InvalidInput, op, "candidates must be top-k..%d", MaxCandidates)
			}
			p.candidates = opts.Candidates
		}
		p.candidates = min(p.candidates, MaxCandidates)
	}
	return p, nil
}

// Retrieve returns the clone's passages most similar to question, best first (in MMR
// order with RetrieveOptions.MMR). Only chunks that exist in SQL for the clone become
// passages, through ingest.Resolve: vector matches that are not the ingestion
// pipeline's (see ingest.VectorID), whose chunk is gone (a document deleted since), or
// whose ID is not the chunk's current VectorID (a version being written or removed)
// are skipped, so a clone never cites two versions of a document. The query asks
// for 2·TopK+5 matches (Candidates with MMR) to make up for them, so fewer than TopK
// passages come back only when the clone has fewer usable chunks among those.
//
// Every store result is re-checked against cc: a chunk or document row of another
// clone fails the call with clone.ErrIsolationViolation and one audit.Violation event
// (the stores check too; this is the last line before the prompt). A passage of a
// document embedded with another model than the retriever's embedder (as recorded by
// package ingest) fails the call with clone.ErrInternal and an [EmbeddingModelError]:
// the question's vector and the document's are not comparable.
func (r *Retriever) Retrieve(ctx context.Context, cc clone.CloneContext, question string, opts *RetrieveOptions) (*Retrieval, error) {
	const op = "rag.Retrieve"
	if err := cc.Validate(op); err != nil {
		return nil, err
	}
	if err := validateQuestion(op, question); err != nil {
		return nil, err
	}
	p, err := retrieveOptions(op, opts)
	if err != nil {
		return nil, err
	}
	res := &Retrieval{}

	t0 := time.Now()
	vecs, err := r.emb.Embed(ctx, []string{question})
	if err != nil {
		return nil, wrapKind(op, err, "embedding the question failed")
	}
	if len(vecs) != 1 || len(vecs[0]) != r.index.Dimension() {
		return nil, errs.New(errs.Unknown, op, "embedder returned a vector of the wrong shape")
	}
	t1 := time.Now()
	res.Timing.Embed = t1.Sub(t0)

	// Over-fetch a little: matches that are not chunk vectors, or whose chunk is gone,
	// are dropped below and should not leave the result short.
	q := vectorstore.Query{Vector: vecs[0], TopK: min(2*p.topK+overfetch, vectorstore.MaxTopK), Filter: p.filter}
	if p.mmr {
		q.TopK, q.IncludeValues = p.candidates, true
	}
	matches, err := r.index.Query(ctx, cc, q)
	if err != nil {
		return nil, err
	}
	// Keep matches above the threshold.
	kept := matches[:0]
	for _, m := range matches {
		if p.minScore == 0 || m.Score >= p.minScore {
			kept = append(kept, m)
		}
	}
	if p.mmr {
		kept = mmr(kept, p.topK, p.lambda)
	}
	t2 := time.Now()
	res.Timing.Query = t2.Sub(t1)

	// Load the best TopK first; only if some of them were stale, load the reserve.
	first := kept[:min(len(kept), p.topK)]
	res.Passages, err = r.load(ctx, cc, first)
	if err != nil {
		return nil, err
	}
	if len(res.Passages) < p.topK && len(kept) > len(first) {
		more, err := r.load(ctx, cc, kept[len(first):])
		if err != nil {
			return nil, err
		}
		res.Passages = append(res.Passages, more...)
		if len(res.Passages) > p.topK {
			res.Passages = res.Passages[:p.topK]
		}
	}
	res.Timing.Load = time.Since(t2)
	return res, nil
}

// load turns matches into passages: ingest.Resolve maps them to the chunks they stand
// for (one GetChunks call), and one scoped query loads the titles of their documents.
func (r *Retriever) load(ctx context.Context, cc clone.CloneContext, matches []vectorstore.Match) ([]Passage, error) {
	if len(matches) == 0 {
		return nil, nil
	}
	chunks, err := r.resolve(ctx, cc, matches)
	if err != nil {
		return nil, err
	}
	var docIDs []uuid.UUID
	docSeen := map[uuid.UUID]bool{}
	byVector := make(map[string]records.Chunk, len(chunks))
	for _, c := range chunks {
		if err := r.check(ctx, cc, "chunk", c.TenantID, c.CloneID); err != nil {
			return nil, err
		}
		byVector[c.VectorID] = c
		if !docSeen[c.DocumentID] {
			docSeen[c.DocumentID] = true
			docIDs = append(docIDs, c.DocumentID)
		}
	}
	docs, err := r.documents(ctx, cc, docIDs)
	if err != nil {
		return nil, err
	}
	out := make([]Passage, 0, len(chunks))
	for _, m := range matches {
		c, ok := byVector[m.ID]
		if !ok {
			continue // not a chunk vector, or its chunk is gone or of another version
		}
		delete(byVector, m.ID) // a passage once
		d, ok := docs[c.DocumentID]
		if !ok {
			continue // the document vanished between the two reads
		}
		if d.Model != "" && d.Model != r.emb.Model() {
			return nil, modelMismatch(c.DocumentID, d.Model, r.emb.Model())
		}
		out = append(out, Passage{
			TenantID: c.TenantID, CloneID: c.CloneID, DocumentID: c.DocumentID, Title: d.Title,
			Ordinal: c.Ordinal, StartOffset: c.StartOffset, EndOffset: c.EndOffset, Page: page(c.Metadata),
			Text: c.Content, TokenCount: c.TokenCount, Score: m.Score, VectorID: m.ID,
		})
	}
	return out, nil
}

// resolve maps matches to chunks with ingest.Resolve: one batched, clone-scoped lookup
// by primary key (records.GetChunks), keeping a chunk when any matched vector ID is its
// current one.
func (r *Retriever) resolve(ctx context.Context, cc clone.CloneContext, matches []vectorstore.Match) ([]records.Chunk, error) {
	return ingest.Resolve(ctx, r.db, cc, matches)
}

// docInfo is what a passage needs of its document: the title it is cited by, and the
// embedding model its vectors were made with (ingest.EmbeddingModel; "" if none was
// recorded).
type docInfo struct {
	TenantID uuid.UUID `db:"tenant_id"`
	CloneID  uuid.UUID `db:"clone_id"`
	ID       uuid.UUID `db:"id"`
	Title    string    `db:"title"`
	Model    string    `db:"embedding_model"`
}

// EmbeddingModelError is the cause of the error (of kind clone.ErrInternal) that
// Retrieve, and so Processor.Process, return when a retrieved passage belongs to a
// document whose vectors were made by another embedding model than the retriever's:
// the similarity of vectors of two models means nothing, so answering from them would
// be silently wrong. Read it with errors.As. Retrieve with the documents' embedder, or
// re-ingest the documents with the new one (ingest.Pipeline.Reconcile re-embeds the
// documents whose pipeline configuration changed).
type EmbeddingModelError struct {
	DocumentID    uuid.UUID // a document of the clone embedded with DocumentModel
	DocumentModel string    // the model recorded when the document was ingested
	QueryModel    string    // the retriever's model, which embedded the question
}

// Error implements error.
func (e *EmbeddingModelError) Error() string {
	return fmt.Sprintf("document %s was embedded with model %q, the question with %q", e.DocumentID, e.DocumentModel, e.QueryModel)
}

func modelMismatch(id uuid.UUID, doc, query string) error {
	cause := &EmbeddingModelError{DocumentID: id, DocumentModel: doc, QueryModel: query}
	return errs.Wrap(errs.Internal, "rag.Retrieve", cause,
		"a document was embedded with another model (retrieve with its embedder, or re-ingest it with this one)")
}

// documentModelExpr is the SQL expression of the embedding model a document records
// (ingest.EmbeddingModel), "" if none, read without loading the metadata.
func documentModelExpr(d clonesql.Dialect) string {
	if d == clonesql.Postgres {
		return `COALESCE(metadata->'cloneiso'->>'embedding_model', '')`
	}
	return `COALESCE(json_extract(metadata, '$.cloneiso.embedding_model'), '')`
}

// documents loads the titles and embedding models of the clone's documents ids in one
// scoped statement.
func (r *Retriever) documents(ctx context.Context, cc clone.CloneContext, ids []uuid.UUID) (map[uuid.UUID]docInfo, error) {
	const op = "rag.Retrieve"
	out := make(map[uuid.UUID]docInfo, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := map[string]any{}
	var in strings.Builder
	for i, id := range ids {
		if i > 0 {
			in.WriteByte(',')
		}
		name := "d" + strconv.Itoa(i)
		in.WriteString(":" + name)
		args[name] = id.String()
	}
	var rows []docInfo
	err := r.db.Select(ctx, cc, &rows, `SELECT tenant_id, clone_id, id, title, `+documentModelExpr(r.db.Dialect())+` AS embedding_model
		FROM documents WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id IN (`+in.String()+`)`, args)
	if err != nil {
		return nil, wrapKind(op, err, "loading documents failed")
	}
	for _, d := range rows {
		if err := r.check(ctx, cc, "document", d.TenantID, d.CloneID); err != nil {
			return nil, err
		}
		out[d.ID] = d
	}
	return out, nil
}

// check fails closed on a row of another clone.
func (r *Retriever) check(ctx context.Context, cc clone.CloneContext, what string, tenantID, cloneID uuid.UUID) error {
	const op = "rag.Retrieve"
	if cc.Check(tenantID, cloneID) == nil {
		return nil
	}
	recordViolation(ctx, r.audit, cc, op, "store returned a "+what+" of another clone", tenantID, cloneID)
	return errs.New(errs.IsolationViolation, op, "a store returned data of another clone")
}

// recordViolation audits one isolation violation.
func recordViolation(ctx context.Context, s audit.Sink, cc clone.CloneContext, op, reason string, tenantID, cloneID uuid.UUID) {
	audit.Emit(ctx, s, audit.Event{
		Actor: cc.Principal().Subject, Action: op, TenantID: cc.TenantID(), CloneID: cc.CloneID(),
		Outcome: audit.Violation, Reason: reason,
		Detail: map[string]string{"target_tenant_id": tenantID.String(), "target_clone_id": cloneID.String()},
	})
}

// wrapKind keeps an error's kind (errors from cloneiso packages carry one) and wraps
// an error without one as Canceled or Unavailable (errs.ContextKind), else Unavailable.
func wrapKind(op string, err error, msg string) error {
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	if k, ok := errs.ContextKind(err); ok {
		return errs.Wrap(k, op, err, "%s", msg)
	}
	return errs.Wrap(errs.Unavailable, op, err, "%s", msg)
}

// mmr reorders candidates (best first, with values) by maximal marginal relevance and
// keeps k.
func mmr(cands []vectorstore.Match, k int, lambda float64) []vectorstore.Match {
	if len(cands) <= 1 {
		return cands
	}
	norm := make([][]float32, len(cands))
	for i, c := range cands {
		norm[i] = normalize(c.Values)
	}
	chosen := make([]vectorstore.Match, 0, k)
	used := make([]bool, len(cands))
	maxSim := make([]float64, len(cands)) // max similarity to the chosen ones
	for len(chosen) < k && len(chosen) < len(cands) {
		best, bestScore := -1, math.Inf(-1)
		for i, c := range cands {
			if used[i] {
				continue
			}
			s := lambda*float64(c.Score) - (1-lambda)*maxSim[i]
			if len(chosen) == 0 {
				s = float64(c.Score)
			}
			if s > bestScore {
				best, bestScore = i, s
			}
		}
		used[best] = true
		chosen = append(chosen, cands[best])
		for i := range cands {
			if !used[i] {
				if s := dot(norm[i], norm[best]); len(chosen) == 1 || s > maxSim[i] {
					maxSim[i] = s
				}
			}
		}
	}
	for i := range chosen {
		chosen[i].Values = nil
	}
	return chosen
}

func normalize(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if s == 0 {
		return out
	}
	inv := 1 / math.Sqrt(s)
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
