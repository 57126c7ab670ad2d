package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone/audit"
)

func TestRecordStampsTimeAndRequestID(t *testing.T) {
	m := &audit.Memory{}
	ctx, cancel := context.WithCancel(audit.WithRequestID(context.Background(), "req-1"))
	cancel() // a denial is often recorded on a cancelled context
	var seen context.Context
	s := audit.SinkFunc(func(ctx context.Context, e audit.Event) error { seen = ctx; return m.Record(ctx, e) })
	if err := audit.Record(ctx, s, audit.Event{Action: "x", Outcome: audit.Denied}); err != nil {
		t.Fatal(err)
	}
	evs := m.Events()
	if len(evs) != 1 || evs[0].RequestID != "req-1" || evs[0].Time.IsZero() {
		t.Fatalf("events %+v", evs)
	}
	if seen.Err() != nil {
		t.Fatal("sink received a cancelled context")
	}
}

// captureDefault points slog.Default() at a JSON buffer for the test.
func captureDefault(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

// TestNilSinkIsTheDefault: a nil sink is DefaultSink (slog.Default()), never a silent
// drop.
func TestNilSinkIsTheDefault(t *testing.T) {
	buf := captureDefault(t)
	if err := audit.Record(context.Background(), nil, audit.Event{Action: "vectorstore.Query", Outcome: audit.Denied, Reason: "no clone context"}); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["msg"] != "audit" || line["action"] != "vectorstore.Query" || line["outcome"] != "denied" {
		t.Fatalf("nil sink logged %q (%v); want the event on slog.Default()", buf.String(), err)
	}
}

// TestEmitSinkFailure: a sink that fails does not lose the event without a trace: the
// error and the whole event are logged, and Failures counts it.
func TestEmitSinkFailure(t *testing.T) {
	buf := captureDefault(t)
	// A real sink that fails for a real reason: a JSON log handler whose writer is closed.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	broken := audit.SinkFunc(func(ctx context.Context, e audit.Event) error {
		return slog.NewJSONHandler(w, nil).Handle(ctx, slog.NewRecord(e.Time, slog.LevelWarn, "audit", 0))
	})
	if err := audit.Record(context.Background(), broken, audit.Event{}); err == nil {
		t.Fatal("the broken sink does not fail; the test proves nothing")
	}
	tid, cid := uuid.New(), uuid.New()
	before := audit.Failures()
	ctx := audit.WithRequestID(context.Background(), "req-9")
	err = audit.Emit(ctx, broken, audit.Event{Actor: "mallory", Action: "objectstore.Get", TenantID: tid, CloneID: cid,
		Outcome: audit.Denied, Reason: "foreign key", Detail: map[string]string{"target_clone_id": "c2"}})
	if err == nil {
		t.Fatal("Emit hid the sink's error")
	}
	if got := audit.Failures() - before; got != 1 {
		t.Fatalf("Failures grew by %d; want 1", got)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %q", err, buf.String())
	}
	d, _ := line["detail"].(map[string]any)
	if line["level"] != "ERROR" || line["msg"] != "audit: sink failed" || line["sink_error"] == "" || line["actor"] != "mallory" ||
		line["action"] != "objectstore.Get" || line["tenant_id"] != tid.String() || line["clone_id"] != cid.String() ||
		line["outcome"] != "denied" || line["reason"] != "foreign key" || line["request_id"] != "req-9" || d["target_clone_id"] != "c2" {
		t.Fatalf("log line %v; want the sink error and the whole event", line)
	}
	// A sink that works: nothing logged, nothing counted.
	buf.Reset()
	before = audit.Failures()
	if err := audit.Emit(ctx, &audit.Memory{}, audit.Event{Action: "x"}); err != nil || buf.Len() != 0 || audit.Failures() != before {
		t.Fatalf("working sink: %v, %q, %d", err, buf.String(), audit.Failures()-before)
	}
}

func TestSlogSink(t *testing.T) {
	var buf bytes.Buffer
	s := audit.SlogSink(slog.New(slog.NewJSONHandler(&buf, nil)))
	tid, cid := uuid.New(), uuid.New()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	audit.Record(context.Background(), s, audit.Event{Time: at, Actor: "alice", Action: "vectorstore.Query", TenantID: tid, CloneID: cid,
		Outcome: audit.Violation, Reason: "foreign match", Detail: map[string]string{"match": "m1"}})
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if line["level"] != "ERROR" || line["clone_id"] != cid.String() || line["tenant_id"] != tid.String() || line["outcome"] != "violation" {
		t.Fatalf("log line %v", line)
	}
	// The record's time is the event's, once.
	if n := strings.Count(buf.String(), `"time":`); n != 1 || line["time"] != at.Format(time.RFC3339) {
		t.Fatalf("time %d times, %v; want once, the event's: %s", n, line["time"], buf.String())
	}
	if d, _ := line["detail"].(map[string]any); d["match"] != "m1" {
		t.Fatalf("detail %v", line["detail"])
	}
}

func TestMulti(t *testing.T) {
	a, b := &audit.Memory{}, &audit.Memory{}
	boom := errors.New("boom")
	s := audit.Multi(a, audit.SinkFunc(func(context.Context, audit.Event) error { return boom }), b)
	err := audit.Record(context.Background(), s, audit.Event{Action: "x"})
	if !errors.Is(err, boom) || len(a.Events()) != 1 || len(b.Events()) != 1 {
		t.Fatalf("Multi: %v, %d, %d", err, len(a.Events()), len(b.Events()))
	}
}
