package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const dim = 64

// canaryRE matches every canary of every clone; topic words ("zqt...") are not
// canaries, so a question may name another clone's topic without being a leak.
var canaryRE = regexp.MustCompile(`zqc[0-9a-f]{16}`)

func randHex(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// target is one clone under load.
type target struct {
	idx    int
	cc     clone.CloneContext
	canary string // zqc...: must never appear outside this clone
	topic  string // zqt...: the word that retrieves the canary

	mu   sync.Mutex
	docs []uuid.UUID
	conv uuid.UUID
}

func (c *target) secret(n int) string {
	return fmt.Sprintf("# Notes %d of %s\n\nThe %s code is %s. Remember that the %s code is %s.\n\nOther text %d about gardens and weather.\n",
		n, c.topic, c.topic, c.canary, c.topic, c.canary, n)
}

func envInt(t testing.TB, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	return def
}

type kind int

const (
	opRead kind = iota
	opWrite
	opIngest
	opChat
	nKinds
)

var kindNames = [nKinds]string{"reads", "writes", "ingests", "chats"}

type stats struct {
	ops     [nKinds]atomic.Int64
	errors  atomic.Int64 // errors the run does not allow
	allowed atomic.Int64 // errors the run allows (typed faults under chaos)
	leaks   atomic.Int64
	own     atomic.Int64 // chat answers that quoted the asking clone's own canary

	mu        sync.Mutex
	firstErrs []string
	leakSeen  []string
}

// harness is the SDK wired on real services, with clones seeded with canaries.
type harness struct {
	pg        *pgtest.DB
	appName   string
	raw       *sqlx.DB
	db        *clonesql.DB
	sink      *audit.Memory
	tenants   *tenant.Store
	pc        *pineconetest.Server
	vectors   *vectorstore.Index
	objects   *objectstore.Bucket
	emb       embed.Embedder
	pipe      *ingest.Pipeline
	retriever *rag.Retriever
	proc      *rag.Processor
	clones    []*target
	byCanary  map[string]int
	st        stats
	// allow, if set, says which errors a run under injected faults accepts; every
	// other error counts as an error of the run.
	allow func(error) bool
	// afterOp, if set, is called by the clients after each operation (the fault test
	// paces its faults by operations, not by wall-clock time).
	afterOp func()
	seq     atomic.Int64
}

func newHarness(t *testing.T, nClones int) *harness {
	t.Helper()
	ctx := context.Background()
	s3env := s3test.Require(t)
	h := &harness{pg: pgtest.Shared(t), sink: &audit.Memory{}, appName: "loadtest-" + randHex(8), byCanary: map[string]int{}}
	u, err := url.Parse(h.pg.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", h.appName)
	u.RawQuery = q.Encode()
	raw, err := clonesql.OpenPostgres(u.String())
	if err != nil {
		t.Fatal(err)
	}
	// The server is shared with other test packages: a bounded pool, as a host would.
	raw.SetMaxOpenConns(16)
	raw.SetMaxIdleConns(16)
	t.Cleanup(func() { raw.Close() })
	h.raw = sqlx.NewDb(raw, "postgres")
	if h.db, err = clonesql.New(raw, &clonesql.Options{Audit: h.sink}); err != nil {
		t.Fatal(err)
	}
	if h.tenants, err = tenant.NewStore(raw, nil); err != nil {
		t.Fatal(err)
	}
	h.pc = pineconetest.Start(t, &pineconetest.Options{Dimension: dim})
	if h.vectors, err = pineconevector.Open(h.pc.Host(), dim, &pineconevector.Options{
		// Five attempts as by default, with shorter waits than the default (100 ms doubling
		// to 5 s) so that the fault test drains its injected failures quickly.
		Retry: &pineconevector.RetryOptions{MaxAttempts: 5, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		Index: &vectorstore.Options{Audit: h.sink}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.vectors.Close() })
	bucket := s3test.NewBucket(t, s3env, false)
	if h.objects, err = s3object.OpenBucket(ctx, s3env.Config(), bucket, &s3object.Options{Endpoint: s3env.Endpoint, UsePathStyle: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.objects.Close() })
	if h.emb, err = embed.NewLocal(&embed.LocalOptions{Dimension: dim}); err != nil {
		t.Fatal(err)
	}
	if h.pipe, err = ingest.New(h.db, h.vectors, h.objects, h.emb, &ingest.Options{Chunking: &chunk.Options{TargetTokens: 48, OverlapTokens: 4}}); err != nil {
		t.Fatal(err)
	}
	if h.retriever, err = rag.NewRetriever(h.db, h.vectors, h.emb, nil); err != nil {
		t.Fatal(err)
	}
	gen, err := generate.NewExtractive(nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.proc, err = rag.NewProcessor(h.db, h.retriever, gen, nil); err != nil {
		t.Fatal(err)
	}

	// Provision and seed every clone: a document with its canary (SQL chunks, vectors,
	// an original in S3) and an insight with it.
	start := time.Now()
	h.clones = make([]*target, nClones)
	var setup sync.WaitGroup
	var setupErr atomic.Value
	sem := make(chan struct{}, 8)
	for i := range h.clones {
		c := &target{idx: i, canary: "zqc" + randHex(16), topic: "zqt" + randHex(8)}
		h.clones[i] = c
		h.byCanary[c.canary] = i
		setup.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			if c.cc, _, err = h.tenants.ProvisionSolo(ctx, "load-"+uuid.NewString()); err != nil {
				setupErr.Store(err)
				return
			}
			r, err := h.pipe.Ingest(ctx, c.cc, ingest.Source{Title: "Secret of " + c.topic, SourceName: "secret.md", Data: []byte(c.secret(0))})
			if err != nil {
				setupErr.Store(err)
				return
			}
			if _, err := records.CreateInsight(ctx, h.db, c.cc, records.Insight{Category: "secret", Content: "The owner's " + c.topic + " code is " + c.canary + "."}); err != nil {
				setupErr.Store(err)
				return
			}
			c.docs = append(c.docs, r.Document.ID)
		})
	}
	setup.Wait()
	if err, _ := setupErr.Load().(error); err != nil {
		t.Fatalf("setup: %v", err)
	}
	t.Logf("provisioned and seeded %d clones in %s", nClones, time.Since(start).Round(time.Millisecond))
	return h
}

// stillListed reports whether o is still among the clone's objects (when the listing
// itself fails, it is taken as still listed, so the read's error counts).
func (h *harness) stillListed(ctx context.Context, c *target, o *objectstore.Attributes) bool {
	objs, err := h.objects.List(ctx, c.cc, &objectstore.ListOptions{Kind: o.Kind, NamePrefix: o.Name, PageSize: 10})
	if err != nil {
		return true
	}
	for _, x := range objs.Objects {
		if x.Kind == o.Kind && x.Name == o.Name {
			return true
		}
	}
	return false
}

func (h *harness) fail(what string, err error) {
	if h.allow != nil && h.allow(err) {
		h.st.allowed.Add(1)
		return
	}
	h.st.errors.Add(1)
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	if len(h.st.firstErrs) < 10 {
		h.st.firstErrs = append(h.st.firstErrs, what+": "+err.Error())
	}
}

// check scans a response of clone c for canaries; each one of another clone is a
// leak. It reports whether c's own canary was seen.
func (h *harness) check(c *target, what string, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		h.fail(what+": marshal", err)
		return false
	}
	own := false
	for _, m := range canaryRE.FindAllString(string(b), -1) {
		if m == c.canary {
			own = true
			continue
		}
		h.st.leaks.Add(1)
		h.st.mu.Lock()
		if len(h.st.leakSeen) < 10 {
			owner, known := h.byCanary[m]
			h.st.leakSeen = append(h.st.leakSeen, fmt.Sprintf("%s of clone %d showed %s (clone %d, known %v)", what, c.idx, m, owner, known))
		}
		h.st.mu.Unlock()
	}
	return own
}

// do runs one operation of kind k as clone c; it returns whether it succeeded.
func (h *harness) do(ctx context.Context, rng *mrand.Rand, c *target, k kind) bool {
	switch k {
	case opRead:
		docs, err := records.ListDocuments(ctx, h.db, c.cc, &records.ListOptions{Limit: 20})
		if err != nil {
			h.fail("list documents", err)
			return false
		}
		h.check(c, "documents", docs)
		if len(docs.Items) > 0 {
			d := docs.Items[rng.IntN(len(docs.Items))]
			chunks, err := records.ListDocumentChunks(ctx, h.db, c.cc, d.ID, &records.ListOptions{Limit: 20})
			if err != nil {
				h.fail("list chunks", err)
				return false
			}
			h.check(c, "chunks", chunks)
		}
		ins, err := records.ListInsights(ctx, h.db, c.cc, &records.ListOptions{Limit: 20})
		if err != nil {
			h.fail("list insights", err)
			return false
		}
		h.check(c, "insights", ins)
		convs, err := records.ListConversations(ctx, h.db, c.cc, &records.ListOptions{Limit: 20})
		if err != nil {
			h.fail("list conversations", err)
			return false
		}
		h.check(c, "conversations", convs)
		// The clone's originals in S3: listed, and one read back.
		objs, err := h.objects.List(ctx, c.cc, &objectstore.ListOptions{PageSize: 50})
		if err != nil {
			h.fail("list objects", err)
			return false
		}
		h.check(c, "objects", objs)
		if len(objs.Objects) > 0 {
			o := objs.Objects[rng.IntN(len(objs.Objects))]
			data, err := h.objects.ReadAll(ctx, c.cc, o.Kind, o.Name)
			if errors.Is(err, clone.ErrNotFound) && !h.stillListed(ctx, c, o) {
				// Another client of the same clone deleted or replaced the document
				// between the listing and the read (or a failed ingestion was
				// compensated): the clone's own concurrent write, not an error.
				h.st.allowed.Add(1)
				return true
			}
			if err != nil {
				h.fail("read object", err)
				return false
			}
			if !h.check(c, "object content", string(data)) {
				h.fail("read object", fmt.Errorf("original %s/%s lacks the clone's canary", o.Kind, o.Name))
			}
		}
		// A vector query with another clone's secret sentence: only c's vectors come back.
		victim := h.clones[rng.IntN(len(h.clones))]
		qv, err := h.emb.Embed(ctx, []string{victim.secret(0)})
		if err != nil {
			h.fail("embed", err)
			return false
		}
		ms, err := h.vectors.Query(ctx, c.cc, vectorstore.Query{Vector: qv[0], TopK: 10, IncludeMetadata: true})
		if err != nil {
			h.fail("vector query", err)
			return false
		}
		h.check(c, "vector matches", ms)
		chunks, err := ingest.Resolve(ctx, h.db, c.cc, ms)
		if err != nil {
			h.fail("resolve", err)
			return false
		}
		h.check(c, "resolved chunks", chunks)
		ret, err := h.retriever.Retrieve(ctx, c.cc, "What is the "+victim.topic+" code?", nil)
		if err != nil {
			h.fail("retrieve", err)
			return false
		}
		h.check(c, "retrieval", ret)
	case opWrite:
		in, err := records.CreateInsight(ctx, h.db, c.cc, records.Insight{Category: "load", Content: fmt.Sprintf("Note %d: the %s code is %s.", h.seq.Add(1), c.topic, c.canary)})
		if err != nil {
			h.fail("create insight", err)
			return false
		}
		got, err := records.GetInsight(ctx, h.db, c.cc, in.ID)
		if err != nil {
			h.fail("get insight", err)
			return false
		}
		if got.Content != in.Content {
			h.fail("get insight", fmt.Errorf("read %q, wrote %q", got.Content, in.Content))
		}
		h.check(c, "insight", got)
	case opIngest:
		r, err := h.pipe.Ingest(ctx, c.cc, ingest.Source{Title: "Notes of " + c.topic, SourceName: "notes.md", Data: []byte(c.secret(int(h.seq.Add(1))))})
		if r.Document.ID != uuid.Nil {
			c.mu.Lock()
			c.docs = append(c.docs, r.Document.ID)
			c.mu.Unlock()
		}
		if err != nil {
			h.fail("ingest", err)
			return false
		}
		h.check(c, "ingest result", r)
	case opChat:
		// Half of the questions are about the clone's own secret, half probe another
		// clone's by naming its topic word.
		about := c
		if rng.IntN(2) == 0 {
			about = h.clones[rng.IntN(len(h.clones))]
		}
		req := &rag.Request{Subject: "load", Question: "What is the " + about.topic + " code?"}
		c.mu.Lock()
		if c.conv != uuid.Nil && rng.IntN(3) == 0 {
			req.ConversationID = c.conv
		}
		c.mu.Unlock()
		resp, err := h.proc.Process(ctx, c.cc, req, nil)
		if resp != nil {
			h.check(c, "chat", resp)
		}
		if err != nil {
			h.fail("chat", err)
			return false
		}
		if about == c && strings.Contains(resp.Answer.Content, c.canary) {
			h.st.own.Add(1)
		}
		c.mu.Lock()
		c.conv = resp.Conversation.ID
		c.mu.Unlock()
	}
	h.st.ops[k].Add(1)
	return true
}

// pick draws an operation: 40% reads, 25% writes, 10% ingests, 25% chats.
func pick(rng *mrand.Rand) kind {
	switch n := rng.IntN(100); {
	case n < 40:
		return opRead
	case n < 65:
		return opWrite
	case n < 75:
		return opIngest
	default:
		return opChat
	}
}

// run drives nClients concurrent clients for d and returns the elapsed time.
func (h *harness) run(nClients int, d time.Duration) time.Duration {
	ctx := context.Background()
	start := time.Now()
	deadline := start.Add(d)
	var clients sync.WaitGroup
	for i := range nClients {
		clients.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(i), uint64(start.UnixNano())))
			for time.Now().Before(deadline) {
				h.do(ctx, rng, h.clones[rng.IntN(len(h.clones))], pick(rng))
				if h.afterOp != nil {
					h.afterOp()
				}
			}
		})
	}
	clients.Wait()
	return time.Since(start)
}

// verify checks, outside the SDK's read paths, that nothing crossed clones: the schema
// owner finds every stored canary in its own clone's rows, and every clone's vectors
// belong to documents the clone ingested.
func (h *harness) verify(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`SELECT clone_id::text, content FROM document_chunks WHERE content LIKE '%zqc%'`,
		`SELECT clone_id::text, title FROM documents WHERE title LIKE '%zqc%'`,
		`SELECT clone_id::text, content FROM insights WHERE content LIKE '%zqc%'`,
		`SELECT clone_id::text, content FROM messages WHERE content LIKE '%zqc%'`,
		`SELECT clone_id::text, citations::text FROM messages WHERE citations::text LIKE '%zqc%'`,
	} {
		rows, err := h.pg.Owner.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var cloneID, text string
			if err := rows.Scan(&cloneID, &text); err != nil {
				t.Fatal(err)
			}
			for _, m := range canaryRE.FindAllString(text, -1) {
				if i, ok := h.byCanary[m]; ok && h.clones[i].cc.CloneID().String() != cloneID {
					h.st.leaks.Add(1)
					t.Errorf("owner scan: canary of clone %d stored in clone %s: %q", i, cloneID, text)
				}
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range h.clones {
		ids := map[string]bool{}
		for _, d := range c.docs {
			ids[d.String()] = true
		}
		token := ""
		for {
			page, err := h.vectors.List(ctx, c.cc, &vectorstore.ListOptions{PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range page.IDs {
				if doc, _, ok := strings.Cut(id, "#"); !ok || !ids[doc] {
					h.st.leaks.Add(1)
					t.Errorf("clone %d has vector %s of a document it did not ingest", c.idx, id)
				}
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
	}
}

// report logs the summary and fails t on errors, leaks, unexpected audit events and a
// run that could not have found a leak.
func (h *harness) report(t *testing.T, name string, nClients int, elapsed time.Duration) {
	t.Helper()
	// No store saw another clone's data, and nothing was denied: every audit event is
	// unexpected (retrievals racing an ingestion are not denials; see
	// TestRetrievalDuringIngestIsNotADenial).
	unexpected := h.sink.Events()
	var total int64
	var parts []string
	for k := range nKinds {
		n := h.st.ops[k].Load()
		total += n
		parts = append(parts, fmt.Sprintf("%s=%d", kindNames[k], n))
	}
	opsPerSec := float64(total) / elapsed.Seconds()
	t.Logf("%s: %d clients over %d clones for %s: %d operations (%s), %.1f ops/s; chat answers quoting the own canary: %d; injected-fault errors (typed, allowed): %d; errors: %d; leaks: %d",
		name, nClients, len(h.clones), elapsed.Round(time.Millisecond), total, strings.Join(parts, ", "), opsPerSec, h.st.own.Load(), h.st.allowed.Load(), h.st.errors.Load(), h.st.leaks.Load())
	h.st.mu.Lock()
	for _, e := range h.st.firstErrs {
		t.Errorf("error: %s", e)
	}
	for _, l := range h.st.leakSeen {
		t.Errorf("LEAK: %s", l)
	}
	h.st.mu.Unlock()
	for i, ev := range unexpected {
		if i < 5 {
			t.Errorf("audit event during load: %+v", ev)
		}
	}
	if h.st.own.Load() == 0 {
		t.Error("no chat answer quoted the asking clone's own canary: the leak check cannot fail")
	}
	for k := range nKinds {
		if h.st.ops[k].Load() == 0 {
			t.Errorf("no %s completed", kindNames[k])
		}
	}
	t.Logf("LOAD SUMMARY test=%s clients=%d clones=%d duration=%s ops=%d %s ops_per_s=%.1f errors=%d leaks=%d",
		name, nClients, len(h.clones), elapsed.Round(time.Millisecond), total, strings.Join(parts, " "), opsPerSec, h.st.errors.Load(), h.st.leaks.Load())
	if h.st.errors.Load() != 0 || h.st.leaks.Load() != 0 {
		t.Fatalf("errors=%d leaks=%d, want 0", h.st.errors.Load(), h.st.leaks.Load())
	}
}

func TestLoad(t *testing.T) {
	duration := 10 * time.Second
	if v := os.Getenv("CLONEISO_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CLONEISO_LOAD_DURATION=%q: want a positive Go duration", v)
		}
		duration = d
	}
	nClients := envInt(t, "CLONEISO_LOAD_CLIENTS", 64)
	nClones := envInt(t, "CLONEISO_LOAD_CLONES", 32)
	if nClones < 2 {
		t.Fatal("CLONEISO_LOAD_CLONES must be at least 2")
	}
	h := newHarness(t, nClones)
	elapsed := h.run(nClients, duration)
	h.verify(t)
	h.report(t, "load", nClients, elapsed)
}
