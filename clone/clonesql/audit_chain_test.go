package clonesql_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
)

// TestAuditChainDetectsTampering writes a chain of events for a tenant, verifies it, then
// tampers with it as the database owner (a superuser on PostgreSQL; on SQLite after
// dropping the append-only triggers) in each way an insider could, and asserts that
// verification catches every one.
func TestAuditChainDetectsTampering(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sink := clonesql.AuditSink(e.raw.DB)
		if e.dialect == clonesql.SQLite {
			if _, err := e.owner.Exec(`DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete`); err != nil {
				t.Fatal(err)
			}
		}
		tampers := []struct {
			name string
			do   func(t *testing.T, tenant uuid.UUID, ids []int64)
		}{
			{"edit a reason", func(t *testing.T, tenant uuid.UUID, ids []int64) {
				exec(t, e, `UPDATE audit_events SET reason = 'nothing happened' WHERE id = ?`, ids[2])
			}},
			{"edit an outcome", func(t *testing.T, tenant uuid.UUID, ids []int64) {
				exec(t, e, `UPDATE audit_events SET outcome = 'allowed' WHERE id = ?`, ids[1])
			}},
			{"delete a middle event", func(t *testing.T, tenant uuid.UUID, ids []int64) {
				exec(t, e, `DELETE FROM audit_events WHERE id = ?`, ids[2])
			}},
			{"delete the newest event", func(t *testing.T, tenant uuid.UUID, ids []int64) {
				exec(t, e, `DELETE FROM audit_events WHERE id = ?`, ids[len(ids)-1])
			}},
			{"forge an event around the sink", func(t *testing.T, tenant uuid.UUID, ids []int64) {
				exec(t, e, `INSERT INTO audit_events (action, outcome, tenant_id) VALUES ('forged', 'allowed', ?)`, tenant)
			}},
			{"move an event out of the chain", func(t *testing.T, tenant uuid.UUID, ids []int64) {
				exec(t, e, `UPDATE audit_events SET chain_id = ? WHERE id = ?`, uuid.New(), ids[1])
			}},
			{"rewrite the head", func(t *testing.T, tenant uuid.UUID, ids []int64) {
				exec(t, e, `UPDATE audit_chain_heads SET last_id = ? WHERE chain_id = ?`, ids[2], tenant)
			}},
		}
		for _, tc := range tampers {
			t.Run(tc.name, func(t *testing.T) {
				tenant, cloneID := uuid.New(), uuid.New()
				var ids []int64
				for i := range 5 {
					err := audit.Record(ctx, sink, audit.Event{Actor: "alice", Action: "vectorstore.Query", TenantID: tenant, CloneID: cloneID,
						Outcome: audit.Denied, Reason: fmt.Sprintf("denial %d", i), Detail: map[string]string{"n": fmt.Sprint(i)}})
					if err != nil {
						t.Fatal(err)
					}
				}
				if err := e.raw.Select(&ids, e.raw.Rebind(`SELECT id FROM audit_events WHERE tenant_id = ? ORDER BY id`), tenant); err != nil || len(ids) != 5 {
					t.Fatalf("ids %v, %v", ids, err)
				}
				r, err := clonesql.VerifyAuditChain(ctx, e.raw.DB, tenant)
				if err != nil || !r.OK || r.Events != 5 || len(r.HeadHash) != 32 {
					t.Fatalf("untouched chain: %+v, %v", r, err)
				}
				evs, err := clonesql.AuditEvents(ctx, e.raw.DB, tenant, 0, 3)
				if err != nil || len(evs) != 3 || evs[0].Reason != "denial 0" || evs[2].Detail["n"] != "2" {
					t.Fatalf("AuditEvents page: %+v, %v", evs, err)
				}
				tc.do(t, tenant, ids)
				r, err = clonesql.VerifyAuditChain(ctx, e.raw.DB, tenant)
				if err != nil {
					t.Fatal(err)
				}
				if r.OK || r.Problem == "" {
					t.Fatalf("tampering (%s) not detected: %+v", tc.name, r)
				}
				t.Logf("detected: %s", r.Problem)
			})
		}
	})
}

// TestAuditChainConcurrentAppends: concurrent denials of one tenant form one unbroken
// chain.
func TestAuditChainConcurrentAppends(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sink := clonesql.AuditSink(e.raw.DB)
		tenant := uuid.New()
		var wg sync.WaitGroup
		errc := make(chan error, 40)
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errc <- audit.Record(ctx, sink, audit.Event{Action: "x", TenantID: tenant, Outcome: audit.Denied, Reason: strings.Repeat("r", i)})
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
		r, err := clonesql.VerifyAuditChain(ctx, e.raw.DB, tenant)
		if err != nil || !r.OK || r.Events != 40 {
			t.Fatalf("chain after concurrent appends: %+v, %v", r, err)
		}
		// Events without a tenant have a chain of their own.
		if err := audit.Record(ctx, sink, audit.Event{Action: "clonehttp.Authenticate", Outcome: audit.Denied}); err != nil {
			t.Fatal(err)
		}
		if r, err := clonesql.VerifyAuditChain(ctx, e.raw.DB, uuid.Nil); err != nil || !r.OK || r.Events < 1 {
			t.Fatalf("nil chain: %+v, %v", r, err)
		}
	})
}

func exec(t *testing.T, e *env, q string, args ...any) {
	t.Helper()
	if _, err := e.owner.Exec(e.owner.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
