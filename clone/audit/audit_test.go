package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

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
	if err := audit.Record(ctx, nil, audit.Event{}); err != nil {
		t.Fatal("nil sink must drop silently")
	}
}

func TestSlogSink(t *testing.T) {
	var buf bytes.Buffer
	s := audit.SlogSink(slog.New(slog.NewJSONHandler(&buf, nil)))
	tid, cid := uuid.New(), uuid.New()
	audit.Record(context.Background(), s, audit.Event{Actor: "alice", Action: "vectorstore.Query", TenantID: tid, CloneID: cid,
		Outcome: audit.Violation, Reason: "foreign match", Detail: map[string]string{"match": "m1"}})
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if line["level"] != "ERROR" || line["clone_id"] != cid.String() || line["tenant_id"] != tid.String() || line["outcome"] != "violation" {
		t.Fatalf("log line %v", line)
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
