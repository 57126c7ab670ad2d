package legacy

import (
	"context"
	"database/sql"
	"errors"
)

// TableStatus is the migration state of one configured table.
type TableStatus struct {
	Table       string
	Exists      bool
	Snapshotted bool  // its "before" is recorded
	Backfilled  bool  // the backfill went through all of it
	Batches     int64 // backfill batches committed so far
	RowsChanged int64 // rows given their clone so far
}

// Status is where a database stands in the migration.
type Status struct {
	// SchemaVersion is the highest version of cloneiso's schema recorded (0: none).
	SchemaVersion int64
	// Adopted is true once [Migrator.Adopt] ran (the bookkeeping tables exist).
	Adopted bool
	// Legacy is true when configured tables exist but cloneiso's schema is not
	// recorded: a legacy database not yet enforced.
	Legacy bool
	// Users is the number of legacy users with their clone.
	Users          int64
	Tables         []TableStatus
	ObjectsCopied  int64
	ObjectsDeleted int64
	VectorsCopied  int64 // legacy vectors recorded as copied
	VectorsDeleted int64 // legacy vectors deleted by DeleteLegacyVectors
	// Quarantined counts the rows set aside in cloneiso_legacy_quarantine.
	Quarantined int64
}

// Status reports where the database stands, reading only.
func (m *Migrator) Status(ctx context.Context) (*Status, error) {
	const op = "legacy.Status"
	if err := m.checkPath(ctx, op); err != nil {
		return nil, err
	}
	s := &Status{}
	var err error
	if s.SchemaVersion, err = schemaVersion(ctx, m.db); err != nil {
		return nil, classify(op, err, "schema version")
	}
	if s.Adopted, err = tableExists(ctx, m.db, "cloneiso_legacy_users"); err != nil {
		return nil, classify(op, err, "catalog")
	}
	for _, t := range m.cfg.Tables {
		ts := TableStatus{Table: t.Name}
		if ts.Exists, err = tableExists(ctx, m.db, t.Name); err != nil {
			return nil, classify(op, err, "catalog")
		}
		if ts.Exists && s.SchemaVersion == 0 {
			s.Legacy = true
		}
		if s.Adopted {
			var cp struct {
				Done    bool  `db:"done"`
				Batches int64 `db:"batches"`
				Rows    int64 `db:"rows_changed"`
			}
			err := m.db.GetContext(ctx, &cp, "SELECT done, batches, rows_changed FROM cloneiso_legacy_checkpoints WHERE step = 'backfill' AND name = $1", t.Name)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, classify(op, err, "checkpoints")
			}
			ts.Backfilled, ts.Batches, ts.RowsChanged = cp.Done, cp.Batches, cp.Rows
			if err := m.db.GetContext(ctx, &ts.Snapshotted, "SELECT EXISTS (SELECT 1 FROM cloneiso_legacy_checkpoints WHERE step = 'snapshot' AND name = $1 AND done)", t.Name); err != nil {
				return nil, classify(op, err, "checkpoints")
			}
		}
		s.Tables = append(s.Tables, ts)
	}
	if s.Adopted {
		err := m.db.QueryRowxContext(ctx, `SELECT (SELECT count(*) FROM cloneiso_legacy_users),
			(SELECT count(*) FROM cloneiso_legacy_objects), (SELECT count(*) FROM cloneiso_legacy_objects WHERE deleted_at IS NOT NULL)`).
			Scan(&s.Users, &s.ObjectsCopied, &s.ObjectsDeleted)
		if err != nil {
			return nil, classify(op, err, "progress")
		}
		if ok, err := tableExists(ctx, m.db, "cloneiso_legacy_vector_ids"); err != nil {
			return nil, classify(op, err, "catalog")
		} else if ok {
			if err := m.db.QueryRowxContext(ctx, `SELECT count(*) FILTER (WHERE state = 'copied' AND id <> ''), count(*) FILTER (WHERE deleted_at IS NOT NULL)
				FROM cloneiso_legacy_vector_ids`).Scan(&s.VectorsCopied, &s.VectorsDeleted); err != nil {
				return nil, classify(op, err, "progress")
			}
		}
		if ok, err := tableExists(ctx, m.db, "cloneiso_legacy_quarantine"); err != nil {
			return nil, classify(op, err, "catalog")
		} else if ok {
			if err := m.db.GetContext(ctx, &s.Quarantined, "SELECT count(*) FROM cloneiso_legacy_quarantine"); err != nil {
				return nil, classify(op, err, "quarantine")
			}
		}
	}
	return s, nil
}
