package main

import (
	"context"
	"log/slog"

	"github.com/cloneiso/cloneiso/clone/audit"
)

// auditQueue records events into another sink from one goroutine, in order, so that
// the caller does not wait for the write.
//
// The host app uses it for the SQL audit log on SQLite only, to work around an SDK
// issue: rag.Processor records denials raised inside its transaction (a conversation ID
// of another clone) straight to the database's sink instead of after the transaction,
// and on SQLite that append waits for the transaction's own write lock until the busy
// timeout (10 s) runs out. Queued, the append runs once the transaction has ended.
// PostgreSQL appends synchronously.
type auditQueue struct {
	sink audit.Sink
	log  *slog.Logger
	ch   chan queuedEvent
	done chan struct{}
}

type queuedEvent struct {
	ctx context.Context
	e   audit.Event
}

func newAuditQueue(sink audit.Sink, log *slog.Logger) *auditQueue {
	q := &auditQueue{sink: sink, log: log, ch: make(chan queuedEvent, 1024), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for ev := range q.ch {
			if err := q.sink.Record(ev.ctx, ev.e); err != nil {
				q.log.ErrorContext(ev.ctx, "audit event lost", "action", ev.e.Action, "err", err)
			}
		}
	}()
	return q
}

// Record queues e; it blocks only while 1024 events are waiting.
func (q *auditQueue) Record(ctx context.Context, e audit.Event) error {
	q.ch <- queuedEvent{context.WithoutCancel(ctx), e}
	return nil
}

// Close records the queued events and stops. No Record may follow.
func (q *auditQueue) Close() {
	close(q.ch)
	<-q.done
}
