package clonesql

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// AuditSink returns an audit.Sink that appends each event to the audit_events table of
// db (created by package migrate), as the next link of its tenant's hash chain.
//
// The table is append-only for the application role (it may insert and read, never
// update or delete) and carries no row-level security, so denials without a clone
// context are recorded too (in the chain of the nil UUID). Each event stores the
// SHA-256 of its predecessor's hash and its own canonical form; audit_chain_heads keeps
// the newest hash of every chain. [VerifyAuditChain] recomputes a chain and finds any
// edited, deleted, moved or forged event. Appends to one chain are serialized (a row
// lock on the chain head on PostgreSQL; SQLite transactions are serialized already), so
// each costs one short transaction.
//
// A db whose driver is not supported yields a sink whose every Record fails with that
// error.
func AuditSink(db *sql.DB) audit.Sink {
	x, d, err := wrap(db, "clonesql.AuditSink")
	return &sqlSink{db: db, x: x, dialect: d, err: err}
}

type sqlSink struct {
	db      *sql.DB
	x       *sqlx.DB
	dialect Dialect
	err     error // the driver is not supported
}

// canonicalEvent is the hashed form of an event: fixed field order, UTC time with
// microseconds (what both databases store exactly), empty detail omitted.
type canonicalEvent struct {
	Time      string            `json:"time"`
	Actor     string            `json:"actor"`
	Action    string            `json:"action"`
	TenantID  string            `json:"tenant_id"`
	CloneID   string            `json:"clone_id"`
	Outcome   string            `json:"outcome"`
	Reason    string            `json:"reason"`
	RequestID string            `json:"request_id"`
	Detail    map[string]string `json:"detail,omitempty"`
}

func idText(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}

func linkHash(prev []byte, e audit.Event) ([]byte, error) {
	c := canonicalEvent{
		Time: e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), Actor: e.Actor, Action: e.Action,
		TenantID: idText(e.TenantID), CloneID: idText(e.CloneID), Outcome: string(e.Outcome),
		Reason: e.Reason, RequestID: e.RequestID,
	}
	if len(e.Detail) > 0 {
		c.Detail = e.Detail
	}
	b, err := json.Marshal(c) // map keys are sorted: the encoding is canonical
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(b)
	return h.Sum(nil), nil
}

// auditTxKey carries the transaction of [WithAuditTx].
type auditTxKey struct{}

type auditTx struct {
	db *sql.DB
	tx *sql.Tx
}

// WithAuditTx returns a copy of ctx under which the SQL audit sinks of db
// ([AuditSink](db), also inside audit.Multi) append their events inside tx, a
// transaction on db, instead of in a transaction of their own: the event then commits
// or rolls back with the change it records, and a sink failure fails the transaction.
// tenant.Admin writes a break-glass grant and its audit event this way. Sinks of other
// databases, and other sinks, are not affected.
func WithAuditTx(ctx context.Context, db *sql.DB, tx *sql.Tx) context.Context {
	return context.WithValue(ctx, auditTxKey{}, auditTx{db: db, tx: tx})
}

func (s *sqlSink) Record(ctx context.Context, e audit.Event) error {
	const op = "clonesql.AuditSink"
	if s.err != nil {
		return s.err
	}
	if at, ok := ctx.Value(auditTxKey{}).(auditTx); ok && at.db == s.db && at.tx != nil {
		return s.append(ctx, &sqlx.Tx{Tx: at.tx, Mapper: s.x.Mapper}, e)
	}
	tx, err := s.x.BeginTxx(ctx, nil)
	if err != nil {
		return ClassifyError(op, err)
	}
	defer tx.Rollback()
	if err := s.append(ctx, tx, e); err != nil {
		return err
	}
	return ClassifyError(op, tx.Commit())
}

// append appends e to its chain inside tx.
func (s *sqlSink) append(ctx context.Context, tx *sqlx.Tx, e audit.Event) error {
	const op = "clonesql.AuditSink"
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	detail := "{}"
	if len(e.Detail) > 0 {
		b, err := json.Marshal(e.Detail)
		if err != nil {
			return errs.Wrap(errs.InvalidInput, op, err, "detail")
		}
		detail = string(b)
	}
	chain := e.TenantID
	if _, err := tx.ExecContext(ctx, s.x.Rebind(`INSERT INTO audit_chain_heads (chain_id, last_id, last_hash) VALUES (?, 0, ?) ON CONFLICT (chain_id) DO NOTHING`), chain, []byte{}); err != nil {
		return ClassifyError(op, err)
	}
	lock := ""
	if s.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	var prev []byte
	if err := tx.GetContext(ctx, &prev, s.x.Rebind(`SELECT last_hash FROM audit_chain_heads WHERE chain_id = ?`+lock), chain); err != nil {
		return ClassifyError(op, err)
	}
	hash, err := linkHash(prev, e)
	if err != nil {
		return errs.Wrap(errs.InvalidInput, op, err, "encode event")
	}
	var id int64
	if err := tx.GetContext(ctx, &id, s.x.Rebind(`INSERT INTO audit_events
		(occurred_at, actor, action, tenant_id, clone_id, outcome, reason, request_id, detail, chain_id, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		e.Time, e.Actor, e.Action, nullID(e.TenantID), nullID(e.CloneID), string(e.Outcome), e.Reason, e.RequestID, detail,
		chain, prev, hash); err != nil {
		return ClassifyError(op, err)
	}
	if _, err := tx.ExecContext(ctx, s.x.Rebind(`UPDATE audit_chain_heads SET last_id = ?, last_hash = ? WHERE chain_id = ?`), id, hash, chain); err != nil {
		return ClassifyError(op, err)
	}
	return nil
}

func nullID(id uuid.UUID) uuid.NullUUID { return uuid.NullUUID{UUID: id, Valid: id != uuid.Nil} }

// AuditEvent is an audit event as stored, with its position in its chain.
type AuditEvent struct {
	ID int64
	audit.Event
}

type auditRow struct {
	ID        int64         `db:"id"`
	Time      time.Time     `db:"occurred_at"`
	Actor     string        `db:"actor"`
	Action    string        `db:"action"`
	TenantID  uuid.NullUUID `db:"tenant_id"`
	CloneID   uuid.NullUUID `db:"clone_id"`
	Outcome   string        `db:"outcome"`
	Reason    string        `db:"reason"`
	RequestID string        `db:"request_id"`
	Detail    string        `db:"detail"`
	ChainID   uuid.NullUUID `db:"chain_id"`
	PrevHash  []byte        `db:"prev_hash"`
	Hash      []byte        `db:"hash"`
	_         sql.RawBytes  `db:"-"`
}

func (r *auditRow) event() (AuditEvent, error) {
	e := AuditEvent{ID: r.ID, Event: audit.Event{
		Time: r.Time.UTC(), Actor: r.Actor, Action: r.Action, TenantID: r.TenantID.UUID, CloneID: r.CloneID.UUID,
		Outcome: audit.Outcome(r.Outcome), Reason: r.Reason, RequestID: r.RequestID,
	}}
	if r.Detail != "" && r.Detail != "{}" {
		if err := json.Unmarshal([]byte(r.Detail), &e.Detail); err != nil {
			return e, err
		}
	}
	return e, nil
}

const auditColumns = `id, occurred_at, actor, action, tenant_id, clone_id, outcome, reason, request_id, detail, chain_id, prev_hash, hash`

// AuditEvents returns up to limit (1..1000) audit events of tenant tenantID with IDs
// greater than after, oldest first; pass the last ID of a page as after to get the next.
// It reads the table directly: callers must authorize the reader (package tenant lets
// only a tenant's owners and admins read its events).
func AuditEvents(ctx context.Context, sdb *sql.DB, tenantID uuid.UUID, after int64, limit int) ([]AuditEvent, error) {
	const op = "clonesql.AuditEvents"
	if limit < 1 || limit > 1000 {
		return nil, errs.New(errs.InvalidInput, op, "limit %d outside 1..1000", limit)
	}
	db, _, err := wrap(sdb, op)
	if err != nil {
		return nil, err
	}
	var rows []auditRow
	if err := db.SelectContext(ctx, &rows, db.Rebind(`SELECT `+auditColumns+` FROM audit_events
		WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`), tenantID, after, limit); err != nil {
		return nil, ClassifyError(op, err)
	}
	out := make([]AuditEvent, len(rows))
	for i := range rows {
		e, err := rows[i].event()
		if err != nil {
			return nil, errs.Wrap(errs.Unavailable, op, err, "event %d: detail", rows[i].ID)
		}
		out[i] = e
	}
	return out, nil
}

// ChainReport is the result of [VerifyAuditChain].
type ChainReport struct {
	ChainID   uuid.UUID // the tenant (uuid.Nil: events without a tenant)
	Events    int       // events verified
	Unchained int       // events of the tenant outside any chain (written around the sink)
	OK        bool
	BrokenAt  int64  // ID of the first event that fails verification, 0 if none or the head
	Problem   string // what failed, "" if OK
	HeadHash  []byte // the chain's newest hash: publish it elsewhere to anchor the chain
}

// VerifyAuditChain recomputes the hash chain of tenant tenantID (uuid.Nil for events
// without a tenant) and reports the first event that was edited, deleted, inserted out of
// band, moved to another chain, or reordered, and whether the chain's head still matches
// its newest event. Someone able to rewrite both the events and the head (a superuser)
// can forge a consistent chain: anchor the chain by storing HeadHash outside the
// database (a log shipper, a ticket) and comparing it later.
func VerifyAuditChain(ctx context.Context, sdb *sql.DB, tenantID uuid.UUID) (*ChainReport, error) {
	const op = "clonesql.VerifyAuditChain"
	db, _, err := wrap(sdb, op)
	if err != nil {
		return nil, err
	}
	r := &ChainReport{ChainID: tenantID}
	broken := func(id int64, format string, args ...any) (*ChainReport, error) {
		r.BrokenAt, r.Problem = id, fmt.Sprintf(format, args...)
		return r, nil
	}
	rows, err := db.QueryxContext(ctx, db.Rebind(`SELECT `+auditColumns+` FROM audit_events WHERE chain_id = ? ORDER BY id`), tenantID)
	if err != nil {
		return nil, ClassifyError(op, err)
	}
	defer rows.Close()
	prev := []byte{}
	var lastID int64
	for rows.Next() {
		var row auditRow
		if err := rows.StructScan(&row); err != nil {
			return nil, ClassifyError(op, err)
		}
		r.Events++
		if !bytes.Equal(row.PrevHash, prev) {
			return broken(row.ID, "event %d does not follow event %d: an event before it was deleted, edited or reordered", row.ID, lastID)
		}
		if row.TenantID.UUID != tenantID {
			return broken(row.ID, "event %d belongs to tenant %s but sits in this chain", row.ID, row.TenantID.UUID)
		}
		e, err := row.event()
		if err != nil {
			return broken(row.ID, "event %d: unreadable detail", row.ID)
		}
		want, err := linkHash(prev, e.Event)
		if err != nil {
			return nil, errs.Wrap(errs.Unavailable, op, err, "hash event %d", row.ID)
		}
		if !bytes.Equal(row.Hash, want) {
			return broken(row.ID, "event %d was edited after it was written", row.ID)
		}
		prev, lastID = row.Hash, row.ID
	}
	if err := rows.Err(); err != nil {
		return nil, ClassifyError(op, err)
	}
	var head struct {
		LastID   int64  `db:"last_id"`
		LastHash []byte `db:"last_hash"`
	}
	err = db.GetContext(ctx, &head, db.Rebind(`SELECT last_id, last_hash FROM audit_chain_heads WHERE chain_id = ?`), tenantID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if r.Events > 0 {
			return broken(0, "the chain has events but no head: the head was deleted")
		}
	case err != nil:
		return nil, ClassifyError(op, err)
	case head.LastID != lastID || !bytes.Equal(head.LastHash, prev):
		return broken(0, "the chain head names event %d but the newest event is %d: the newest events were deleted or the head was changed", head.LastID, lastID)
	}
	r.HeadHash = prev
	if err := db.GetContext(ctx, &r.Unchained, db.Rebind(`SELECT count(*) FROM audit_events WHERE tenant_id = ? AND (chain_id IS NULL OR chain_id <> ?)`), tenantID, tenantID); err != nil {
		return nil, ClassifyError(op, err)
	}
	if tenantID == uuid.Nil {
		r.Unchained = 0 // tenant_id IS NULL rows are not matched by '= nil UUID'; counted by the chain walk
	}
	if r.Unchained > 0 {
		return broken(0, "%d events of the tenant are outside its chain: written around the sink or moved", r.Unchained)
	}
	r.OK = true
	return r, nil
}
