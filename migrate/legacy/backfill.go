package legacy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// usersSQL returns a query of every distinct legacy user ID (text, never NULL or empty)
// found in the configured tables and Config.UsersQuery, but those decided map,
// quarantine or drop (Config.UserDecisions). Tables that do not exist are skipped.
func (m *Migrator) usersSQL(ctx context.Context, q querier) (string, error) {
	var parts []string
	for _, t := range m.cfg.Tables {
		ok, err := tableExists(ctx, q, t.Name)
		if err != nil {
			return "", err
		}
		if ok {
			parts = append(parts, "SELECT "+pq.QuoteIdentifier(t.userColumn())+"::text AS user_id FROM "+pq.QuoteIdentifier(t.Name))
		}
	}
	if m.cfg.UsersQuery != "" {
		parts = append(parts, "SELECT * FROM ("+m.cfg.UsersQuery+") AS users_query")
	}
	if len(parts) == 0 {
		return "SELECT NULL::text AS user_id WHERE false", nil
	}
	all := "SELECT DISTINCT user_id FROM (" + strings.Join(parts, " UNION ") + ") AS u WHERE user_id IS NOT NULL AND user_id <> ''"
	if ex := m.excludedUsers(); len(ex) > 0 {
		all += " AND NOT (user_id = ANY (" + textArray(ex) + "))"
	}
	return all, nil
}

// ProvisionReport tells what [Migrator.Provision] did.
type ProvisionReport struct {
	Users       int // legacy users found
	Provisioned int // users whose tenant and clone this call created or recorded
	// Failed are users that cannot get a clone (an invalid subject, a suspended
	// tenant, two users mapped to one subject): reported, their rows left without a
	// clone, the other users provisioned.
	Failed []Problem
}

// Provision gives every legacy user its tenant and clone, exactly as a first sign-in
// would (tenant.Store.ProvisionSolo, for the subject Config.SubjectTemplate names),
// records the legacy user on the clone (clones.user_id) and the mapping in
// cloneiso_legacy_users. Users come from the configured tables' user columns and
// Config.UsersQuery, so users without rows get a clone too. It is idempotent and
// resumable: ProvisionSolo returns the clone it created before an interruption.
func (m *Migrator) Provision(ctx context.Context) (*ProvisionReport, error) {
	const op = "legacy.Provision"
	if err := m.checkPath(ctx, op); err != nil {
		return nil, err
	}
	if ok, err := tableExists(ctx, m.db, "cloneiso_legacy_users"); err != nil {
		return nil, classify(op, err, "catalog")
	} else if !ok {
		return nil, errs.New(errs.Conflict, op, "the database was not adopted: run adopt (cloneiso-migrate up) first")
	}
	uq, err := m.usersSQL(ctx, m.db)
	if err != nil {
		return nil, classify(op, err, "list users")
	}
	var total int
	if err := m.db.GetContext(ctx, &total, "SELECT count(*) FROM ("+uq+") AS all_users"); err != nil {
		return nil, classify(op, err, "count users")
	}
	var todo []string
	if err := m.db.SelectContext(ctx, &todo, "SELECT user_id FROM ("+uq+") AS all_users WHERE NOT EXISTS "+
		"(SELECT 1 FROM cloneiso_legacy_users m WHERE m.user_id = all_users.user_id) ORDER BY user_id"); err != nil {
		return nil, classify(op, err, "list users to provision")
	}
	rep := &ProvisionReport{Users: total}
	subjectOf := m.cfg.Subject
	if m.cfg.SubjectQuery != "" && !m.cfg.customSubject {
		subjects := map[string]string{}
		var rows []struct {
			UserID  string         `db:"user_id"`
			Subject sql.NullString `db:"subject"`
		}
		if err := m.db.SelectContext(ctx, &rows, "SELECT _s.u::text AS user_id, _s.s::text AS subject FROM ("+m.cfg.SubjectQuery+") AS _s(u, s) WHERE _s.u IS NOT NULL"); err != nil {
			return nil, errs.Wrap(errs.InvalidInput, op, err, "subject_query %q (it must return two columns: user ID, subject)", m.cfg.SubjectQuery)
		}
		for _, r := range rows {
			if r.Subject.Valid && r.Subject.String != "" {
				subjects[r.UserID] = r.Subject.String
			}
		}
		subjectOf = func(u string) (string, error) {
			s, ok := subjects[u]
			if !ok {
				return "", errNoSubject
			}
			return s, nil
		}
	}
	for i, u := range todo {
		if err := m.cfg.at(ctx, "provision", i); err != nil {
			return rep, err
		}
		subject, err := subjectOf(u)
		if errors.Is(err, errNoSubject) {
			rep.Failed = append(rep.Failed, Problem{UserID: u, Reason: "subject_query gives this user no subject"})
			continue
		}
		if err != nil {
			return rep, errs.Wrap(errs.InvalidInput, op, err, "subject of user %q", u)
		}
		cc, _, err := m.store.ProvisionSolo(ctx, subject)
		if userProblem(err) {
			rep.Failed = append(rep.Failed, Problem{Key: subject, UserID: u, Reason: err.Error()})
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("provision user %q (subject %q): %w", u, subject, err)
		}
		if err := m.cfg.at(ctx, "provision-recorded", i); err != nil {
			return rep, err
		}
		if err := m.recordUser(ctx, u, subject, cc); userProblem(err) {
			rep.Failed = append(rep.Failed, Problem{Key: subject, UserID: u, Reason: err.Error()})
			continue
		} else if err != nil {
			return rep, err
		}
		rep.Provisioned++
		m.cfg.Progress(Progress{Step: "provision", Table: u, Done: int64(total - len(todo) + i + 1), Total: int64(total)})
	}
	m.cfg.Logger.InfoContext(ctx, "legacy: provisioned", "users", total, "new", rep.Provisioned, "failed", len(rep.Failed))
	return rep, nil
}

var errNoSubject = errors.New("no subject")

// userProblem reports whether err concerns one user only (so the others go on).
func userProblem(err error) bool {
	switch errs.KindOf(err) {
	case errs.InvalidInput, errs.Suspended, errs.Conflict:
		return err != nil
	}
	return false
}

func (m *Migrator) recordUser(ctx context.Context, user, subject string, cc clone.CloneContext) error {
	const op = "legacy.Provision"
	tx, err := m.db.BeginTxx(ctx, nil)
	if err != nil {
		return classify(op, err, "begin")
	}
	defer tx.Rollback()
	var prev sql.NullString
	err = tx.QueryRowxContext(ctx, "SELECT user_id FROM clones WHERE tenant_id = $1 AND id = $2 FOR UPDATE", cc.TenantID(), cc.CloneID()).Scan(&prev)
	if err != nil {
		return classify(op, err, "read clone of user %q", user)
	}
	if prev.Valid && prev.String != user {
		return errs.New(errs.Conflict, op, "users %q and %q map to the same subject %q: the subject template must give each user its own subject", prev.String, user, subject)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE clones SET user_id = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2 AND user_id IS NULL",
		cc.TenantID(), cc.CloneID(), user); err != nil {
		return classify(op, err, "record user on clone")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_users (user_id, subject, to_tenant_id, to_clone_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id) DO NOTHING`, user, subject, cc.TenantID(), cc.CloneID()); err != nil {
		return classify(op, err, "record user mapping")
	}
	if err := tx.Commit(); err != nil {
		return classify(op, err, "commit")
	}
	return nil
}

// UserClone is the clone a legacy user was given.
type UserClone struct {
	UserID   string    `db:"user_id"`
	Subject  string    `db:"subject"`
	TenantID uuid.UUID `db:"tenant_id"`
	CloneID  uuid.UUID `db:"clone_id"`
}

// Context returns the clone context of the user's clone, acting as its owner.
func (u UserClone) Context() (clone.CloneContext, error) {
	return clone.New(u.TenantID, u.CloneID, clone.Principal{Subject: u.Subject, Roles: []string{"owner"}})
}

// Users returns every provisioned legacy user and its clone, ordered by user ID.
func (m *Migrator) Users(ctx context.Context) ([]UserClone, error) {
	var out []UserClone
	if err := m.db.SelectContext(ctx, &out, "SELECT user_id, subject, to_tenant_id AS tenant_id, to_clone_id AS clone_id FROM cloneiso_legacy_users ORDER BY user_id"); err != nil {
		return nil, classify("legacy.Users", err, "read users (was the database adopted?)")
	}
	return out, nil
}

// TableBackfill is what [Migrator.Backfill] did to one table.
type TableBackfill struct {
	Table       string
	Batches     int64 // batches committed by this call
	Scanned     int64 // rows read by this call
	Updated     int64 // rows given their clone by this call
	WithoutUser int64 // rows seen by this call that have no user (left alone, reported)
	Unmapped    int64 // rows seen by this call whose user has no clone (provision, then backfill with Restart)
	Skipped     bool  // the table was already complete (checkpoint)
	Missing     bool  // the table does not exist (an SDK table the legacy database lacks)
}

// BackfillReport tells what [Migrator.Backfill] did.
type BackfillReport struct {
	Provision *ProvisionReport
	// Quarantined counts, per table, the rows this call set aside in
	// cloneiso_legacy_quarantine (Config.UserDecisions, Config.WithoutUser).
	Quarantined map[string]int64
	Tables      []TableBackfill
}

// Updated is the number of rows the call changed.
func (r *BackfillReport) Updated() int64 {
	var n int64
	for _, t := range r.Tables {
		n += t.Updated
	}
	return n
}

// BackfillOptions control [Migrator.Backfill]; nil means the defaults.
type BackfillOptions struct {
	// Restart forgets the checkpoints and scans every table again (rows that already
	// have their clone are not changed). Use it after rows were added or users fixed.
	Restart bool
}

// Backfill sets tenant_id and clone_id on every row of the configured tables from its
// user's clone (for an ID decided map, the clone of the user it maps to). It refuses,
// with an error wrapping [ErrUndecided] and changing nothing, while a legacy user ID
// that [Migrator.Plan] lists in UserIssues has no decision. It first runs
// [Migrator.Provision] and [Migrator.Snapshot], then sets aside the rows decided
// quarantine or drop (children before parents, in one transaction that refuses if
// it would delete any other row); then, table
// after table, it pages through the rows in primary key order (keyset pagination,
// Config.BatchSize rows a page) and updates each page in one transaction that also
// advances the table's checkpoint. Only rows without a clone are changed: a second run
// changes nothing. Interrupted at any point (cancelled context, killed process, lost
// connection), it resumes after the last committed page. Rows without a user are left
// alone and counted.
func (m *Migrator) Backfill(ctx context.Context, opts *BackfillOptions) (*BackfillReport, error) {
	const op = "legacy.Backfill"
	if err := m.checkPath(ctx, op); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &BackfillOptions{}
	}
	rep := &BackfillReport{}
	release, err := m.exclusive(ctx, lockBackfill, "Backfill")
	if err != nil {
		return rep, err
	}
	defer release()
	if ok, err := tableExists(ctx, m.db, "cloneiso_legacy_users"); err != nil {
		return rep, classify(op, err, "catalog")
	} else if !ok {
		return rep, errs.New(errs.Conflict, op, "the database was not adopted: run adopt (cloneiso-migrate up) first")
	}
	issues, err := m.userIssues(ctx, m.db)
	if err != nil {
		return rep, classify(op, err, "user IDs")
	}
	if err := undecidedError(op, issues); err != nil {
		return rep, err
	}
	if _, err := m.db.ExecContext(ctx, quarantineDDL); err != nil {
		return rep, classify(op, err, "quarantine table")
	}
	if rep.Provision, err = m.Provision(ctx); err != nil {
		return rep, err
	}
	if err := m.Snapshot(ctx); err != nil {
		return rep, err
	}
	if rep.Quarantined, err = m.quarantine(ctx); err != nil {
		return rep, err
	}
	if opts.Restart {
		if _, err := m.db.ExecContext(ctx, "DELETE FROM cloneiso_legacy_checkpoints WHERE step = 'backfill'"); err != nil {
			return rep, classify(op, err, "reset checkpoints")
		}
	}
	for ti, t := range m.cfg.Tables {
		if err := m.cfg.at(ctx, "table", ti); err != nil {
			return rep, err
		}
		tb, err := m.backfillTable(ctx, t)
		rep.Tables = append(rep.Tables, tb)
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func (m *Migrator) backfillTable(ctx context.Context, t Table) (TableBackfill, error) {
	const op = "legacy.Backfill"
	tb := TableBackfill{Table: t.Name}
	if ok, err := tableExists(ctx, m.db, t.Name); err != nil {
		return tb, classify(op, err, "%s", t.Name)
	} else if !ok {
		tb.Missing = true
		return tb, nil
	}
	var cp struct {
		LastKey pq.StringArray `db:"last_key"`
		Done    bool           `db:"done"`
	}
	err := m.db.GetContext(ctx, &cp, "SELECT last_key, done FROM cloneiso_legacy_checkpoints WHERE step = 'backfill' AND name = $1", t.Name)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return tb, classify(op, err, "read checkpoint of %s", t.Name)
	}
	if cp.Done {
		tb.Skipped = true
		return tb, nil
	}
	pk, _, err := primaryKey(ctx, m.db, t.Name)
	if err != nil {
		return tb, err
	}
	var total int64
	if err := m.db.GetContext(ctx, &total, "SELECT count(*) FROM "+pq.QuoteIdentifier(t.Name)); err != nil {
		return tb, classify(op, err, "count %s", t.Name)
	}
	first, next := batchSQL(t, pk, m.mapSQL())
	last := cp.LastKey
	var done int64
	if last != nil {
		// Rows before the checkpoint are done; count them for the progress bar only.
		if err := m.db.GetContext(ctx, &done, "SELECT count(*) FROM "+pq.QuoteIdentifier(t.Name)+" WHERE "+keyAfter(pk, "", 1, "<="), last); err != nil {
			done = 0
		}
	}
	for batch := 0; ; batch++ {
		if err := m.cfg.at(ctx, "batch-start:"+t.Name, batch); err != nil {
			return tb, err
		}
		tx, err := m.db.BeginTxx(ctx, nil)
		if err != nil {
			return tb, classify(op, err, "begin")
		}
		var r struct {
			Scanned     int64          `db:"scanned"`
			Updated     int64          `db:"updated"`
			WithoutUser int64          `db:"without_user"`
			Unmapped    int64          `db:"unmapped"`
			LastKey     pq.StringArray `db:"last_key"`
		}
		if last == nil {
			err = tx.GetContext(ctx, &r, first, m.cfg.BatchSize)
		} else {
			err = tx.GetContext(ctx, &r, next, last, m.cfg.BatchSize)
		}
		if err != nil {
			tx.Rollback()
			return tb, classify(op, err, "%s: batch %d", t.Name, batch)
		}
		complete := r.Scanned < int64(m.cfg.BatchSize)
		if r.Scanned > 0 {
			last = r.LastKey
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_checkpoints (step, name, last_key, done, batches, rows_changed, updated_at)
			VALUES ('backfill', $1, $2, $3, 1, $4, now())
			ON CONFLICT (step, name) DO UPDATE SET last_key = EXCLUDED.last_key, done = EXCLUDED.done,
				batches = cloneiso_legacy_checkpoints.batches + 1,
				rows_changed = cloneiso_legacy_checkpoints.rows_changed + EXCLUDED.rows_changed, updated_at = now()`,
			t.Name, last, complete, r.Updated)
		if err == nil {
			err = m.cfg.at(ctx, "batch-before-commit:"+t.Name, batch)
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			tx.Rollback()
			if errs.KindOf(err) == errs.Unknown && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				err = classify(op, err, "%s: batch %d", t.Name, batch)
			}
			return tb, err
		}
		tb.Batches++
		tb.Scanned += r.Scanned
		tb.Updated += r.Updated
		tb.WithoutUser += r.WithoutUser
		tb.Unmapped += r.Unmapped
		done += r.Scanned
		m.cfg.Progress(Progress{Step: "backfill", Table: t.Name, Done: done, Total: total})
		if err := m.cfg.at(ctx, "batch-committed:"+t.Name, batch); err != nil {
			return tb, err
		}
		if complete {
			break
		}
	}
	m.cfg.Logger.InfoContext(ctx, "legacy: backfilled", "table", t.Name, "batches", tb.Batches, "updated", tb.Updated,
		"without_user", tb.WithoutUser, "unmapped", tb.Unmapped)
	return tb, nil
}

// keyAfter renders "(k1, k2) op ($n[1]::t1, $n[2]::t2)" for keyset pagination, with
// the key columns qualified by alias (if not "").
func keyAfter(pk []keyColumn, alias string, param int, cmp string) string {
	cols := make([]string, len(pk))
	vals := make([]string, len(pk))
	for i, c := range pk {
		cols[i] = pq.QuoteIdentifier(c.Name)
		if alias != "" {
			cols[i] = alias + "." + cols[i]
		}
		vals[i] = fmt.Sprintf("($%d::text[])[%d]::%s", param, i+1, c.Type)
	}
	return "(" + strings.Join(cols, ", ") + ") " + cmp + " (" + strings.Join(vals, ", ") + ")"
}

// batchSQL returns the statement that backfills one page: the first page, and the page
// after a key ($1). The page size is the last parameter. The statement returns how many
// rows it read and updated, how many have no user or an unmapped user, and the page's
// last key. decisions is [Migrator.mapSQL]: a row of an ID decided map gets the clone of
// the user it maps to.
func batchSQL(t Table, pk []keyColumn, decisions string) (first, next string) {
	tbl := pq.QuoteIdentifier(t.Name)
	u := pq.QuoteIdentifier(t.userColumn())
	keys := make([]string, len(pk))
	desc := make([]string, len(pk))
	join := make([]string, len(pk))
	asText := make([]string, len(pk))
	for i, c := range pk {
		k := pq.QuoteIdentifier(c.Name)
		keys[i] = k
		desc[i] = k + " DESC"
		join[i] = "_t." + k + " = _b." + k
		asText[i] = k + "::text"
	}
	sel := func(where, limit string) string {
		return `WITH _b AS MATERIALIZED (
	SELECT ` + strings.Join(keys, ", ") + `, ` + u + `::text AS _user FROM ` + tbl + where + `
	ORDER BY ` + strings.Join(keys, ", ") + ` LIMIT ` + limit + `
), _u AS (
	UPDATE ` + tbl + ` AS _t SET tenant_id = _m.to_tenant_id, clone_id = _m.to_clone_id
	FROM _b LEFT JOIN ` + decisions + ` ON _d.user_id = _b._user JOIN cloneiso_legacy_users _m ON _m.user_id = coalesce(_d.to_user, _b._user)
	WHERE ` + strings.Join(join, " AND ") + ` AND (_t.tenant_id IS NULL OR _t.clone_id IS NULL)
	RETURNING 1
)
SELECT (SELECT count(*) FROM _b) AS scanned,
       (SELECT count(*) FROM _u) AS updated,
       (SELECT count(*) FROM _b WHERE _user IS NULL OR _user = '') AS without_user,
       (SELECT count(*) FROM _b LEFT JOIN ` + decisions + ` ON _d.user_id = _b._user WHERE _user <> '' AND NOT EXISTS (SELECT 1 FROM cloneiso_legacy_users _m WHERE _m.user_id = coalesce(_d.to_user, _b._user))) AS unmapped,
       (SELECT ARRAY[` + strings.Join(asText, ", ") + `] FROM _b ORDER BY ` + strings.Join(desc, ", ") + ` LIMIT 1) AS last_key`
	}
	return sel("", "$1"), sel(" WHERE "+keyAfter(pk, "", 1, ">"), "$2")
}

// TablePlan is what a backfill would do to one table.
type TablePlan struct {
	Table       string
	Exists      bool
	Rows        int64
	ToBackfill  int64 // rows with a user and without a clone
	WithoutUser int64 // rows without a user: reported, never assigned
	Users       []UserPlan
}

// UserPlan counts one user's rows in one table.
type UserPlan struct {
	UserID     string `db:"user_id"`
	Rows       int64  `db:"row_count"`
	ToBackfill int64  `db:"to_backfill"`
}

// Plan is the dry run of the SQL migration.
type Plan struct {
	Users    int      // legacy users found (but IDs decided map, quarantine or drop)
	NewUsers []string // users without a clone yet (provisioning would create one)
	// UserIssues are the legacy user IDs that need the operator's decision
	// (Config.UserDecisions) before the backfill: unknown IDs and non-canonical
	// spellings. Each shows its decision, if recorded.
	UserIssues []UserIssue
	// NoUsersQuery is true when Config.UsersQuery is not set: IDs of deleted users
	// cannot be told from live ones.
	NoUsersQuery bool
	// SchemaProblems are the differences between legacy tables and the SDK's tables of
	// the same names that adopt and enforce refuse until fixed ([Migrator.SchemaProblems]).
	SchemaProblems []SchemaProblem
	Tables         []TablePlan
	RowsToBackfill int64
	WithoutUser    int64
}

// Plan reports, without changing anything, what [Migrator.Backfill] would do: the legacy
// user IDs that need a decision first, the users that would be provisioned and, per
// table and per user, the rows and the rows that
// would get their clone, and the rows without a user. It works on a pristine legacy
// database (before Adopt) as well as on a half-migrated one.
func (m *Migrator) Plan(ctx context.Context) (*Plan, error) {
	const op = "legacy.Plan"
	probs, err := m.SchemaProblems(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := m.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, classify(op, err, "begin")
	}
	defer tx.Rollback()
	p := &Plan{SchemaProblems: probs}
	adopted, err := tableExists(ctx, tx, "cloneiso_legacy_users")
	if err != nil {
		return nil, classify(op, err, "catalog")
	}
	uq, err := m.usersSQL(ctx, tx)
	if err != nil {
		return nil, classify(op, err, "users")
	}
	var users []string
	if err := tx.SelectContext(ctx, &users, uq+" ORDER BY user_id"); err != nil {
		return nil, classify(op, err, "users")
	}
	p.Users = len(users)
	p.NoUsersQuery = m.cfg.UsersQuery == ""
	if p.UserIssues, err = m.userIssues(ctx, tx); err != nil {
		return nil, classify(op, err, "user IDs")
	}
	mapped := map[string]bool{}
	if adopted {
		var have []string
		if err := tx.SelectContext(ctx, &have, "SELECT user_id FROM cloneiso_legacy_users"); err != nil {
			return nil, classify(op, err, "users")
		}
		for _, u := range have {
			mapped[u] = true
		}
	}
	for _, u := range users {
		if !mapped[u] {
			p.NewUsers = append(p.NewUsers, u)
		}
	}
	for _, t := range m.cfg.Tables {
		tp := TablePlan{Table: t.Name}
		if tp.Exists, err = tableExists(ctx, tx, t.Name); err != nil {
			return nil, classify(op, err, "catalog")
		}
		if !tp.Exists {
			p.Tables = append(p.Tables, tp)
			continue
		}
		cols, err := columnsOf(ctx, tx, t.Name)
		if err != nil {
			return nil, classify(op, err, "catalog")
		}
		missing := "true"
		if slices.Contains(cols, "tenant_id") && slices.Contains(cols, "clone_id") {
			missing = "(tenant_id IS NULL OR clone_id IS NULL)"
		}
		u := pq.QuoteIdentifier(t.userColumn())
		var rows []UserPlan
		if err := tx.SelectContext(ctx, &rows, `SELECT coalesce(`+u+`::text, '') AS user_id, count(*) AS row_count,
			count(*) FILTER (WHERE `+missing+`) AS to_backfill FROM `+pq.QuoteIdentifier(t.Name)+` GROUP BY 1 ORDER BY 1`); err != nil {
			return nil, classify(op, err, "count %s", t.Name)
		}
		for _, r := range rows {
			tp.Rows += r.Rows
			if r.UserID == "" {
				tp.WithoutUser += r.Rows
				continue
			}
			tp.ToBackfill += r.ToBackfill
			tp.Users = append(tp.Users, r)
		}
		p.RowsToBackfill += tp.ToBackfill
		p.WithoutUser += tp.WithoutUser
		p.Tables = append(p.Tables, tp)
	}
	return p, nil
}
