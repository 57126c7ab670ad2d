package legacy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// ErrUndecided is returned (wrapped, with the list) by [Migrator.Backfill] while a legacy
// user ID that [Migrator.Plan] lists in UserIssues has no decision in
// Config.UserDecisions. It is of kind clone.ErrInvalidInput: the configuration must
// change before the backfill can run.
var ErrUndecided error = &clone.Error{Kind: clone.ErrInvalidInput, Op: "legacy.Backfill", Msg: "legacy user IDs need a decision"}

// Problems of a legacy user ID ([UserIssue].Problem).
const (
	// IssueUnknown: the ID is in the rows but not among the users of
	// Config.UsersQuery (typically a hard-deleted user).
	IssueUnknown = "unknown"
	// IssueNonCanonical: the ID differs only in case or surrounding spaces from a user
	// of Config.UsersQuery (Canonical), or, without UsersQuery, from another ID in the
	// rows.
	IssueNonCanonical = "non-canonical"
)

// UserIssue is a legacy user ID that must not be provisioned as it is without the
// operator's decision (Config.UserDecisions).
type UserIssue struct {
	UserID string
	// Problem is [IssueUnknown] or [IssueNonCanonical].
	Problem string
	// Canonical lists the known spellings of the same ID (non-canonical only).
	Canonical []string
	// Rows counts the ID's rows over the configured tables.
	Rows int64
	// Elsewhere counts, per table, the ID's rows in tables that are not configured but
	// have a column named like a configured user column (a sessions table with a
	// user_id). The migration neither maps nor sets them aside: configure the table
	// (its rows then follow the decision) or deal with them yourself. Tables whose
	// user column has another name are not searched.
	Elsewhere map[string]int64
	// Decision is the recorded decision, nil if none.
	Decision *UserDecision
}

// String describes the issue in one line.
func (u UserIssue) String() string {
	s := fmt.Sprintf("%q: %s, %d rows", u.UserID, u.Problem, u.Rows)
	if len(u.Canonical) > 0 {
		s += fmt.Sprintf(" (known as %q)", strings.Join(u.Canonical, `", "`))
	}
	if len(u.Elsewhere) > 0 {
		var n int64
		var parts []string
		for _, t := range slices.Sorted(maps.Keys(u.Elsewhere)) {
			n += u.Elsewhere[t]
			parts = append(parts, fmt.Sprintf("%s: %d", t, u.Elsewhere[t]))
		}
		s += fmt.Sprintf(", and %d more rows in tables not migrated (%s), which no decision moves", n, strings.Join(parts, ", "))
	}
	if u.Decision == nil {
		return s + ": undecided"
	}
	s += ": decided " + u.Decision.Action
	if u.Decision.Action == DecisionMap {
		s += " to " + fmt.Sprintf("%q", u.Decision.To)
	}
	return s
}

func foldID(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// userIssues finds the legacy user IDs that need a decision, and checks the decisions
// that map IDs: their target must be a known user.
func (m *Migrator) userIssues(ctx context.Context, q querier) ([]UserIssue, error) {
	const op = "legacy.Plan"
	var parts []string
	for _, t := range m.cfg.Tables {
		ok, err := tableExists(ctx, q, t.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			u := pq.QuoteIdentifier(t.userColumn())
			parts = append(parts, "SELECT "+u+"::text AS user_id, count(*) AS n FROM "+pq.QuoteIdentifier(t.Name)+
				" WHERE "+u+" IS NOT NULL AND "+u+"::text <> '' GROUP BY 1")
		}
	}
	rowIDs := map[string]int64{}
	if len(parts) > 0 {
		var rows []struct {
			UserID string `db:"user_id"`
			N      int64  `db:"n"`
		}
		if err := sqlx.SelectContext(ctx, q, &rows, "SELECT user_id, sum(n)::bigint AS n FROM ("+strings.Join(parts, " UNION ALL ")+") AS _r GROUP BY 1"); err != nil {
			return nil, err
		}
		for _, r := range rows {
			rowIDs[r.UserID] = r.N
		}
	}
	known := map[string]bool{}
	if m.cfg.UsersQuery != "" {
		var ids []string
		if err := sqlx.SelectContext(ctx, q, &ids, "SELECT DISTINCT _k::text FROM ("+m.cfg.UsersQuery+") AS _q(_k) WHERE _k IS NOT NULL"); err != nil {
			return nil, errs.Wrap(errs.InvalidInput, op, err, "users_query %q (it must return one column of user IDs)", m.cfg.UsersQuery)
		}
		for _, id := range ids {
			known[id] = true
		}
	}
	// Spellings by folded form: the known IDs, or without UsersQuery the IDs in rows.
	spellings := map[string][]string{}
	if m.cfg.UsersQuery != "" {
		for id := range known {
			spellings[foldID(id)] = append(spellings[foldID(id)], id)
		}
	} else {
		for id := range rowIDs {
			spellings[foldID(id)] = append(spellings[foldID(id)], id)
		}
	}
	var out []UserIssue
	for id, n := range rowIDs {
		if known[id] {
			continue
		}
		is := UserIssue{UserID: id, Rows: n}
		for _, s := range spellings[foldID(id)] {
			if s != id {
				is.Canonical = append(is.Canonical, s)
			}
		}
		sort.Strings(is.Canonical)
		switch {
		case len(is.Canonical) > 0:
			is.Problem = IssueNonCanonical
		case m.cfg.UsersQuery != "":
			is.Problem = IssueUnknown
		default:
			continue
		}
		if d, ok := m.cfg.UserDecisions[id]; ok {
			is.Decision = &d
		}
		out = append(out, is)
	}
	slices.SortFunc(out, func(a, b UserIssue) int { return strings.Compare(a.UserID, b.UserID) })
	if err := m.countElsewhere(ctx, q, out); err != nil {
		return nil, err
	}
	for id, d := range m.cfg.UserDecisions {
		if d.Action != DecisionMap {
			continue
		}
		if m.cfg.UsersQuery != "" && !known[d.To] {
			return out, errs.New(errs.InvalidInput, op, "user_decisions[%q]: maps to %q, which users_query does not return", id, d.To)
		}
		if m.cfg.UsersQuery == "" && rowIDs[d.To] == 0 {
			return out, errs.New(errs.InvalidInput, op, "user_decisions[%q]: maps to %q, which owns no row (set users_query to map to a user without rows)", id, d.To)
		}
	}
	return out, nil
}

// countElsewhere fills the issues' Elsewhere: their rows in the tables of the legacy
// schema that are not configured (nor the SDK's control or bookkeeping tables) and have
// a column named like a configured user column.
func (m *Migrator) countElsewhere(ctx context.Context, q querier, issues []UserIssue) error {
	if len(issues) == 0 {
		return nil
	}
	var configured, columns []string
	for _, t := range m.cfg.Tables {
		configured = append(configured, t.Name)
		if !slices.Contains(columns, t.userColumn()) {
			columns = append(columns, t.userColumn())
		}
	}
	schema, err := m.legacySchema(ctx, q)
	if err != nil {
		return err
	}
	if sdk, err := m.sdkSchema(ctx, q); err != nil {
		return err
	} else if sdk == schema {
		configured = append(configured, controlTables...)
	}
	var cols []struct {
		Table  string `db:"table_name"`
		Column string `db:"column_name"`
	}
	if err := sqlx.SelectContext(ctx, q, &cols, `SELECT c.relname AS table_name, a.attname AS column_name
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
		WHERE n.nspname = $3 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
		  AND a.attname = ANY($1) AND c.relname <> ALL($2) AND c.relname NOT LIKE 'cloneiso\_%'
		ORDER BY 1, 2`, pq.StringArray(columns), pq.StringArray(configured), schema); err != nil {
		return err
	}
	ids := make([]string, len(issues))
	index := make(map[string]int, len(issues))
	for i, is := range issues {
		ids[i], index[is.UserID] = is.UserID, i
	}
	for _, c := range cols {
		var rows []struct {
			UserID string `db:"user_id"`
			N      int64  `db:"n"`
		}
		col := pq.QuoteIdentifier(c.Column)
		if err := sqlx.SelectContext(ctx, q, &rows, "SELECT "+col+"::text AS user_id, count(*) AS n FROM "+pq.QuoteIdentifier(schema)+"."+pq.QuoteIdentifier(c.Table)+
			" WHERE "+col+"::text = ANY($1) GROUP BY 1", pq.StringArray(ids)); err != nil {
			return err
		}
		for _, r := range rows {
			is := &issues[index[r.UserID]]
			if is.Elsewhere == nil {
				is.Elsewhere = map[string]int64{}
			}
			is.Elsewhere[c.Table] += r.N
		}
	}
	return nil
}

// undecidedError lists the issues without a decision, or returns nil.
func undecidedError(op string, issues []UserIssue) error {
	var lines []string
	for _, is := range issues {
		if is.Decision == nil {
			lines = append(lines, "  "+is.String())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return errs.Wrap(errs.InvalidInput, op, ErrUndecided,
		"%d legacy user IDs need a decision before the backfill (nothing was changed):\n%s\n"+
			`record one per ID in the configuration's "user_decisions": {"ID": {"action": "map", "to": "KNOWN_ID"}} `+
			`(or "quarantine", "drop", "keep"); see MIGRATION_GUIDE.md`,
		len(lines), strings.Join(lines, "\n"))
}

// excludedUsers returns the IDs that get no clone of their own (mapped or set aside).
func (m *Migrator) excludedUsers() []string {
	var out []string
	for id, d := range m.cfg.UserDecisions {
		if d.Action != DecisionKeep {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// textArray renders a text[] literal of ss for SQL built by this package.
func textArray(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = pq.QuoteLiteral(s)
	}
	return "ARRAY[" + strings.Join(q, ", ") + "]::text[]"
}

// mapSQL is a relation _d(user_id, to_user) of the IDs decided map, for a LEFT JOIN:
// a row's effective user is coalesce(_d.to_user, its user).
func (m *Migrator) mapSQL() string {
	var vals []string
	for id, d := range m.cfg.UserDecisions {
		if d.Action == DecisionMap {
			vals = append(vals, "("+pq.QuoteLiteral(id)+", "+pq.QuoteLiteral(d.To)+")")
		}
	}
	if len(vals) == 0 {
		return "(SELECT NULL::text AS user_id, NULL::text AS to_user WHERE false) AS _d"
	}
	slices.Sort(vals)
	return "(VALUES " + strings.Join(vals, ", ") + ") AS _d(user_id, to_user)"
}

// quarantineDDL creates the table of the rows set aside; Adopt creates it too.
const quarantineDDL = `CREATE TABLE IF NOT EXISTS cloneiso_legacy_quarantine (
    table_name     text        NOT NULL,
    user_id        text        NOT NULL, -- '' for rows without a user
    action         text        NOT NULL, -- quarantine or drop
    row            text        NOT NULL, -- the row's text form (record output, under stableSettings), cast back to its table's type to restore
    quarantined_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cloneiso_legacy_quarantine_table ON cloneiso_legacy_quarantine (table_name, user_id);`

// setAside returns the IDs whose rows go to the quarantine (” for rows without a
// user), and each one's action.
func (m *Migrator) setAside() (ids, actions []string) {
	for id, d := range m.cfg.UserDecisions {
		if d.setAside() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		actions = append(actions, m.cfg.UserDecisions[id].Action)
	}
	if m.cfg.WithoutUser != "" {
		ids = append(ids, "")
		actions = append(actions, m.cfg.WithoutUser)
	}
	return ids, actions
}

// quarantine moves the rows of the IDs decided quarantine or drop (and rows without a
// user, if Config.WithoutUser says so) from their tables to cloneiso_legacy_quarantine,
// children before parents, in one transaction. It refuses, changing nothing, when
// deleting them would delete other rows too (ON DELETE CASCADE from a row of another
// user) or a foreign key forbids it. It returns the rows moved per table.
func (m *Migrator) quarantine(ctx context.Context) (map[string]int64, error) {
	const op = "legacy.Backfill"
	ids, actions := m.setAside()
	moved := map[string]int64{}
	if len(ids) == 0 {
		return moved, nil
	}
	err := m.inTx(ctx, op, func(tx *sqlx.Tx) error {
		// The text form of each row must read back the same in any session.
		if _, err := tx.ExecContext(ctx, stableSettings); err != nil {
			return err
		}
		var present []Table
		for _, t := range m.cfg.Tables {
			if ok, err := tableExists(ctx, tx, t.Name); err != nil {
				return err
			} else if ok {
				present = append(present, t)
			}
		}
		total := func() (int64, error) {
			var n int64
			for _, t := range present {
				var c int64
				if err := tx.GetContext(ctx, &c, "SELECT count(*) FROM "+pq.QuoteIdentifier(t.Name)); err != nil {
					return 0, err
				}
				n += c
			}
			return n, nil
		}
		before, err := total()
		if err != nil {
			return err
		}
		var sum int64
		for _, t := range slices.Backward(present) {
			u := "coalesce(_q." + pq.QuoteIdentifier(t.userColumn()) + "::text, '')"
			res, err := tx.ExecContext(ctx, `WITH _q AS (
				DELETE FROM `+pq.QuoteIdentifier(t.Name)+` AS _t WHERE coalesce(_t.`+pq.QuoteIdentifier(t.userColumn())+`::text, '') = ANY($2::text[]) RETURNING _t.*)
				INSERT INTO cloneiso_legacy_quarantine (table_name, user_id, action, row)
				SELECT $1, `+u+`, _a.action, _q::text FROM _q
				JOIN unnest($2::text[], $3::text[]) AS _a(user_id, action) ON _a.user_id = `+u,
				t.Name, pq.StringArray(ids), pq.StringArray(actions))
			if err != nil {
				var pe *pq.Error
				if errors.As(err, &pe) && pe.Code == "23503" {
					return errs.Wrap(errs.Conflict, op, err, "cannot set aside the rows of %s decided quarantine or drop: a row of another user refers to one of them (%s); decide about that row too, or assign it (see MIGRATION_GUIDE.md)", t.Name, pe.Constraint)
				}
				return fmt.Errorf("set aside rows of %s: %w", t.Name, err)
			}
			n, _ := res.RowsAffected()
			moved[t.Name] += n
			sum += n
		}
		after, err := total()
		if err != nil {
			return err
		}
		if before-after != sum {
			return errs.New(errs.Conflict, op, "setting aside the rows decided quarantine or drop would also delete %d rows of other users through ON DELETE CASCADE (a row of another user under one of theirs): nothing was changed; decide about those rows too, or assign them (see MIGRATION_GUIDE.md)", before-after-sum)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return moved, nil
}

// RestoreQuarantined puts the rows of the given legacy user IDs ("" for rows without a
// user) back from cloneiso_legacy_quarantine into their tables, parents before children,
// in one transaction, and returns the rows restored per table. Remove the IDs'
// decisions from the configuration first, else the next backfill sets them aside again.
// It works until [Migrator.Enforce]; afterwards the restored rows would need a clone.
func (m *Migrator) RestoreQuarantined(ctx context.Context, userIDs []string) (map[string]int64, error) {
	const op = "legacy.RestoreQuarantined"
	restored := map[string]int64{}
	err := m.inTx(ctx, op, func(tx *sqlx.Tx) error {
		if v, err := schemaVersion(ctx, tx); err != nil {
			return err
		} else if v >= 1 {
			return errs.New(errs.Conflict, op, "the schema is enforced: restore the rows by hand, with their clone")
		}
		if ok, err := tableExists(ctx, tx, "cloneiso_legacy_quarantine"); err != nil || !ok {
			return err
		}
		if _, err := tx.ExecContext(ctx, stableSettings); err != nil {
			return err
		}
		for _, t := range m.cfg.Tables {
			if ok, err := tableExists(ctx, tx, t.Name); err != nil {
				return err
			} else if !ok {
				continue
			}
			tq := pq.QuoteIdentifier(t.Name)
			res, err := tx.ExecContext(ctx, `INSERT INTO `+tq+` SELECT (row::`+tq+`).*
				FROM cloneiso_legacy_quarantine WHERE table_name = $1 AND user_id = ANY($2::text[])`, t.Name, pq.StringArray(userIDs))
			if err != nil {
				return fmt.Errorf("restore rows of %s: %w", t.Name, err)
			}
			n, _ := res.RowsAffected()
			restored[t.Name] = n
			if _, err := tx.ExecContext(ctx, "DELETE FROM cloneiso_legacy_quarantine WHERE table_name = $1 AND user_id = ANY($2::text[])", t.Name, pq.StringArray(userIDs)); err != nil {
				return err
			}
		}
		return nil
	})
	return restored, err
}
