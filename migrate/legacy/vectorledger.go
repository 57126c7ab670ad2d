package legacy

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
)

// vectorLedgerDDL creates the vector ledger: one row per legacy vector the copy met
// (and one per legacy namespace that maps to no user, with an empty ID), saying what became
// of it. Deletion reads it: only vectors recorded as copied are ever deleted.
const vectorLedgerDDL = `
CREATE TABLE IF NOT EXISTS cloneiso_legacy_vector_ids (
    source      text        NOT NULL, -- the legacy namespace
    id          text        NOT NULL, -- the legacy vector ID; '' for a whole namespace of no user
    user_id     text        NOT NULL DEFAULT '', -- the user it belongs to ('' if none)
    state       text        NOT NULL, -- copied, refused or excluded
    reason      text        NOT NULL DEFAULT '', -- why it was refused
    note        text        NOT NULL DEFAULT '', -- the operator's reason for an exclusion
    fingerprint text        NOT NULL DEFAULT '', -- SHA-256 of the legacy values and metadata copied
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz, -- the legacy vector was deleted by delete-legacy
    PRIMARY KEY (source, id)
);
`

// States of a vector in the ledger.
const (
	vecCopied   = "copied"   // copied into its user's clone with this fingerprint
	vecRefused  = "refused"  // pending: retried by every copy until copied or excluded
	vecExcluded = "excluded" // the operator decided it is not migrated
)

// vecEntry is one ledger row.
type vecEntry struct {
	Source      string       `db:"source"`
	ID          string       `db:"id"`
	UserID      string       `db:"user_id"`
	State       string       `db:"state"`
	Reason      string       `db:"reason"`
	Fingerprint string       `db:"fingerprint"`
	DeletedAt   sql.NullTime `db:"deleted_at"`
}

// vecWrite is a ledger row to record.
type vecWrite struct {
	id, user, state, reason, fingerprint string
}

// fingerprint identifies a legacy vector's content: its values (exact bits) and its
// metadata (JSON, keys sorted).
func fingerprint(v driver.Vector) string {
	h := sha256.New()
	var b [4]byte
	for _, x := range v.Values {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		h.Write(b[:])
	}
	md, _ := json.Marshal(v.Metadata)
	h.Write(md)
	return hex.EncodeToString(h.Sum(nil))
}

// ensureVectorLedger creates the ledger on a database adopted before it existed.
func (m *Migrator) ensureVectorLedger(ctx context.Context, op string) error {
	if _, err := m.db.ExecContext(ctx, vectorLedgerDDL); err != nil {
		return classify(op, err, "create the vector ledger")
	}
	return nil
}

// hasVectorLedger reports whether the ledger exists (a read-only step does not create it).
func (m *Migrator) hasVectorLedger(ctx context.Context, op string) (bool, error) {
	ok, err := tableExists(ctx, m.db, "cloneiso_legacy_vector_ids")
	if err != nil {
		return false, classify(op, err, "catalog")
	}
	return ok, nil
}

// vectorEntries returns the ledger rows of the given IDs of namespace source.
func vectorEntries(ctx context.Context, q sqlx.QueryerContext, source string, ids []string) (map[string]vecEntry, error) {
	var rows []vecEntry
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT source, id, user_id, state, reason, fingerprint, deleted_at
		FROM cloneiso_legacy_vector_ids WHERE source = $1 AND id = ANY($2)`, source, pq.StringArray(ids)); err != nil {
		return nil, err
	}
	out := make(map[string]vecEntry, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// recordVectors writes ledger rows of namespace source. A refusal never overrides an
// exclusion; a copy always wins (and clears an earlier deletion mark: the legacy vector
// is back).
func recordVectors(ctx context.Context, tx sqlx.ExecerContext, source string, ws []vecWrite) error {
	if len(ws) == 0 {
		return nil
	}
	var ids, users, states, reasons, fps pq.StringArray
	for _, w := range ws {
		ids, users, states, reasons, fps = append(ids, w.id), append(users, w.user), append(states, w.state), append(reasons, w.reason), append(fps, w.fingerprint)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_vector_ids AS l (source, id, user_id, state, reason, fingerprint)
		SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
		ON CONFLICT (source, id) DO UPDATE SET user_id = EXCLUDED.user_id, state = EXCLUDED.state, reason = EXCLUDED.reason,
			fingerprint = EXCLUDED.fingerprint, updated_at = now(),
			deleted_at = CASE WHEN EXCLUDED.state = 'copied' THEN NULL ELSE l.deleted_at END
		WHERE EXCLUDED.state = 'copied' OR l.state <> 'excluded'`, source, ids, users, states, reasons, fps)
	return err
}

// forgetVectors removes ledger rows of vectors that are no longer refused: gone from the
// legacy layout, or (empty ID) a namespace that now maps to a user.
func forgetVectors(ctx context.Context, tx sqlx.ExecerContext, source string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM cloneiso_legacy_vector_ids WHERE source = $1 AND id = ANY($2) AND state = 'refused'`,
		source, pq.StringArray(ids))
	return err
}

// VectorExclusion is an operator's decision that legacy vectors the copy refused are not
// migrated (or, with Undo, that they are pending again). It is recorded with its reason
// in the migration's vector ledger; excluded vectors are no longer retried nor reported
// as problems, never deleted by [Migrator.DeleteLegacyVectors], and reported by it as
// excluded.
type VectorExclusion struct {
	// Namespace is the legacy namespace of the vectors: by default the shared namespace
	// (shared layout); required with a namespace per user (IDs repeat across users).
	Namespace string
	// IDs are the vector IDs. Empty: the whole Namespace, which must be one the copy
	// reported because it maps to no user.
	IDs []string
	// Reason is recorded with the decision; required.
	Reason string
	// Undo takes an exclusion back: the vectors are pending again, and the next copy
	// retries them.
	Undo bool
}

// ExcludeVectors records x. Only what the copy refused can be excluded (and only what
// was excluded can be taken back): an ID that is not in that state fails the whole call
// with clone.ErrInvalidInput, naming it, and records nothing. It returns the number of
// ledger entries changed.
func (m *Migrator) ExcludeVectors(ctx context.Context, o *VectorOptions, x VectorExclusion) (int64, error) {
	const op = "legacy.ExcludeVectors"
	if err := o.check(); err != nil {
		return 0, err
	}
	ns := x.Namespace
	if ns == "" {
		if o.Layout != LayoutShared {
			return 0, errs.New(errs.InvalidInput, op, "with a namespace per user, name the legacy namespace of the vectors")
		}
		ns = o.SharedNamespace
	}
	if strings.TrimSpace(x.Reason) == "" && !x.Undo {
		return 0, errs.New(errs.InvalidInput, op, "an exclusion needs a reason (it is recorded)")
	}
	ids := slices.Clone(x.IDs)
	if len(ids) == 0 {
		ids = []string{""}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if err := m.ensureVectorLedger(ctx, op); err != nil {
		return 0, err
	}
	from, to, note := vecRefused, vecExcluded, x.Reason
	if x.Undo {
		from, to, note = vecExcluded, vecRefused, ""
	}
	var n int64
	err := m.inTx(ctx, op, func(tx *sqlx.Tx) error {
		var found []string
		if err := tx.SelectContext(ctx, &found, `UPDATE cloneiso_legacy_vector_ids SET state = $4, note = $5, updated_at = now()
			WHERE source = $1 AND id = ANY($2) AND state = $3 RETURNING id`, ns, pq.StringArray(ids), from, to, note); err != nil {
			return err
		}
		if len(found) < len(ids) {
			var missing []string
			for _, id := range ids {
				if !slices.Contains(found, id) {
					missing = append(missing, id)
				}
			}
			what := "refused by vectors copy (only those can be excluded)"
			if x.Undo {
				what = "excluded"
			}
			if len(missing) == 1 && missing[0] == "" {
				return errs.New(errs.InvalidInput, op, "namespace %s is not %s", ns, what)
			}
			if len(missing) > 10 {
				missing = append(missing[:10], "...")
			}
			return errs.New(errs.InvalidInput, op, "in namespace %s, %d of the vectors are not %s: %s", ns, len(ids)-len(found), what, strings.Join(missing, ", "))
		}
		n = int64(len(found))
		return nil
	})
	if err != nil {
		return 0, err
	}
	m.cfg.Logger.InfoContext(ctx, "legacy: vector exclusion", "namespace", ns, "ids", len(ids), "undo", x.Undo, "reason", x.Reason)
	return n, nil
}
