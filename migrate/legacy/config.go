package legacy

import (
	"context"
	"log/slog"
	"slices"
	"strings"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/migrate"
)

// Table is one clone-owned table of a legacy deployment: its rows belong to the legacy
// user named in UserColumn and move to that user's clone.
type Table struct {
	// Name is the table's name in the connection's current schema.
	Name string `json:"name"`
	// UserColumn holds the legacy user's ID (any type; compared as text); default
	// "user_id". Rows where it is NULL or empty have no user: they are reported, never
	// assigned to anybody.
	UserColumn string `json:"user_column,omitempty"`
	// ObjectKeyColumn, if set, holds full object keys (like documents.object_key):
	// [Migrator.RewriteObjectKeys] replaces each legacy key that was copied with its
	// copy's key, and checksums compare such a column through the copy ledger, so the
	// rewrite does not count as a change.
	ObjectKeyColumn string `json:"object_key_column,omitempty"`
}

func (t Table) userColumn() string {
	if t.UserColumn == "" {
		return "user_id"
	}
	return t.UserColumn
}

// DefaultTables returns the SDK's clone-owned tables, each with its user_id column, in
// dependency order (parents first); documents.object_key holds object keys.
func DefaultTables() []Table {
	names := migrate.CloneOwnedTables()
	out := make([]Table, len(names))
	for i, n := range names {
		out[i] = Table{Name: n, UserColumn: "user_id"}
		if n == "documents" {
			out[i].ObjectKeyColumn = "object_key"
		}
	}
	return out
}

// Progress reports the advance of a long step. Done and Total count rows, objects or
// vectors depending on Step; Total is 0 when unknown.
type Progress struct {
	Step  string // "provision", "snapshot", "backfill", "objects", "vectors", "verify", ...
	Table string // the table, user or namespace being worked on ("" if none)
	Done  int64
	Total int64
}

// Config configures a [Migrator]. The zero value means the defaults.
type Config struct {
	// Tables are the clone-owned tables to migrate, parents before children; default
	// [DefaultTables]. Hosts add their own tables here.
	Tables []Table `json:"tables,omitempty"`
	// UsersQuery, if set, is a SELECT returning one text column of legacy user IDs
	// (for example "SELECT id::text FROM users"), so that users without any row also get
	// their clone. The users found in the tables' user columns are always included.
	UsersQuery string `json:"users_query,omitempty"`
	// SubjectTemplate maps a legacy user ID to the subject (the identity provider's
	// "sub") its clone is provisioned for, as on first sign-in; "{user_id}" is
	// replaced by the user ID. Default "{user_id}": the subject is the user ID.
	SubjectTemplate string `json:"subject_template,omitempty"`
	// SubjectQuery, if set, is a SELECT returning two text columns, a legacy user ID
	// and the subject of its clone, for subjects kept in a column (for example
	// "SELECT id::text, auth0_sub FROM users"); it replaces SubjectTemplate. A user it
	// gives no subject (or a NULL or empty one) is not provisioned and is reported.
	SubjectQuery string `json:"subject_query,omitempty"`
	// Subject, if set, overrides SubjectTemplate and SubjectQuery (library use only).
	Subject func(userID string) (string, error) `json:"-"`
	// BatchSize is the number of rows per backfill transaction; default 5000.
	BatchSize int `json:"batch_size,omitempty"`
	// UserDecisions are the operator's decisions about legacy user IDs that must not be
	// provisioned as they are, keyed by the ID exactly as it appears in the rows.
	// [Migrator.Plan] lists the IDs that need one (UserIssues): IDs absent from
	// UsersQuery (a hard-deleted user, whose data would otherwise come back in a new
	// clone) and non-canonical spellings of a known ID (an upper-case variant, which
	// would otherwise become a second clone). [Migrator.Backfill] refuses, with an error
	// wrapping [ErrUndecided] that lists them, until every such ID has a decision.
	UserDecisions map[string]UserDecision `json:"user_decisions,omitempty"`
	// WithoutUser is the decision about rows without a user (NULL or empty user
	// column): "" leaves them where they are (reported; enforcement refuses until they
	// are assigned or deleted), [DecisionQuarantine] or [DecisionDrop] sets them aside
	// in cloneiso_legacy_quarantine during the backfill, as for a user.
	WithoutUser string `json:"without_user,omitempty"`
	// Schema, if set, is the schema of the SDK's own tables (migrate.Options.Schema),
	// for a legacy database with tables of the SDK's control-plane names (a legacy
	// clones or tenants table): the control plane (tenants, clones, tenant_members,
	// clone_grants, audit tables, break-glass grants), the version table, the
	// migration's bookkeeping (cloneiso_legacy_*) and the SDK's content tables the
	// legacy database lacks are created there, while the configured legacy tables are
	// adopted in place, in LegacySchema. Every connection of the Migrator must then
	// resolve names with Schema first and LegacySchema second on its search_path
	// (open the database with search_path=Schema,LegacySchema in its DSN, as
	// cloneiso-migrate does); each step checks it and refuses otherwise. Default "": the
	// SDK's tables go to the legacy schema, beside the legacy tables.
	Schema string `json:"schema,omitempty"`
	// LegacySchema is the schema of the legacy tables; default: the connection's
	// current schema, not counting Schema (the first other schema on its search_path).
	// It is only read when Schema is set.
	LegacySchema string `json:"legacy_schema,omitempty"`
	// Progress, if set, is called after every batch of every long step.
	Progress func(Progress) `json:"-"`
	// Logger receives one line per step and table; default: silent.
	Logger *slog.Logger `json:"-"`

	// customSubject: Subject was set by the caller (it wins over SubjectQuery).
	customSubject bool

	// hook, if set (by this package's tests), is called at named points of the long
	// steps; an error it returns aborts the step there, as a crash would.
	hook func(ctx context.Context, point string, n int) error
}

// The decisions about a legacy user ID ([UserDecision].Action).
const (
	// DecisionMap moves the ID's rows into the clone of another legacy user (To), as
	// if they were that user's; the user column keeps its legacy value.
	DecisionMap = "map"
	// DecisionQuarantine sets the ID's rows aside: the backfill moves them, in their text form, from
	// their table to cloneiso_legacy_quarantine, where they stay for review;
	// [Migrator.RestoreQuarantined] puts them back.
	DecisionQuarantine = "quarantine"
	// DecisionDrop sets the ID's rows aside like DecisionQuarantine, recorded as
	// meant for deletion: nothing is deleted by the migration; purge them from
	// cloneiso_legacy_quarantine once the migration is accepted.
	DecisionDrop = "drop"
	// DecisionKeep provisions the ID as a user of its own, as it is (a user that
	// UsersQuery misses, a deliberately distinct spelling).
	DecisionKeep = "keep"
)

// UserDecision is the operator's decision about one legacy user ID.
type UserDecision struct {
	// Action is [DecisionMap], [DecisionQuarantine], [DecisionDrop] or [DecisionKeep].
	Action string `json:"action"`
	// To is the legacy user ID whose clone receives the rows ([DecisionMap] only).
	To string `json:"to,omitempty"`
}

// setAside reports whether the decision moves the ID's rows to the quarantine.
func (d UserDecision) setAside() bool {
	return d.Action == DecisionQuarantine || d.Action == DecisionDrop
}

func checkDecisions(op string, c *Config) error {
	for id, d := range c.UserDecisions {
		if id == "" {
			return errs.New(errs.InvalidInput, op, "user_decisions: an empty user ID (decide about rows without a user with without_user)")
		}
		switch d.Action {
		case DecisionMap:
			if d.To == "" || d.To == id {
				return errs.New(errs.InvalidInput, op, "user_decisions[%q]: map needs \"to\", another legacy user ID", id)
			}
			if t, ok := c.UserDecisions[d.To]; ok && t.Action != DecisionKeep {
				return errs.New(errs.InvalidInput, op, "user_decisions[%q]: maps to %q, which is itself decided %q: map to the final user", id, d.To, t.Action)
			}
		case DecisionQuarantine, DecisionDrop, DecisionKeep:
			if d.To != "" {
				return errs.New(errs.InvalidInput, op, "user_decisions[%q]: \"to\" is for map only", id)
			}
		default:
			return errs.New(errs.InvalidInput, op, "user_decisions[%q]: action %q is not map, quarantine, drop or keep", id, d.Action)
		}
	}
	switch c.WithoutUser {
	case "", DecisionQuarantine, DecisionDrop:
	default:
		return errs.New(errs.InvalidInput, op, "without_user %q is not quarantine or drop", c.WithoutUser)
	}
	return nil
}

// DefaultBatchSize is the default number of rows per backfill transaction.
const DefaultBatchSize = 5000

func (c *Config) withDefaults() (*Config, error) {
	const op = "legacy.Config"
	out := Config{}
	if c != nil {
		out = *c
	}
	if len(out.Tables) == 0 {
		out.Tables = DefaultTables()
	}
	seen := map[string]bool{}
	for i, t := range out.Tables {
		if t.Name == "" {
			return nil, errs.New(errs.InvalidInput, op, "table %d has no name", i)
		}
		if seen[t.Name] {
			return nil, errs.New(errs.InvalidInput, op, "table %s listed twice", t.Name)
		}
		seen[t.Name] = true
		if sdkOnly(t.Name) || strings.HasPrefix(t.Name, "cloneiso_") {
			return nil, errs.New(errs.InvalidInput, op, "table %s is not a clone-owned table", t.Name)
		}
	}
	if out.Schema != "" {
		if err := migrate.ValidSchema(out.Schema); err != nil {
			return nil, errs.Wrap(errs.InvalidInput, op, err, "schema")
		}
		if out.LegacySchema == out.Schema {
			return nil, errs.New(errs.InvalidInput, op, "schema and legacy_schema are both %q: the SDK's schema must be another one", out.Schema)
		}
	}
	if out.LegacySchema != "" {
		if out.Schema == "" {
			return nil, errs.New(errs.InvalidInput, op, "legacy_schema %q without schema: the legacy schema is only read with a schema of the SDK's own; without one, connect with the legacy schema current", out.LegacySchema)
		}
		if err := migrate.ValidSchema(out.LegacySchema); err != nil {
			return nil, errs.Wrap(errs.InvalidInput, op, err, "legacy_schema")
		}
	}
	if err := checkDecisions(op, &out); err != nil {
		return nil, err
	}
	if out.SubjectQuery != "" && out.SubjectTemplate != "" {
		return nil, errs.New(errs.InvalidInput, op, "subject_template and subject_query are exclusive: a subject comes from one of them")
	}
	if out.SubjectTemplate == "" {
		out.SubjectTemplate = "{user_id}"
	}
	if !strings.Contains(out.SubjectTemplate, "{user_id}") {
		return nil, errs.New(errs.InvalidInput, op, "subject template %q does not contain {user_id}", out.SubjectTemplate)
	}
	out.customSubject = out.Subject != nil
	if out.Subject == nil {
		tmpl := out.SubjectTemplate
		out.Subject = func(u string) (string, error) { return strings.ReplaceAll(tmpl, "{user_id}", u), nil }
	}
	if out.BatchSize <= 0 {
		out.BatchSize = DefaultBatchSize
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.Progress == nil {
		out.Progress = func(Progress) {}
	}
	return &out, nil
}

func (c *Config) at(ctx context.Context, point string, n int) error {
	if c.hook != nil {
		return c.hook(ctx, point, n)
	}
	return ctx.Err()
}

// sdkOnly reports whether name is one of the SDK's tables that hold no clone content
// (the control plane, the audit log and its companions): never a table to migrate.
func sdkOnly(name string) bool {
	return slices.Contains(migrate.Tables(), name) && !slices.Contains(migrate.CloneOwnedTables(), name)
}
