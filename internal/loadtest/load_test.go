package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/objectstore/s3object/s3test"
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

	mu    sync.Mutex
	docs  []uuid.UUID
	conv  uuid.UUID
	ready bool
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
	ops    [nKinds]atomic.Int64
	errors atomic.Int64
	leaks  atomic.Int64
	own    atomic.Int64 // chat answers that quoted the asking clone's own canary

	mu        sync.Mutex
	firstErrs []string
	leakSeen  []string
}

func (s *stats) fail(what string, err error) {
	s.errors.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.firstErrs) < 10 {
		s.firstErrs = append(s.firstErrs, what+": "+err.Error())
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

	ctx := context.Background()
	s3env := s3test.Require(t)
	pg := pgtest.Shared(t)

	raw, err := clonesql.OpenPostgres(pg.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	// The server is shared with other test packages: a bounded pool, as a host would.
	raw.SetMaxOpenConns(16)
	raw.SetMaxIdleConns(16)
	t.Cleanup(func() { raw.Close() })
	sink := &audit.Memory{}
	db, err := clonesql.New(raw, &clonesql.Options{Audit: sink})
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := tenant.NewStore(raw)
	if err != nil {
		t.Fatal(err)
	}
	pc := pineconetest.Start(t, &pineconetest.Options{Dimension: dim})
	vectors, err := pineconevector.Open(pc.Host(), dim, &pineconevector.Options{Index: &vectorstore.Options{Audit: sink}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vectors.Close() })
	bucket := s3test.NewBucket(t, s3env, false)
	objects, err := s3object.OpenBucket(ctx, s3env.Config(), bucket, &s3object.Options{Endpoint: s3env.Endpoint, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objects.Close() })
	emb, err := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := ingest.New(db, vectors, objects, &ingest.Options{Embedder: emb, Chunking: &chunk.Options{TargetTokens: 48, OverlapTokens: 4}})
	if err != nil {
		t.Fatal(err)
	}
	retriever, err := rag.NewRetriever(db, vectors, emb, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := generate.NewExtractive(nil)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := rag.NewProcessor(db, retriever, gen, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Provision and seed every clone: a document with its canary (SQL chunks, vectors,
	// an original in S3) and an insight with it.
	setupStart := time.Now()
	clones := make([]*target, nClones)
	byCanary := map[string]int{}
	var setup sync.WaitGroup
	var setupErr atomic.Value
	sem := make(chan struct{}, 8)
	for i := range clones {
		c := &target{idx: i, canary: "zqc" + randHex(16), topic: "zqt" + randHex(8)}
		clones[i] = c
		byCanary[c.canary] = i
		setup.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			if c.cc, _, err = tenants.ProvisionSolo(ctx, "load-"+uuid.NewString()); err != nil {
				setupErr.Store(err)
				return
			}
			r, err := pipe.Ingest(ctx, c.cc, ingest.Source{Title: "Secret of " + c.topic, SourceName: "secret.md", Data: []byte(c.secret(0))})
			if err != nil {
				setupErr.Store(err)
				return
			}
			if _, err := records.CreateInsight(ctx, db, c.cc, records.Insight{Category: "secret", Content: "The owner's " + c.topic + " code is " + c.canary + "."}); err != nil {
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
	t.Logf("provisioned and seeded %d clones in %s", nClones, time.Since(setupStart).Round(time.Millisecond))

	st := &stats{}
	// check scans a response of clone c for canaries; each one of another clone is a
	// leak. It reports whether c's own canary was seen.
	check := func(c *target, what string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			st.fail(what+": marshal", err)
			return false
		}
		own := false
		for _, m := range canaryRE.FindAllString(string(b), -1) {
			if m == c.canary {
				own = true
				continue
			}
			st.leaks.Add(1)
			st.mu.Lock()
			if len(st.leakSeen) < 10 {
				owner, known := byCanary[m]
				st.leakSeen = append(st.leakSeen, fmt.Sprintf("%s of clone %d showed %s (clone %d, known %v)", what, c.idx, m, owner, known))
			}
			st.mu.Unlock()
		}
		return own
	}

	var opSeq atomic.Int64
	do := func(rng *mrand.Rand, c *target, k kind) {
		switch k {
		case opRead:
			docs, err := records.ListDocuments(ctx, db, c.cc, &records.ListOptions{Limit: 20})
			if err != nil {
				st.fail("list documents", err)
				return
			}
			check(c, "documents", docs)
			if len(docs.Items) > 0 {
				d := docs.Items[rng.IntN(len(docs.Items))]
				chunks, err := records.ListDocumentChunks(ctx, db, c.cc, d.ID, &records.ListOptions{Limit: 20})
				if err != nil {
					st.fail("list chunks", err)
					return
				}
				check(c, "chunks", chunks)
			}
			ins, err := records.ListInsights(ctx, db, c.cc, &records.ListOptions{Limit: 20})
			if err != nil {
				st.fail("list insights", err)
				return
			}
			check(c, "insights", ins)
			convs, err := records.ListConversations(ctx, db, c.cc, &records.ListOptions{Limit: 20})
			if err != nil {
				st.fail("list conversations", err)
				return
			}
			check(c, "conversations", convs)
			// The clone's originals in S3: listed, and one read back.
			objs, err := objects.List(ctx, c.cc, &objectstore.ListOptions{PageSize: 50})
			if err != nil {
				st.fail("list objects", err)
				return
			}
			check(c, "objects", objs)
			if len(objs.Objects) > 0 {
				o := objs.Objects[rng.IntN(len(objs.Objects))]
				data, err := objects.ReadAll(ctx, c.cc, o.Kind, o.Name)
				if err != nil {
					st.fail("read object", err)
					return
				}
				if !check(c, "object content", string(data)) {
					st.fail("read object", fmt.Errorf("original %s/%s lacks the clone's canary", o.Kind, o.Name))
				}
			}
			// Vector query with another clone's secret sentence: only c's vectors come back.
			victim := clones[rng.IntN(len(clones))]
			qv, err := emb.Embed(ctx, []string{victim.secret(0)})
			if err != nil {
				st.fail("embed", err)
				return
			}
			ms, err := vectors.Query(ctx, c.cc, vectorstore.Query{Vector: qv[0], TopK: 10, IncludeMetadata: true})
			if err != nil {
				st.fail("vector query", err)
				return
			}
			check(c, "vector matches", ms)
			chunks, err := ingest.Resolve(ctx, db, c.cc, ms)
			if err != nil {
				st.fail("resolve", err)
				return
			}
			check(c, "resolved chunks", chunks)
			ret, err := retriever.Retrieve(ctx, c.cc, "What is the "+victim.topic+" code?", nil)
			if err != nil {
				st.fail("retrieve", err)
				return
			}
			check(c, "retrieval", ret)
		case opWrite:
			in, err := records.CreateInsight(ctx, db, c.cc, records.Insight{Category: "load", Content: fmt.Sprintf("Note %d: the %s code is %s.", opSeq.Add(1), c.topic, c.canary)})
			if err != nil {
				st.fail("create insight", err)
				return
			}
			got, err := records.GetInsight(ctx, db, c.cc, in.ID)
			if err != nil {
				st.fail("get insight", err)
				return
			}
			if got.Content != in.Content {
				st.fail("get insight", fmt.Errorf("read %q, wrote %q", got.Content, in.Content))
			}
			check(c, "insight", got)
		case opIngest:
			r, err := pipe.Ingest(ctx, c.cc, ingest.Source{Title: "Notes of " + c.topic, SourceName: "notes.md", Data: []byte(c.secret(int(opSeq.Add(1))))})
			if err != nil {
				st.fail("ingest", err)
				return
			}
			check(c, "ingest result", r)
			c.mu.Lock()
			c.docs = append(c.docs, r.Document.ID)
			c.mu.Unlock()
		case opChat:
			// Half of the questions are about the clone's own secret, half probe another
			// clone's by naming its topic word.
			about := c
			if rng.IntN(2) == 0 {
				about = clones[rng.IntN(len(clones))]
			}
			req := &rag.Request{Subject: "load", Question: "What is the " + about.topic + " code?"}
			c.mu.Lock()
			if c.conv != uuid.Nil && rng.IntN(3) == 0 {
				req.ConversationID = c.conv
			}
			c.mu.Unlock()
			resp, err := proc.Process(ctx, c.cc, req, nil)
			if err != nil {
				st.fail("chat", err)
				return
			}
			if check(c, "chat", resp) && about == c && strings.Contains(resp.Answer.Content, c.canary) {
				st.own.Add(1)
			}
			c.mu.Lock()
			c.conv = resp.Conversation.ID
			c.mu.Unlock()
		}
		st.ops[k].Add(1)
	}

	// Mix: 40% reads, 25% writes, 10% ingests, 25% chats.
	pick := func(rng *mrand.Rand) kind {
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
	start := time.Now()
	deadline := start.Add(duration)
	var clients sync.WaitGroup
	for i := range nClients {
		clients.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(i), uint64(start.UnixNano())))
			for time.Now().Before(deadline) {
				do(rng, clones[rng.IntN(len(clones))], pick(rng))
			}
		})
	}
	clients.Wait()
	elapsed := time.Since(start)

	// Through the owner: every canary stored anywhere sits in its own clone's rows.
	for _, q := range []string{
		`SELECT clone_id::text, content FROM document_chunks WHERE content LIKE '%zqc%'`,
		`SELECT clone_id::text, title FROM documents WHERE title LIKE '%zqc%'`,
		`SELECT clone_id::text, content FROM insights WHERE content LIKE '%zqc%'`,
		`SELECT clone_id::text, content FROM messages WHERE content LIKE '%zqc%'`,
		`SELECT clone_id::text, citations::text FROM messages WHERE citations::text LIKE '%zqc%'`,
	} {
		rows, err := pg.Owner.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var cloneID, text string
			if err := rows.Scan(&cloneID, &text); err != nil {
				t.Fatal(err)
			}
			for _, m := range canaryRE.FindAllString(text, -1) {
				if i, ok := byCanary[m]; ok && clones[i].cc.CloneID().String() != cloneID {
					st.leaks.Add(1)
					t.Errorf("owner scan: canary of clone %d stored in clone %s: %q", i, cloneID, text)
				}
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Every clone's vectors are its own: their metadata names its documents.
	for _, c := range clones {
		ids := map[string]bool{}
		for _, d := range c.docs {
			ids[d.String()] = true
		}
		token := ""
		for {
			page, err := vectors.List(ctx, c.cc, &vectorstore.ListOptions{PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range page.IDs {
				if doc, _, ok := strings.Cut(id, "#"); !ok || !ids[doc] {
					st.leaks.Add(1)
					t.Errorf("clone %d has vector %s of a document it did not ingest", c.idx, id)
				}
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
	}
	events := sink.Events()
	// No store saw another clone's data, and nothing was denied except the benign
	// GetChunks denials of matches racing an ingestion (see
	// TestRetrievalDuringIngestIsNotADenial, which holds that case).
	racing := 0
	var unexpected []audit.Event
	for _, ev := range events {
		if ev.Action == "records.GetChunks" && ev.Outcome == audit.Denied && ev.Detail["record"] == "chunk" {
			racing++
			continue
		}
		unexpected = append(unexpected, ev)
	}

	var total int64
	var parts []string
	for k := range nKinds {
		n := st.ops[k].Load()
		total += n
		parts = append(parts, fmt.Sprintf("%s=%d", kindNames[k], n))
	}
	opsPerSec := float64(total) / elapsed.Seconds()
	t.Logf("load: %d clients over %d clones for %s: %d operations (%s), %.1f ops/s; chat answers quoting the own canary: %d; GetChunks denials of matches racing an ingestion: %d; errors: %d; leaks: %d",
		nClients, nClones, elapsed.Round(time.Millisecond), total, strings.Join(parts, ", "), opsPerSec, st.own.Load(), racing, st.errors.Load(), st.leaks.Load())
	st.mu.Lock()
	sort.Strings(st.firstErrs)
	for _, e := range st.firstErrs {
		t.Errorf("error: %s", e)
	}
	for _, l := range st.leakSeen {
		t.Errorf("LEAK: %s", l)
	}
	st.mu.Unlock()
	for i, ev := range unexpected {
		if i < 5 {
			t.Errorf("audit event during load: %+v", ev)
		}
	}
	if st.own.Load() == 0 {
		t.Error("no chat answer quoted the asking clone's own canary: the leak check cannot fail")
	}
	for k := range nKinds {
		if st.ops[k].Load() == 0 {
			t.Errorf("no %s completed", kindNames[k])
		}
	}
	t.Logf("LOAD SUMMARY clients=%d clones=%d duration=%s ops=%d %s ops_per_s=%.1f errors=%d leaks=%d",
		nClients, nClones, elapsed.Round(time.Millisecond), total, strings.Join(parts, " "), opsPerSec, st.errors.Load(), st.leaks.Load())
	if st.errors.Load() != 0 || st.leaks.Load() != 0 {
		t.Fatalf("errors=%d leaks=%d, want 0", st.errors.Load(), st.leaks.Load())
	}
}
