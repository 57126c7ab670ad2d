package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/internal/testenv"
	"github.com/cloneiso/cloneiso/isolationtest"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// publicURL is the host app's URL in tests: requests to it go to the handler in-process.
const publicURL = "http://hostapp.test"

// newTestApp builds the app in development mode on the embedded defaults, or on the real
// services: PostgreSQL (a fresh database the app migrates as its owner, then uses as the
// application role), MinIO (internal/ci/minio.sh)
// with links and upload tickets signed by STS credentials confined to the clone's prefix,
// and the real go-pinecone client against the in-process Pinecone emulator. Without an
// S3 server (and services not required) the real set keeps objects on the filesystem.
// A non-nil change makes a last change to the configuration.
func newTestAppWith(t *testing.T, real bool, change func(*Config)) *App {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0", PublicURL: publicURL, DataDir: t.TempDir(), Dev: true,
		JWTIssuer: "cloneiso-hostapp", JWTAudience: "cloneiso"}
	if real {
		// A database of its own, migrated and granted by the app at start-up.
		db := pgtest.Fresh(t, false)
		cfg.DatabaseURL, cfg.MigrateURL = db.AppURL, db.OwnerURL
		emb, err := embed.NewLocal(nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.PineconeHost = pineconetest.Start(t, &pineconetest.Options{Dimension: emb.Dimension()}).Host()
		if _, ok := s3test.Lookup(); ok || testenv.ServicesRequired() {
			s3 := s3test.Require(t)
			cfg.S3Bucket, cfg.S3Endpoint = s3test.NewBucket(t, s3, false), s3.Endpoint
			cfg.S3RoleARN = "arn:minio:iam:::role/cloneiso-hostapp" // MinIO checks only the session policy
			t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
			t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
			t.Setenv("AWS_REGION", s3.Region)
		}
	}
	if change != nil {
		change(&cfg)
	}
	app, err := newApp(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app
}

// client talks to the app as the kit's actors do: through isolationtest.HTTPDo for the
// API, and to signed URLs (the app's own /files handler, or S3) as an anonymous client.
type client struct {
	app *App
}

func (c client) do(ctx context.Context, a isolationtest.Actor, method, target string, body io.Reader, h http.Header) (int, string) {
	return isolationtest.HTTPDo(ctx, c.app.Handler, a, method, target, body, h)
}

// json sends a JSON body (nil for none) and decodes a 2xx answer into out.
func (c client) json(ctx context.Context, a isolationtest.Actor, method, target string, in, out any) error {
	var body io.Reader
	h := http.Header{}
	if in != nil {
		b, _ := json.Marshal(in)
		body, h = bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}}
	}
	status, text := c.do(ctx, a, method, target, body, h)
	if status/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, target, status, text)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal([]byte(text), out)
}

// fetch sends a request to a signed URL without credentials.
func (c client) fetch(req *http.Request) (int, string, error) {
	var resp *http.Response
	if strings.HasPrefix(req.URL.String(), publicURL+"/") {
		rec := httptest.NewRecorder()
		c.app.Handler.ServeHTTP(rec, req)
		resp = rec.Result()
	} else {
		var err error
		if resp, err = http.DefaultClient.Do(req); err != nil {
			return 0, "", err
		}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// newActor signs a fresh subject in through the app: a development token, then its
// first request, which provisions the subject's tenant and clone.
func (c client) newActor(ctx context.Context, name string) (isolationtest.Actor, error) {
	sub := "kit-" + name + "-" + rand.Text()
	status, token := c.do(ctx, isolationtest.Actor{}, http.MethodGet, "/dev/token?sub="+sub, nil, nil)
	if status != http.StatusOK {
		return isolationtest.Actor{}, fmt.Errorf("dev token: %d %s", status, token)
	}
	a := isolationtest.Actor{Name: name, Token: token}
	var me struct {
		TenantID string `json:"tenant_id"`
		CloneID  string `json:"clone_id"`
	}
	if err := c.json(ctx, a, http.MethodGet, "/v1/me", nil, &me); err != nil {
		return a, err
	}
	cc, err := clone.Parse(me.TenantID, me.CloneID, clone.Principal{Subject: sub})
	a.CC = cc
	return a, err
}

// multipartDocument is a multipart/form-data body with a title and a text file.
func multipartDocument(title, text string) (io.Reader, http.Header) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	w.WriteField("title", title)
	f, _ := w.CreateFormFile("file", "notes.txt")
	io.WriteString(f, text)
	w.Close()
	return &b, http.Header{"Content-Type": {w.FormDataContentType()}}
}

// seeded remembers, per canary, its owner and the IDs of the records that carry it, so
// that probes can aim at the victim's records by ID.
type seeded struct {
	mu     sync.Mutex
	ids    map[string]map[string]string // canary -> kind -> ID
	owners map[string]isolationtest.Actor
}

func (s *seeded) add(a isolationtest.Actor, canary, kind, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids, s.owners = map[string]map[string]string{}, map[string]isolationtest.Actor{}
	}
	s.owners[canary] = a
	if s.ids[canary] == nil {
		s.ids[canary] = map[string]string{}
	}
	s.ids[canary][kind] = id
}

// id returns the ID of the victim's record of kind, or a random one if none was seeded.
func (s *seeded) id(canary, kind string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := s.ids[canary][kind]; id != "" {
		return id
	}
	return clone.NewID().String()
}

// probeID asks, as the attacker, for the victim's record of kind by its ID.
func probeID(h http.Handler, s *seeded, method, pattern, kind string) isolationtest.Probe {
	return isolationtest.HTTPProbe(method+" "+pattern+" ("+kind+")", h, method,
		func(victim string) string { return fmt.Sprintf(pattern, s.id(victim, kind)) }, nil)
}

type page struct {
	Items []map[string]any `json:"items"`
}

// observeDocuments lists the actor's documents and reads each one, its signed link and
// the original behind the link.
func (c client) observeDocuments(ctx context.Context, a isolationtest.Actor) (string, error) {
	var p page
	if err := c.json(ctx, a, http.MethodGet, "/v1/documents?limit=1000", nil, &p); err != nil {
		return "", err
	}
	var out strings.Builder
	for _, d := range p.Items {
		id := d["id"].(string)
		_, text := c.do(ctx, a, http.MethodGet, "/v1/documents/"+id, nil, nil)
		out.WriteString(text)
		var link struct{ URL string }
		if err := c.json(ctx, a, http.MethodGet, "/v1/documents/"+id+"/link", nil, &link); err != nil {
			return "", err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, link.URL, nil)
		status, body, err := c.fetch(req)
		if err != nil || status != http.StatusOK {
			return "", fmt.Errorf("download %s: %d %v", link.URL, status, err)
		}
		out.WriteString(body)
	}
	return out.String(), nil
}

// observeList lists a record collection and reads each item by ID.
func (c client) observeList(ctx context.Context, a isolationtest.Actor, path string) (string, error) {
	var p page
	if err := c.json(ctx, a, http.MethodGet, path+"?limit=1000", nil, &p); err != nil {
		return "", err
	}
	var out strings.Builder
	for _, it := range p.Items {
		_, text := c.do(ctx, a, http.MethodGet, path+"/"+it["id"].(string), nil, nil)
		out.WriteString(text)
	}
	return out.String(), nil
}

// uploadWithTicket uploads text through an upload ticket and creates a document from
// it: the path a browser takes to send a file straight to the object store.
func (c client) uploadWithTicket(ctx context.Context, a isolationtest.Actor, title, text string) (string, error) {
	var t struct {
		Upload, URL string
		Fields      map[string]string
	}
	if err := c.json(ctx, a, http.MethodPost, "/v1/uploads", map[string]string{"content_type": "text/plain"}, &t); err != nil {
		return "", err
	}
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range t.Fields {
		w.WriteField(k, v)
	}
	f, _ := w.CreateFormFile("file", "upload.txt")
	io.WriteString(f, text)
	w.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, &b)
	req.Header.Set("Content-Type", w.FormDataContentType())
	if status, body, err := c.fetch(req); err != nil || status/100 != 2 {
		return "", fmt.Errorf("upload to ticket: %d %s %v", status, body, err)
	}
	var doc struct{ Document struct{ ID string } }
	err := c.json(ctx, a, http.MethodPost, "/v1/documents",
		map[string]string{"upload": t.Upload, "content_type": "text/plain", "title": title}, &doc)
	return doc.Document.ID, err
}

// observeChats lists the actor's conversations and every message in them.
func (c client) observeChats(ctx context.Context, a isolationtest.Actor) (string, error) {
	var p page
	if err := c.json(ctx, a, http.MethodGet, "/v1/conversations?limit=1000", nil, &p); err != nil {
		return "", err
	}
	var out strings.Builder
	for _, conv := range p.Items {
		_, text := c.do(ctx, a, http.MethodGet, "/v1/conversations/"+conv["id"].(string)+"/messages?limit=1000", nil, nil)
		out.WriteString(text)
	}
	return out.String(), nil
}

// chatDone asks a question and returns the stream and the conversation ID.
func (c client) chat(ctx context.Context, a isolationtest.Actor, question string) (string, string, error) {
	b, _ := json.Marshal(map[string]string{"question": question})
	status, stream := c.do(ctx, a, http.MethodPost, "/v1/chat", bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
	i := strings.Index(stream, "event: done\ndata: ")
	if status != http.StatusOK || i < 0 {
		return "", "", fmt.Errorf("chat: %d %s", status, stream)
	}
	var done struct {
		ConversationID string `json:"conversation_id"`
	}
	err := json.Unmarshal([]byte(strings.SplitN(stream[i+len("event: done\ndata: "):], "\n", 2)[0]), &done)
	return stream, done.ConversationID, err
}

// TestIsolationKit runs the SDK's isolation test kit against the app's HTTP API: two
// clones each store a canary in every place the API can store one (documents uploaded
// both ways, insights, training examples, chat history), each must see its own canary
// through the API (including the downloaded original) and never the other's, and every
// probe aimed at the other clone's records by ID, or asking about its canary, must
// come back empty. It runs on the embedded defaults, on the real services, and with an
// OpenAI-compatible model that echoes its whole prompt (so the chat probes see
// everything that reached the model).
func TestIsolationKit(t *testing.T) {
	openai := func(cfg *Config) {
		cfg.OpenAIBaseURL, cfg.OpenAIAPIKey = fakeOpenAI(t, 64), "test-key"
		cfg.EmbeddingModel, cfg.EmbeddingDimension, cfg.ChatModel = "fake-embed", 64, "fake-chat"
	}
	for _, mode := range []struct {
		name   string
		real   bool
		change func(*Config)
	}{{"embedded", false, nil}, {"real", true, nil}, {"openai-echo", false, openai}} {
		t.Run(mode.name, func(t *testing.T) {
			app := newTestAppWith(t, mode.real, mode.change)
			c := client{app}
			var s seeded
			h := app.Handler
			kit := &isolationtest.Kit{
				NewActor: c.newActor,
				Surfaces: []isolationtest.Surface{
					{Name: "documents (multipart)", Seed: func(ctx context.Context, a isolationtest.Actor, canary string) error {
						body, hdr := multipartDocument("notes "+canary, "The secret word is "+canary+". Keep it safe.")
						var doc struct{ Document struct{ ID string } }
						status, text := c.do(ctx, a, http.MethodPost, "/v1/documents", body, hdr)
						if status != http.StatusCreated {
							return fmt.Errorf("upload: %d %s", status, text)
						}
						json.Unmarshal([]byte(text), &doc)
						s.add(a, canary, "document", doc.Document.ID)
						return nil
					}, Observe: c.observeDocuments},
					{Name: "documents (upload ticket)", Seed: func(ctx context.Context, a isolationtest.Actor, canary string) error {
						_, err := c.uploadWithTicket(ctx, a, "ticket", "The ticket word is "+canary+".")
						return err
					}, Observe: c.observeDocuments},
					{Name: "insights", Seed: func(ctx context.Context, a isolationtest.Actor, canary string) error {
						var in struct{ ID string }
						err := c.json(ctx, a, http.MethodPost, "/v1/insights", map[string]string{"category": "fact", "content": canary}, &in)
						s.add(a, canary, "insight", in.ID)
						return err
					}, Observe: func(ctx context.Context, a isolationtest.Actor) (string, error) {
						return c.observeList(ctx, a, "/v1/insights")
					}},
					{Name: "training examples", Seed: func(ctx context.Context, a isolationtest.Actor, canary string) error {
						var ex struct{ ID string }
						err := c.json(ctx, a, http.MethodPost, "/v1/training-examples",
							map[string]string{"prompt": "What is the word?", "response": canary}, &ex)
						s.add(a, canary, "example", ex.ID)
						return err
					}, Observe: func(ctx context.Context, a isolationtest.Actor) (string, error) {
						return c.observeList(ctx, a, "/v1/training-examples")
					}},
					{Name: "chat history", Seed: func(ctx context.Context, a isolationtest.Actor, canary string) error {
						_, conv, err := c.chat(ctx, a, "Please remember "+canary)
						s.add(a, canary, "conversation", conv)
						return err
					}, Observe: c.observeChats},
				},
				Probes: []isolationtest.Probe{
					isolationtest.HTTPProbe("chat about the victim's secret word", h, http.MethodPost,
						func(string) string { return "/v1/chat" },
						func(string) string { return `{"question":"What is the secret word?"}` }),
					isolationtest.HTTPProbe("chat in the victim's conversation", h, http.MethodPost,
						func(string) string { return "/v1/chat" },
						func(v string) string {
							return fmt.Sprintf(`{"question":"What did I ask you to remember?","conversation_id":%q}`, s.id(v, "conversation"))
						}),
					probeID(h, &s, http.MethodGet, "/v1/documents/%s", "document"),
					probeID(h, &s, http.MethodGet, "/v1/documents/%s/link", "document"),
					probeID(h, &s, http.MethodDelete, "/v1/documents/%s", "document"),
					probeID(h, &s, http.MethodGet, "/v1/insights/%s", "insight"),
					probeID(h, &s, http.MethodDelete, "/v1/insights/%s", "insight"),
					probeID(h, &s, http.MethodGet, "/v1/training-examples/%s", "example"),
					probeID(h, &s, http.MethodDelete, "/v1/training-examples/%s", "example"),
					probeID(h, &s, http.MethodGet, "/v1/conversations/%s/messages", "conversation"),
					isolationtest.HTTPProbe("update the victim's insight", h, http.MethodPut,
						func(v string) string { return "/v1/insights/" + s.id(v, "insight") },
						func(string) string { return `{"content":"overwritten"}` }),
				},
			}
			kit.Run(t)

			// The probes that write (delete, update) must have changed nothing: every
			// record is still there, unchanged, for its owner.
			ctx := context.Background()
			for canary, ids := range s.ids {
				owner := s.owners[canary]
				for kind, id := range ids {
					target := map[string]string{"document": "/v1/documents/", "insight": "/v1/insights/",
						"example": "/v1/training-examples/", "conversation": "/v1/conversations/"}[kind] + id
					if kind == "conversation" {
						target += "/messages"
					}
					if status, body := c.do(ctx, owner, http.MethodGet, target, nil, nil); status != http.StatusOK || !strings.Contains(body, canary) {
						t.Errorf("%s %s of its owner after the probes: %d %s", kind, id, status, body)
					}
				}
			}
		})
	}
}

// TestAuthentication checks that the API fails closed: no development tokens without
// development mode, no start without a way to verify tokens, 401 without a token.
func TestAuthentication(t *testing.T) {
	if _, err := newApp(context.Background(), Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "no authentication configured") {
		t.Fatalf("newApp without authentication: %v", err)
	}
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), JWTSecret: strings.Repeat("s", 32),
		JWTIssuer: "cloneiso-hostapp", JWTAudience: "cloneiso"}
	app, err := newApp(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx := context.Background()
	if status, _ := isolationtest.HTTPDo(ctx, app.Handler, isolationtest.Actor{}, http.MethodGet, "/dev/token?sub=mallory", nil, nil); status != http.StatusNotFound {
		t.Errorf("/dev/token outside development mode: %d", status)
	}
	for _, token := range []string{"", "not-a-jwt"} {
		status, body := isolationtest.HTTPDo(ctx, app.Handler, isolationtest.Actor{Token: token}, http.MethodGet, "/v1/documents", nil, nil)
		if status != http.StatusUnauthorized || !strings.Contains(body, "urn:cloneiso:problem:") {
			t.Errorf("token %q: %d %s", token, status, body)
		}
	}
}

// TestRestart shuts the server down gracefully and starts it again on the same data
// directory: the documents, their vectors and the conversation history are still there.
func TestRestart(t *testing.T) {
	cfg := Config{Addr: "127.0.0.1:0", PublicURL: publicURL, DataDir: t.TempDir(), Dev: true,
		JWTSecret: strings.Repeat("k", 32), JWTIssuer: "cloneiso-hostapp", JWTAudience: "cloneiso"}
	log := slog.New(slog.DiscardHandler)
	app, err := newApp(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	c := client{app}
	a, err := c.newActor(t.Context(), "A")
	if err != nil {
		t.Fatal(err)
	}
	body, hdr := multipartDocument("dog", "Our office dog is called Biscuit.")
	if status, text := c.do(t.Context(), a, http.MethodPost, "/v1/documents", body, hdr); status != http.StatusCreated {
		t.Fatalf("upload: %d %s", status, text)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}

	// run serves on the data directory until its context ends, then shuts down cleanly.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = l.Addr().String()
	l.Close()
	cfg.Dev = false // tokens minted before the restart stay valid: same secret
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, log) }()
	// Poll until the server answers, with no time limit of our own; a server that
	// exits instead is reported at once.
	for ; ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("the server exited before it answered: %v", err)
		default:
		}
		resp, err := http.Get("http://" + cfg.Addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	app, err = newApp(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	c = client{app}
	stream, _, err := c.chat(t.Context(), a, "What is the dog called?")
	if err != nil || !strings.Contains(stream, "Biscuit") {
		t.Fatalf("after a restart: %v\n%s", err, stream)
	}
}

// TestServerOwnedFields: records travel as snake_case JSON, and a create or update that
// sets a field the server owns (id, tenant_id, clone_id, user_id, timestamps; in any
// letter case, as encoding/json matches names) is refused with 400 and changes nothing.
func TestServerOwnedFields(t *testing.T) {
	app := newTestAppWith(t, false, nil)
	c := client{app: app}
	ctx := context.Background()
	alice, err := c.newActor(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var in map[string]any
	if err := c.json(ctx, alice, http.MethodPost, "/v1/insights", map[string]string{"category": "fact", "content": "kept"}, &in); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "tenant_id", "clone_id", "created_at", "updated_at", "content", "category"} {
		if _, ok := in[key]; !ok {
			t.Fatalf("created insight lacks %q: %v", key, in)
		}
	}
	id := in["id"].(string)
	for _, body := range []string{
		`{"content":"forged","id":"` + id + `"}`,
		`{"content":"forged","ID":"` + id + `"}`,
		`{"content":"forged","tenant_id":"` + in["tenant_id"].(string) + `"}`,
		`{"content":"forged","Clone_ID":"` + in["clone_id"].(string) + `"}`,
		`{"content":"forged","user_id":"legacy-7"}`,
		`{"content":"forged","created_at":"2020-01-01T00:00:00Z"}`,
	} {
		for _, m := range []struct{ method, path string }{{http.MethodPost, "/v1/insights"}, {http.MethodPut, "/v1/insights/" + id}} {
			status, text := c.do(ctx, alice, m.method, m.path, strings.NewReader(body), http.Header{"Content-Type": {"application/json"}})
			if status != http.StatusBadRequest || !strings.Contains(text, "set by the server") {
				t.Errorf("%s %s %s: %d %s; want 400 naming the server-owned field", m.method, m.path, body, status, text)
			}
		}
	}
	var p page
	if err := c.json(ctx, alice, http.MethodGet, "/v1/insights?limit=1000", nil, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 1 || p.Items[0]["content"] != "kept" {
		t.Fatalf("after the refused writes: %v; want the one insight, unchanged", p.Items)
	}
}
