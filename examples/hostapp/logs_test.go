package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone/clonehttp"
)

// logBuffer is a concurrency-safe buffer for a JSON log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// take returns the lines written since the last take.
func (b *logBuffer) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(b.buf.String())
	b.buf.Reset()
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// duplicateKey returns the first key that occurs twice in one object of the JSON text
// line ("" if none). Decoding into a map would keep only one of them, so it walks the
// tokens.
func duplicateKey(line string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	var walk func() (string, error)
	walk = func() (string, error) {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return "", err
				}
				key := k.(string)
				if seen[key] {
					return key, nil
				}
				seen[key] = true
				if dup, err := walk(); dup != "" || err != nil {
					return dup, err
				}
			}
			_, err = dec.Token() // '}'
			return "", err
		case json.Delim('['):
			for dec.More() {
				if dup, err := walk(); dup != "" || err != nil {
					return dup, err
				}
			}
			_, err = dec.Token() // ']'
			return "", err
		}
		return "", nil
	}
	dup, err := walk()
	if dup == "" && err == nil && dec.More() {
		err = errors.New("more than one JSON value on the line")
	}
	return dup, err
}

func TestDuplicateKey(t *testing.T) {
	for line, want := range map[string]string{
		`{"a":1,"b":{"a":2},"c":[{"a":1,"b":2}]}`: "",
		`{"time":"x","msg":"audit","time":"y"}`:   "time",
		`{"a":{"b":1,"b":2}}`:                     "b",
		`{"a":[{"c":1},{"d":1,"d":2}]}`:           "d",
	} {
		if got, err := duplicateKey(line); got != want || err != nil {
			t.Errorf("duplicateKey(%s) = %q, %v; want %q", line, got, err, want)
		}
	}
}

// TestLogRecordsHaveNoDuplicateKeys: every log line of a request that is refused by
// the middleware, of one that provisions a clone (audited), and of one a store denies
// inside a clone (audited with the clone's IDs) is one JSON object with each key once.
func TestLogRecordsHaveNoDuplicateKeys(t *testing.T) {
	app, logs := newLoggedApp(t)
	token := devTokenFor(t, app)
	logs.take()
	requests := []struct {
		name, method, target, token string
		status                      int
		audit                       string // the outcome of the audit record the request must log
	}{
		{"refused by the middleware", http.MethodGet, "/v1/me", "not-a-jwt", http.StatusUnauthorized, "denied"},
		{"first sign-in (provisioning audited)", http.MethodGet, "/v1/me", token, http.StatusOK, "allowed"},
		{"another clone's or a missing record (denied in the store)", http.MethodGet, "/v1/insights/" + uuid.NewString(), token, http.StatusNotFound, "denied"},
	}
	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			if rec := send(app, r.token, r.method, r.target, "", nil); rec.Code != r.status {
				t.Fatalf("%d %s; want %d", rec.Code, rec.Body, r.status)
			}
			lines := logs.take()
			audited := false
			for _, line := range lines {
				dup, err := duplicateKey(line)
				if err != nil {
					t.Fatalf("log line is not one JSON object (%v): %s", err, line)
				}
				if dup != "" {
					t.Errorf("key %q twice in log record %s", dup, line)
				}
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatal(err)
				}
				if rec["msg"] == "audit" && rec["outcome"] == r.audit {
					audited = true
				}
			}
			if !audited {
				t.Fatalf("no %s audit record among %d log lines:\n%s", r.audit, len(lines), strings.Join(lines, "\n"))
			}
		})
	}
}

// signalHandler passes records on to h and closes seen when one with message msg has
// been handled.
type signalHandler struct {
	slog.Handler
	msg  string
	once *sync.Once
	seen chan struct{}
}

func (s signalHandler) Handle(ctx context.Context, r slog.Record) error {
	err := s.Handler.Handle(ctx, r)
	if r.Message == s.msg {
		s.once.Do(func() { close(s.seen) })
	}
	return err
}

// TestStartupLogIsJSON: everything the server logs from start to shutdown, the
// development-mode banner with its instructions included, is one JSON record per line
// with each key once.
func TestStartupLogIsJSON(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := Config{Addr: addr, DataDir: t.TempDir(), Dev: true, JWTIssuer: "cloneiso-hostapp", JWTAudience: "cloneiso"}
	out := &logBuffer{}
	listening := signalHandler{Handler: clonehttp.NewLogHandler(slog.NewJSONHandler(out, nil)), msg: "hostapp listening",
		once: &sync.Once{}, seen: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(listening)) }()
	select {
	case <-listening.seen:
	case err := <-done:
		t.Fatalf("run ended before it listened: %v", err)
	}
	cancel() // the banner is logged before run waits for its context
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	lines := out.take()
	banner := false
	for _, line := range lines {
		dup, err := duplicateKey(line)
		if err != nil || dup != "" {
			t.Fatalf("log line is not one JSON object with each key once (%v, %q): %s", err, dup, line)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, "DEVELOPMENT MODE") {
			get, _ := rec["get_token"].(string)
			use, _ := rec["use_token"].(string)
			banner = strings.Contains(get, "http://"+addr+"/dev/token?sub=") && strings.Contains(use, "Authorization: Bearer $TOKEN")
		}
	}
	if !banner {
		t.Fatalf("no development-mode record with the token instructions among:\n%s", strings.Join(lines, "\n"))
	}
}
