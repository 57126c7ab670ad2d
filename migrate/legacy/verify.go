package legacy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// stableSettings make a row's text form, and so its checksum, independent of the
// session: time zone, date and interval styles, float digits and bytea format.
const stableSettings = `SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL IntervalStyle = 'postgres';
SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'`

// contentColumns are the columns a checksum covers: all but tenant_id and clone_id,
// which the backfill is meant to change.
func contentColumns(ctx context.Context, q querier, table string) ([]string, error) {
	cols, err := columnsOf(ctx, q, table)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(cols, func(c string) bool { return c == "tenant_id" || c == "clone_id" }), nil
}

// userChecksum is one user's row count and content checksum in one table.
type userChecksum struct {
	UserID   string `db:"user_id"` // "" for rows without a user
	Rows     int64  `db:"row_count"`
	Checksum string `db:"checksum"`
}

// checksumSQL returns the per-user count and checksum query: the checksum is the md5 of
// the sorted md5s of the rows' text forms, so it does not depend on row order.
//
// An ObjectKeyColumn enters the checksum as the legacy key its value was rewritten
// from (through the copy ledger), so RewriteObjectKeys changes no checksum while a key
// pointed at another object does.
//
// With quarantine, the rows set aside in cloneiso_legacy_quarantine count as rows of
// their table (restored from their JSON form): setting rows aside moves them, it does
// not change the data.
func checksumSQL(t Table, cols []string, quarantine bool) string {
	exprs := make([]string, len(cols))
	join := ""
	for i, c := range cols {
		exprs[i] = "_t." + pq.QuoteIdentifier(c)
		if c == t.ObjectKeyColumn {
			exprs[i] = "coalesce(_ok.legacy_key, " + exprs[i] + ")"
			join = " LEFT JOIN cloneiso_legacy_objects _ok ON _ok.new_key = _t." + pq.QuoteIdentifier(c) + " AND _ok.new_key <> ''"
		}
	}
	return `SELECT user_id, count(*) AS row_count, md5(string_agg(_h, '' ORDER BY _h)) AS checksum FROM (
		SELECT coalesce(_t.` + pq.QuoteIdentifier(t.userColumn()) + `::text, '') AS user_id, md5(ROW(` + strings.Join(exprs, ", ") + `)::text) AS _h
		FROM ` + rowsOf(t, quarantine) + ` AS _t` + join + `) AS _r GROUP BY user_id ORDER BY user_id`
}

// rowsOf is the table's rows, with those set aside in the quarantine if quarantine.
func rowsOf(t Table, quarantine bool) string {
	tq := pq.QuoteIdentifier(t.Name)
	if !quarantine {
		return tq
	}
	return "(SELECT * FROM " + tq + " UNION ALL SELECT (_qr.row::" + tq + ").* FROM cloneiso_legacy_quarantine _qr WHERE _qr.table_name = " + pq.QuoteLiteral(t.Name) + ")"
}

// Snapshot records, once per table, each user's row count and content checksum (every
// column but tenant_id and clone_id) in cloneiso_legacy_snapshot: the "before" that
// [Migrator.Verify] compares with. [Migrator.Backfill] calls it first; a table already
// recorded is left alone, so the snapshot always describes the data as it was before the
// first backfill.
func (m *Migrator) Snapshot(ctx context.Context) error {
	const op = "legacy.Snapshot"
	if err := m.checkPath(ctx, op); err != nil {
		return err
	}
	for _, t := range m.cfg.Tables {
		if err := m.snapshotTable(ctx, t); err != nil {
			if errs.KindOf(err) == errs.Unknown && ctx.Err() == nil {
				err = classify(op, err, "%s", t.Name)
			}
			return err
		}
	}
	return nil
}

func (m *Migrator) snapshotTable(ctx context.Context, t Table) error {
	tx, err := m.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if ok, err := tableExists(ctx, tx, t.Name); err != nil || !ok {
		return err
	}
	var done bool
	err = tx.GetContext(ctx, &done, "SELECT done FROM cloneiso_legacy_checkpoints WHERE step = 'snapshot' AND name = $1", t.Name)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if done {
		return nil
	}
	if _, err := tx.ExecContext(ctx, stableSettings); err != nil {
		return err
	}
	cols, err := contentColumns(ctx, tx, t.Name)
	if err != nil {
		return err
	}
	withQ, err := tableExists(ctx, tx, "cloneiso_legacy_quarantine")
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_snapshot (table_name, user_id, row_count, checksum, columns)
		SELECT $1, user_id, row_count, checksum, $2 FROM (`+checksumSQL(t, cols, withQ)+`) AS _s`, t.Name, pq.StringArray(cols)); err != nil {
		return err
	}
	if err := m.cfg.at(ctx, "snapshot-before-commit:"+t.Name, 0); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_checkpoints (step, name, done) VALUES ('snapshot', $1, true)`, t.Name); err != nil {
		return err
	}
	m.cfg.Progress(Progress{Step: "snapshot", Table: t.Name})
	return tx.Commit()
}

// Kinds of [Discrepancy].
const (
	DiscrepancyNoSnapshot    = "no-snapshot"   // the table was never snapshotted: nothing to compare with
	DiscrepancyCount         = "count"         // a user's row count differs from the snapshot
	DiscrepancyChecksum      = "checksum"      // a user's rows differ in content from the snapshot
	DiscrepancyWithoutClone  = "without-clone" // rows of a user that have no clone yet
	DiscrepancyWithoutUser   = "without-user"  // rows with neither a user nor a clone
	DiscrepancyWrongClone    = "wrong-clone"   // rows whose clone is not their user's clone
	DiscrepancyUnprovisioned = "unprovisioned" // a legacy user without a clone
	DiscrepancyMapping       = "mapping"       // the user→clone mapping disagrees with clones/tenants
	DiscrepancyParent        = "parent-clone"  // a row whose parent row (foreign key) is in another clone
	DiscrepancyObject        = "object"        // an object copy is missing or differs
	DiscrepancyVector        = "vector"        // a vector copy is missing or differs
	DiscrepancyUnmatched     = "unmatched"     // a legacy object or vector that no user owns
	DiscrepancyNotAdopted    = "not-adopted"   // the table has no tenant_id/clone_id columns
	DiscrepancyMissingTable  = "missing-table" // a configured host table does not exist
	DiscrepancyObjectKey     = "object-key"    // an object key column still names a copied legacy object, or an object outside its row\'s clone
	DiscrepancyUndecided     = "undecided"     // a legacy user ID that needs the operator's decision (Config.UserDecisions)
	DiscrepancyQuarantine    = "quarantine"    // rows set aside whose ID is no longer decided quarantine or drop
)

// Discrepancy is one thing [Migrator.Verify] (or the object and vector verifications)
// found wrong.
type Discrepancy struct {
	Kind   string // one of the Discrepancy* constants
	Table  string // table, bucket prefix or namespace concerned
	UserID string // the legacy user concerned, "" if none
	Rows   int64  // how many rows, objects or vectors
	Detail string
}

// String describes the discrepancy in one line.
func (d Discrepancy) String() string {
	s := d.Kind + " [" + d.Table
	if d.UserID != "" {
		s += " user " + d.UserID
	}
	return s + "]: " + d.Detail
}

// UserVerify compares one user's rows in one table before and after.
type UserVerify struct {
	UserID         string
	RowsBefore     int64
	RowsAfter      int64
	ChecksumBefore string
	ChecksumAfter  string
}

// TableVerify is the verification of one table.
type TableVerify struct {
	Table      string
	RowsBefore int64
	// RowsAfter counts the table's rows and its rows set aside in the quarantine.
	RowsAfter    int64
	Quarantined  int64 // rows set aside in cloneiso_legacy_quarantine
	WithoutClone int64
	WrongClone   int64
	Users        []UserVerify
}

// VerifyReport is the result of a verification. An empty Discrepancies list means the
// data is where it belongs.
type VerifyReport struct {
	Tables        []TableVerify
	Discrepancies []Discrepancy
}

// OK reports whether nothing was found wrong.
func (r *VerifyReport) OK() bool { return len(r.Discrepancies) == 0 }

// String lists the discrepancies, one per line.
func (r *VerifyReport) String() string {
	if r.OK() {
		return "verified: no discrepancy"
	}
	lines := make([]string, len(r.Discrepancies))
	for i, d := range r.Discrepancies {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

func (r *VerifyReport) add(kind, table, user string, rows int64, format string, args ...any) {
	r.Discrepancies = append(r.Discrepancies, Discrepancy{Kind: kind, Table: table, UserID: user, Rows: rows, Detail: fmt.Sprintf(format, args...)})
}

// Verify checks the SQL migration without changing anything, in one read-only
// snapshot of the database: per table and per user, the row count and the content
// checksum (every column but tenant_id and clone_id) equal those recorded by
// [Migrator.Snapshot] before the backfill; no row lacks its clone (rows without a user
// are reported separately); every row's clone is its user's clone (a row moved to
// another user or clone after the backfill is caught); every legacy user has exactly
// the clone recorded for it (clones.user_id, tenants.signup_subject); and, before
// enforcement, no row's parent row (foreign key between configured tables) is in
// another clone. Verify reads every clone's rows: after [Migrator.Enforce] it must run
// as a role that bypasses row-level security, else it fails instead of reporting
// half the truth.
func (m *Migrator) Verify(ctx context.Context) (*VerifyReport, error) {
	const op = "legacy.Verify"
	if err := m.checkPath(ctx, op); err != nil {
		return nil, err
	}
	tx, err := m.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, classify(op, err, "begin")
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, stableSettings+"; SET LOCAL row_security = off"); err != nil {
		return nil, classify(op, err, "settings")
	}
	r := &VerifyReport{}
	if err := m.verify(ctx, tx, r); err != nil {
		var pe *pq.Error
		if errors.As(err, &pe) && pe.Code == "42501" {
			return nil, errs.Wrap(errs.Forbidden, op, err, "verify must read every clone's rows: run it as the schema owner with BYPASSRLS (or a superuser), or before enforce")
		}
		if errs.KindOf(err) == errs.Unknown {
			err = classify(op, err, "verify")
		}
		return nil, err
	}
	return r, nil
}

func (m *Migrator) verify(ctx context.Context, tx *sqlx.Tx, r *VerifyReport) error {
	if ok, err := tableExists(ctx, tx, "cloneiso_legacy_users"); err != nil {
		return err
	} else if !ok {
		return errs.New(errs.Conflict, "legacy.Verify", "the database was not adopted: run adopt and backfill first")
	}
	withQ, err := tableExists(ctx, tx, "cloneiso_legacy_quarantine")
	if err != nil {
		return err
	}
	for ti, t := range m.cfg.Tables {
		tv, err := m.verifyTable(ctx, tx, t, withQ, r)
		if err != nil {
			return err
		}
		r.Tables = append(r.Tables, tv)
		m.cfg.Progress(Progress{Step: "verify", Table: t.Name, Done: int64(ti + 1), Total: int64(len(m.cfg.Tables))})
	}
	if err := m.verifyParents(ctx, tx, r); err != nil {
		return err
	}
	if err := m.verifyDecisions(ctx, tx, withQ, r); err != nil {
		return err
	}
	return m.verifyUsers(ctx, tx, r)
}

// verifyTable checks one table: its snapshot against its rows now, rows without or in
// the wrong clone, its object key column.
func (m *Migrator) verifyTable(ctx context.Context, tx *sqlx.Tx, t Table, withQ bool, r *VerifyReport) (TableVerify, error) {
	tv := TableVerify{Table: t.Name}
	exists, err := tableExists(ctx, tx, t.Name)
	if err != nil {
		return tv, err
	}
	var snap []struct {
		userChecksum
		Columns pq.StringArray `db:"columns"`
	}
	if err := tx.SelectContext(ctx, &snap, "SELECT user_id, row_count, checksum, columns FROM cloneiso_legacy_snapshot WHERE table_name = $1 ORDER BY user_id", t.Name); err != nil {
		return tv, err
	}
	var snapped bool
	if err := tx.GetContext(ctx, &snapped, "SELECT EXISTS (SELECT 1 FROM cloneiso_legacy_checkpoints WHERE step = 'snapshot' AND name = $1 AND done)", t.Name); err != nil {
		return tv, err
	}
	if !exists {
		if snapped && len(snap) > 0 {
			r.add(DiscrepancyMissingTable, t.Name, "", 0, "table was snapshotted but no longer exists")
		} else if !slices.Contains(DefaultTables(), t) && !snapped {
			r.add(DiscrepancyMissingTable, t.Name, "", 0, "table does not exist")
		}
		return tv, nil
	}
	cols, err := columnsOf(ctx, tx, t.Name)
	if err != nil {
		return tv, err
	}
	if !slices.Contains(cols, "tenant_id") || !slices.Contains(cols, "clone_id") {
		r.add(DiscrepancyNotAdopted, t.Name, "", 0, "no tenant_id/clone_id columns: run adopt and backfill")
		return tv, nil
	}
	if withQ {
		if err := tx.GetContext(ctx, &tv.Quarantined, "SELECT count(*) FROM cloneiso_legacy_quarantine WHERE table_name = $1", t.Name); err != nil {
			return tv, err
		}
	}
	// Before and after, per user.
	content := cols
	if snapped && len(snap) > 0 {
		content = snap[0].Columns
	} else if content, err = contentColumns(ctx, tx, t.Name); err != nil {
		return tv, err
	}
	var after []userChecksum
	if err := tx.SelectContext(ctx, &after, checksumSQL(t, content, withQ)); err != nil {
		return tv, err
	}
	if !snapped && len(after) > 0 {
		r.add(DiscrepancyNoSnapshot, t.Name, "", 0, "no snapshot of the data before the backfill: run backfill (it takes one first)")
	}
	before := make([]userChecksum, len(snap))
	for i, s := range snap {
		before[i] = s.userChecksum
	}
	compareChecksums(&tv, t.Name, before, after, snapped, r)
	if err := m.verifyRowClones(ctx, tx, t, &tv, r); err != nil {
		return tv, err
	}
	if t.ObjectKeyColumn != "" && slices.Contains(cols, t.ObjectKeyColumn) {
		if err := verifyObjectKeys(ctx, tx, t, r); err != nil {
			return tv, err
		}
	}
	return tv, nil
}

// compareChecksums compares each user's count and checksum before and after.
func compareChecksums(tv *TableVerify, table string, before, after []userChecksum, snapped bool, r *VerifyReport) {
	byUser := map[string]*UserVerify{}
	var order []string
	get := func(u string) *UserVerify {
		if v, ok := byUser[u]; ok {
			return v
		}
		v := &UserVerify{UserID: u}
		byUser[u] = v
		order = append(order, u)
		return v
	}
	for _, s := range before {
		v := get(s.UserID)
		v.RowsBefore, v.ChecksumBefore = s.Rows, s.Checksum
		tv.RowsBefore += s.Rows
	}
	for _, a := range after {
		v := get(a.UserID)
		v.RowsAfter, v.ChecksumAfter = a.Rows, a.Checksum
		tv.RowsAfter += a.Rows
	}
	slices.Sort(order)
	for _, u := range order {
		v := byUser[u]
		tv.Users = append(tv.Users, *v)
		if !snapped {
			continue
		}
		label := u
		if u == "" {
			label = "(no user)"
		}
		switch {
		case v.RowsBefore != v.RowsAfter:
			r.add(DiscrepancyCount, table, u, v.RowsAfter-v.RowsBefore, "%s: %d rows before, %d after", label, v.RowsBefore, v.RowsAfter)
		case v.ChecksumBefore != v.ChecksumAfter:
			r.add(DiscrepancyChecksum, table, u, v.RowsAfter, "%s: content checksum changed (%s before, %s after)", label, v.ChecksumBefore, v.ChecksumAfter)
		}
	}
}

// verifyRowClones reports the table's rows without a clone, and rows whose clone is not
// their user's (for an ID decided map: not the clone of the user it maps to).
func (m *Migrator) verifyRowClones(ctx context.Context, tx *sqlx.Tx, t Table, tv *TableVerify, r *VerifyReport) error {
	tq, uq := pq.QuoteIdentifier(t.Name), pq.QuoteIdentifier(t.userColumn())
	pk, _, err := primaryKey(ctx, tx, t.Name)
	if err != nil {
		return err
	}
	keyText := make([]string, len(pk))
	for i, c := range pk {
		keyText[i] = "_t." + pq.QuoteIdentifier(c.Name) + "::text"
	}
	key := "concat_ws(',', " + strings.Join(keyText, ", ") + ")"
	type group struct {
		UserID string         `db:"user_id"`
		N      int64          `db:"n"`
		Keys   pq.StringArray `db:"keys"`
	}
	var missing []group
	if err := tx.SelectContext(ctx, &missing, `SELECT coalesce(`+uq+`::text, '') AS user_id, count(*) AS n,
		(array_agg(`+key+` ORDER BY `+key+`))[1:5]::text[] AS keys
		FROM `+tq+` AS _t WHERE tenant_id IS NULL OR clone_id IS NULL GROUP BY 1 ORDER BY 1`); err != nil {
		return err
	}
	for _, x := range missing {
		tv.WithoutClone += x.N
		if x.UserID == "" {
			r.add(DiscrepancyWithoutUser, t.Name, "", x.N, "%d rows have no user and no clone (keys %s...): assign a user and backfill again, delete them, or decide without_user", x.N, strings.Join(x.Keys, " "))
		} else {
			r.add(DiscrepancyWithoutClone, t.Name, x.UserID, x.N, "%d rows of user %s have no clone (keys %s...): run backfill", x.N, x.UserID, strings.Join(x.Keys, " "))
		}
	}
	var wrong []group
	if err := tx.SelectContext(ctx, &wrong, `SELECT coalesce(_t.`+uq+`::text, '') AS user_id, count(*) AS n,
		(array_agg(`+key+` ORDER BY `+key+`))[1:5]::text[] AS keys
		FROM `+tq+` AS _t LEFT JOIN `+m.mapSQL()+` ON _d.user_id = _t.`+uq+`::text
		LEFT JOIN cloneiso_legacy_users _m ON _m.user_id = coalesce(_d.to_user, _t.`+uq+`::text)
		WHERE _t.tenant_id IS NOT NULL AND _t.clone_id IS NOT NULL
		  AND (_m.user_id IS NULL OR _m.to_tenant_id <> _t.tenant_id OR _m.to_clone_id <> _t.clone_id)
		GROUP BY 1 ORDER BY 1`); err != nil {
		return err
	}
	for _, x := range wrong {
		tv.WrongClone += x.N
		r.add(DiscrepancyWrongClone, t.Name, x.UserID, x.N, "%d rows are not in the clone of their user %q (keys %s...)", x.N, x.UserID, strings.Join(x.Keys, " "))
	}
	return nil
}

// verifyObjectKeys reports object key column values that still name a copied legacy
// object or name an object outside their row's clone, and, once the object migration
// has begun (a copy or a scope decision is recorded), values that name a legacy object
// that was neither copied nor declared out of scope.
func verifyObjectKeys(ctx context.Context, tx *sqlx.Tx, t Table, r *VerifyReport) error {
	if err := verifyUncopiedKeys(ctx, tx, t, r); err != nil {
		return err
	}
	tq := pq.QuoteIdentifier(t.Name)
	kc := "_t." + pq.QuoteIdentifier(t.ObjectKeyColumn)
	var stale, foreign int64
	if err := tx.QueryRowxContext(ctx, `SELECT
		(SELECT count(*) FROM `+tq+` _t JOIN cloneiso_legacy_objects _l ON _l.legacy_key = `+kc+` WHERE _l.new_key <> ''),
		(SELECT count(*) FROM `+tq+` _t WHERE `+kc+` LIKE 'tenants/%' AND _t.tenant_id IS NOT NULL AND _t.clone_id IS NOT NULL
			AND NOT starts_with(`+kc+`, 'tenants/' || _t.tenant_id || '/clones/' || _t.clone_id || '/'))`).Scan(&stale, &foreign); err != nil {
		return err
	}
	if stale > 0 {
		r.add(DiscrepancyObjectKey, t.Name, "", stale, "%d rows of %s.%s still name a legacy object that was copied: run objects rewrite-keys", stale, t.Name, t.ObjectKeyColumn)
	}
	if foreign > 0 {
		r.add(DiscrepancyObjectKey, t.Name, "", foreign, "%d rows of %s.%s name an object outside their own clone", foreign, t.Name, t.ObjectKeyColumn)
	}
	return nil
}

// verifyUncopiedKeys reports rows naming a legacy key (not in the clone layout) that
// the copy ledger does not know and no out-of-scope decision covers: an object no
// template maps, a refused one, or one missing from the bucket. Before the object
// migration has begun it reports nothing (every key is still legacy).
func verifyUncopiedKeys(ctx context.Context, tx *sqlx.Tx, t Table, r *VerifyReport) error {
	scoped, err := tableExists(ctx, tx, "cloneiso_legacy_object_scope")
	if err != nil {
		return err
	}
	kc := "_t." + pq.QuoteIdentifier(t.ObjectKeyColumn)
	begun := "EXISTS (SELECT 1 FROM cloneiso_legacy_objects)"
	outOfScope := "false"
	if scoped {
		begun += " OR EXISTS (SELECT 1 FROM cloneiso_legacy_object_scope)"
		outOfScope = `EXISTS (SELECT 1 FROM cloneiso_legacy_object_scope _s
			WHERE _s.entry = ` + kc + ` OR right(_s.entry, 1) = '/' AND starts_with(` + kc + `, _s.entry))`
	}
	var n int64
	var keys pq.StringArray
	if err := tx.QueryRowxContext(ctx, `SELECT count(*), coalesce((array_agg(`+kc+` ORDER BY `+kc+`))[1:5], '{}')::text[]
		FROM `+pq.QuoteIdentifier(t.Name)+` _t
		WHERE (`+begun+`) AND `+kc+` <> '' AND NOT starts_with(`+kc+`, 'tenants/')
		  AND NOT EXISTS (SELECT 1 FROM cloneiso_legacy_objects _l WHERE _l.legacy_key = `+kc+`)
		  AND NOT (`+outOfScope+`)`).Scan(&n, &keys); err != nil {
		return err
	}
	if n > 0 {
		r.add(DiscrepancyObjectKey, t.Name, "", n, "%d rows of %s.%s name a legacy object that was neither copied nor declared out of scope (%s...): "+
			"objects plan/verify say why (no template maps it, refused, missing from the bucket)", n, t.Name, t.ObjectKeyColumn, strings.Join(keys, " "))
	}
	return nil
}

// verifyParents reports rows whose parent row (a foreign key between configured tables
// not yet led by the clone) is in another clone.
func (m *Migrator) verifyParents(ctx context.Context, tx *sqlx.Tx, r *VerifyReport) error {
	names := make([]string, len(m.cfg.Tables))
	for i, t := range m.cfg.Tables {
		names[i] = t.Name
	}
	legacySchema, err := m.legacySchema(ctx, tx)
	if err != nil {
		return err
	}
	fks, err := foreignKeys(ctx, tx, legacySchema, names)
	if err != nil {
		return err
	}
	for _, fk := range fks {
		if fk.leadsWithClone() || !slices.Contains(names, fk.Child) || !slices.Contains(names, fk.Parent) {
			continue
		}
		on := make([]string, len(fk.Cols))
		for i := range fk.Cols {
			on[i] = "_c." + pq.QuoteIdentifier(fk.Cols[i]) + " = _p." + pq.QuoteIdentifier(fk.RefCols[i])
		}
		var n int64
		if err := tx.GetContext(ctx, &n, `SELECT count(*) FROM `+pq.QuoteIdentifier(fk.Child)+` _c JOIN `+pq.QuoteIdentifier(fk.Parent)+` _p ON `+
			strings.Join(on, " AND ")+` WHERE (_c.tenant_id, _c.clone_id) IS DISTINCT FROM (_p.tenant_id, _p.clone_id)`); err != nil {
			return err
		}
		if n > 0 {
			r.add(DiscrepancyParent, fk.Child, "", n, "%d rows of %s are not in the clone of their parent row in %s (foreign key %s): see \"A child row whose user differs from its parent's\" in MIGRATION_GUIDE.md", n, fk.Child, fk.Parent, fk.Name)
		}
	}
	return nil
}

// verifyDecisions reports legacy user IDs without a needed decision, and rows set aside
// whose ID is no longer decided quarantine or drop.
func (m *Migrator) verifyDecisions(ctx context.Context, tx *sqlx.Tx, withQ bool, r *VerifyReport) error {
	issues, err := m.userIssues(ctx, tx)
	if err != nil {
		return err
	}
	for _, is := range issues {
		if is.Decision == nil {
			r.add(DiscrepancyUndecided, "", is.UserID, is.Rows, "%s: record a decision in user_decisions (map, quarantine, drop or keep), then backfill", is)
		}
	}
	if !withQ {
		return nil
	}
	ids, _ := m.setAside()
	var stray []struct {
		Table  string `db:"table_name"`
		UserID string `db:"user_id"`
		N      int64  `db:"n"`
	}
	if err := tx.SelectContext(ctx, &stray, `SELECT table_name, user_id, count(*) AS n FROM cloneiso_legacy_quarantine
		WHERE NOT (user_id = ANY ($1::text[])) GROUP BY 1, 2 ORDER BY 1, 2`, pq.StringArray(ids)); err != nil {
		return err
	}
	for _, s := range stray {
		r.add(DiscrepancyQuarantine, s.Table, s.UserID, s.N, "%d rows of %q are set aside but the ID is no longer decided quarantine or drop: restore them (RestoreQuarantined) or record the decision again", s.N, s.UserID)
	}
	return nil
}

// verifyUsers checks that every legacy user has exactly the clone recorded for it.
func (m *Migrator) verifyUsers(ctx context.Context, tx *sqlx.Tx, r *VerifyReport) error {
	uq, err := m.usersSQL(ctx, tx)
	if err != nil {
		return err
	}
	var unprovisioned []string
	if err := tx.SelectContext(ctx, &unprovisioned, "SELECT user_id FROM ("+uq+") AS _u WHERE NOT EXISTS (SELECT 1 FROM cloneiso_legacy_users _m WHERE _m.user_id = _u.user_id) ORDER BY 1"); err != nil {
		return err
	}
	for _, u := range unprovisioned {
		r.add(DiscrepancyUnprovisioned, "", u, 0, "user %s has no clone: run backfill", u)
	}
	var bad []struct {
		UserID  string         `db:"user_id"`
		Subject string         `db:"subject"`
		Clone   sql.NullString `db:"clone_user"`
		Signup  sql.NullString `db:"signup"`
		Exists  bool           `db:"clone_exists"`
	}
	if err := tx.SelectContext(ctx, &bad, `SELECT _m.user_id, _m.subject, _c.user_id AS clone_user, _t.signup_subject AS signup, _c.id IS NOT NULL AS clone_exists
		FROM cloneiso_legacy_users _m
		LEFT JOIN clones _c ON _c.tenant_id = _m.to_tenant_id AND _c.id = _m.to_clone_id
		LEFT JOIN tenants _t ON _t.id = _m.to_tenant_id
		WHERE _c.id IS NULL OR _c.user_id IS DISTINCT FROM _m.user_id OR _t.signup_subject IS DISTINCT FROM _m.subject
		ORDER BY 1`); err != nil {
		return err
	}
	for _, b := range bad {
		switch {
		case !b.Exists:
			r.add(DiscrepancyMapping, "clones", b.UserID, 0, "the clone recorded for user %s does not exist", b.UserID)
		default:
			r.add(DiscrepancyMapping, "clones", b.UserID, 0, "user %s: clone records user %q and tenant subject %q; expected %q and %q",
				b.UserID, b.Clone.String, b.Signup.String, b.UserID, b.Subject)
		}
	}
	var dup int64
	if err := tx.GetContext(ctx, &dup, "SELECT count(*) FROM (SELECT user_id FROM clones WHERE user_id IS NOT NULL GROUP BY user_id HAVING count(*) > 1) _d"); err != nil {
		return err
	}
	if dup > 0 {
		r.add(DiscrepancyMapping, "clones", "", dup, "%d legacy users have more than one clone", dup)
	}
	return nil
}

// RetakeSnapshot forgets the recorded "before" of every configured table and records it
// again from the current data. Use it only after a deliberate change to the legacy data
// during the migration (typically deleting or re-assigning rows without a user, which
// Verify otherwise reports as a change), and only after Verify reported nothing else:
// the new snapshot cannot show what happened before it.
func (m *Migrator) RetakeSnapshot(ctx context.Context) error {
	const op = "legacy.RetakeSnapshot"
	err := m.inTx(ctx, op, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM cloneiso_legacy_snapshot"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM cloneiso_legacy_checkpoints WHERE step = 'snapshot'")
		return err
	})
	if err != nil {
		return err
	}
	return m.Snapshot(ctx)
}
