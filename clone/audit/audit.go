// Package audit defines the audit events every layer of cloneiso emits and the Sink they
// are written to.
//
// Every denial (missing clone context, an ID that differs from the context, a foreign ID,
// a store result that failed the post-check), every administrative action and every
// offboarding produces exactly one Event. Hosts choose the sink: [SlogSink] writes to a
// log/slog logger, a SQL sink (package clone/clonesql) appends to the audit_events table,
// [Multi] fans out to several, and [Discard] drops everything.
//
// # Default sink
//
// Every store (clonesql, records, vectorstore, objectstore, rag, the HTTP middleware)
// whose options leave the sink nil records to [DefaultSink], which logs each event on
// slog.Default(); so does [Record] given a nil Sink. Nothing is dropped unless the host
// asks for it by name with [Discard]. tenant.Admin is the one exception: its default is
// the tenant database's audit table (clonesql.AuditSink), because its events are the
// record of what administrators did.
//
// # When a sink fails
//
// A Sink must be safe for concurrent use. There are two policies, one per kind of event:
//
//   - A denial or a violation ([Emit]): the operation's outcome does not depend on the
//     sink (the request is refused whatever the sink returns), and the event is never
//     lost without a trace: the sink's error is logged on slog.Default() at level Error
//     together with the whole event, and counted in [Failures], which hosts export as a
//     metric and alert on.
//   - An event that is the point of the operation — a break-glass grant or use, a
//     tenant administrator's action, an offboarding receipt ([Record], error checked):
//     the operation fails when its event cannot be recorded, and where the event and
//     the change live in one database they are written in one transaction
//     (clonesql.WithAuditTx).
package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Outcome says how an audited action ended.
type Outcome string

// Outcomes.
const (
	// Allowed: the action was performed (admin actions, break-glass reads, offboarding).
	Allowed Outcome = "allowed"
	// Denied: the request was refused before touching another clone's data.
	Denied Outcome = "denied"
	// Violation: a store returned data of another clone; the call failed closed. Every
	// Violation is a bug or a compromise somewhere below the SDK and must be investigated.
	Violation Outcome = "violation"
	// Failed: the action was attempted and failed.
	Failed Outcome = "failed"
)

// Event is one audit record. Tenant and clone are the ones the actor acted as (from the
// CloneContext), uuid.Nil when there was none; the targeted foreign IDs, if any, go in
// Detail, never in place of the actor's own.
type Event struct {
	Time      time.Time         // when; filled by Record if zero
	Actor     string            // the principal's subject, or "" if unauthenticated
	Action    string            // what was attempted, e.g. "vectorstore.Query"
	TenantID  uuid.UUID         // the actor's tenant, or uuid.Nil
	CloneID   uuid.UUID         // the actor's clone, or uuid.Nil
	Outcome   Outcome           // allowed, denied, violation, failed
	Reason    string            // why, safe to show to an operator
	RequestID string            // the request's correlation ID (server-generated), if any
	Detail    map[string]string // extra fields (target IDs, counts; "client_request_id", see WithClientRequestID)
}

// Sink receives audit events.
type Sink interface {
	Record(ctx context.Context, e Event) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, e Event) error

// Record calls f.
func (f SinkFunc) Record(ctx context.Context, e Event) error { return f(ctx, e) }

// Discard is a Sink that drops every event. It is never a default: a host that wants
// no audit trail (tests, benchmarks) asks for it by name.
var Discard Sink = SinkFunc(func(context.Context, Event) error { return nil })

// DefaultSink is the sink of every store whose options leave the sink nil, and of
// [Record] given a nil Sink: [SlogSink] on slog.Default() (as it is when the event is
// recorded, so a host's slog.SetDefault applies).
var DefaultSink Sink = SinkFunc(func(ctx context.Context, e Event) error {
	return SlogSink(slog.Default()).Record(ctx, e)
})

// Record stamps e.Time (if zero) and the request ID from ctx (if empty) and writes e to s
// ([DefaultSink] if s is nil), returning the sink's error. Use it rather than calling
// s.Record directly, and check its error where the event is the point of the operation;
// record denials with [Emit].
func Record(ctx context.Context, s Sink, e Event) error {
	if s == nil {
		s = DefaultSink
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.RequestID == "" {
		e.RequestID = RequestIDFrom(ctx)
	}
	if c := ClientRequestIDFrom(ctx); c != "" && e.Detail[ClientRequestIDKey] == "" {
		d := make(map[string]string, len(e.Detail)+1)
		for k, v := range e.Detail {
			d[k] = v
		}
		d[ClientRequestIDKey] = c
		e.Detail = d
	}
	// A denial is often recorded while ctx is already cancelled (that may be why it was
	// denied); the record must still be written.
	return s.Record(context.WithoutCancel(ctx), e)
}

var failures atomic.Uint64

// Failures returns how many events a sink failed to record through [Emit] since the
// process started. Export it as a metric (a counter) and alert when it grows: each
// failure is also logged, with the whole event, on slog.Default().
func Failures() uint64 { return failures.Load() }

// Emit records e to s like [Record] (a nil s is [DefaultSink]), for events whose
// operation must not depend on the sink: denials and violations. If the sink fails, the
// event is not lost without a trace: Emit logs the sink's error and the whole event on
// slog.Default() at level Error ("audit: sink failed") and adds one to [Failures]. It
// returns the sink's error, which callers may ignore.
func Emit(ctx context.Context, s Sink, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.RequestID == "" {
		e.RequestID = RequestIDFrom(ctx)
	}
	err := Record(ctx, s, e)
	if err != nil {
		failures.Add(1)
		logEvent(context.Background(), slog.Default(), slog.LevelError, "audit: sink failed", e, slog.String("sink_error", err.Error()))
	}
	return err
}

// Multi returns a Sink that writes to every sink and joins their errors.
func Multi(sinks ...Sink) Sink {
	return SinkFunc(func(ctx context.Context, e Event) error {
		var errsOut []error
		for _, s := range sinks {
			if s != nil {
				errsOut = append(errsOut, s.Record(ctx, e))
			}
		}
		return errors.Join(errsOut...)
	})
}

// SlogSink returns a Sink that logs each event on l: violations at level Error, denials
// and failures at Warn, everything else at Info. The record's time is the event's
// (Event.Time, or now if zero); the other fields are the attributes actor, action,
// tenant_id, clone_id, outcome, reason, request_id and a "detail" group, each once. The
// record is logged with ctx, so a handler that adds the request's IDs from the context
// (clonehttp.NewLogHandler) finds them already set and does not repeat them.
func SlogSink(l *slog.Logger) Sink {
	return SinkFunc(func(ctx context.Context, e Event) error {
		level := slog.LevelInfo
		switch e.Outcome {
		case Violation:
			level = slog.LevelError
		case Denied, Failed:
			level = slog.LevelWarn
		}
		logEvent(ctx, l, level, "audit", e)
		return nil
	})
}

// logEvent logs e on l as one record whose time is the event's (so that the event's
// time is not a second "time" key), with extra attributes first.
func logEvent(ctx context.Context, l *slog.Logger, level slog.Level, msg string, e Event, extra ...slog.Attr) {
	h := l.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(extra...)
	r.AddAttrs(eventAttrs(e)...)
	_ = h.Handle(ctx, r)
}

// eventAttrs is the whole event but its time as log attributes.
func eventAttrs(e Event) []slog.Attr {
	attrs := []slog.Attr{
		slog.String("actor", e.Actor),
		slog.String("action", e.Action),
		slog.String("tenant_id", idString(e.TenantID)),
		slog.String("clone_id", idString(e.CloneID)),
		slog.String("outcome", string(e.Outcome)),
		slog.String("reason", e.Reason),
		slog.String("request_id", e.RequestID),
	}
	if len(e.Detail) > 0 {
		d := make([]any, 0, len(e.Detail))
		for k, v := range e.Detail {
			d = append(d, slog.String(k, v))
		}
		attrs = append(attrs, slog.Group("detail", d...))
	}
	return attrs
}

func idString(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}

// Memory is a Sink that keeps events in memory, for tests and examples.
type Memory struct {
	mu     sync.Mutex
	events []Event
}

// Record appends e.
func (m *Memory) Record(_ context.Context, e Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

// Events returns a copy of the recorded events.
func (m *Memory) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

// Reset drops the recorded events.
func (m *Memory) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = nil
}

type requestIDKey struct{}

// WithRequestID returns a copy of ctx carrying a request correlation ID that [Record]
// puts into events. It must be generated by the server (clonehttp.Middleware does):
// never a value taken from the request, which belongs in [WithClientRequestID].
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request ID carried by ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// ClientRequestIDKey is the Detail key under which [Record] stores the client's request
// ID, and the log attribute clonehttp uses for it.
const ClientRequestIDKey = "client_request_id"

type clientRequestIDKey struct{}

// WithClientRequestID returns a copy of ctx carrying the request ID the client sent,
// which [Record] adds to events as Detail[ClientRequestIDKey], next to the server's own
// RequestID, never in its place. The caller must have validated id (clonehttp.Middleware
// keeps only 1 to 64 characters of [A-Za-z0-9._:-] and drops anything else): it goes
// into logs and the audit log as is.
func WithClientRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, clientRequestIDKey{}, id)
}

// ClientRequestIDFrom returns the client's request ID carried by ctx, or "".
func ClientRequestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(clientRequestIDKey{}).(string)
	return s
}
