// Command cloneiso-migrate moves a legacy deployment, whose data is keyed by a user ID,
// to cloneiso's clone model across PostgreSQL, S3 and a vector index, and installs or
// upgrades cloneiso's schema. It is the operator's side of package
// github.com/cloneiso/cloneiso/migrate/legacy; MIGRATION_GUIDE.md at the repository
// root is the runbook.
//
// Usage:
//
//	cloneiso-migrate <command> [subcommand] [flags]
//
// Commands, in the order of a migration:
//
//	status                 where the database stands (schema version, checkpoints, copies)
//	up                     fresh install or upgrade: apply cloneiso's migrations; on a legacy
//	                       database: adopt it (control-plane tables, nullable tenant_id/clone_id)
//	plan                   dry run: schema prerequisites (columns and types of the SDK's
//	                       tables, name collisions), user IDs that need a decision, per table
//	                       and per user what backfill would change; with object or vector
//	                       flags, what would be copied
//	backfill               provision one tenant+clone per legacy user, snapshot, backfill
//	                       tenant_id/clone_id in batches (resumable; --restart rescans)
//	snapshot --retake      record the "before" again after deliberately changing legacy rows
//	objects copy|verify|rewrite-keys|delete-legacy|exclude|include
//	                       copy legacy objects into clone prefixes, verify them, point
//	                       documents.object_key (and configured columns) at the copies,
//	                       delete the legacy keys; record (exclude) or withdraw (include)
//	                       the decision that keys or prefixes are out of scope
//	vectors copy|verify|exclude|delete-legacy
//	                       copy legacy vectors into clone namespaces (--restart rescans),
//	                       verify, exclude refused ones (--vector-ids, --reason), delete
//	                       the legacy vectors whose copies check out
//	verify                 compare with the snapshot, find rows without or in the wrong clone;
//	                       also objects and vectors when configured
//	enforce                NOT NULL, tenant-led keys, forced row-level security; refuses while
//	                       any row lacks its clone
//	grant --app-role R     grant the application role its privileges (migrate.AppRoleSQL, the
//	                       configured host tables and the sequences they use)
//	check                  migrate.CheckIsolation for the application role
//	rollback-sql           print the SQL that undoes adopt and backfill (before enforce only)
//
// Every flag can also be set in the environment as CLONEISO_ followed by the flag's name
// in upper case with "-" as "_" (--s3-bucket is CLONEISO_S3_BUCKET); flags win. The two
// database URLs keep the meaning their names have everywhere in cloneiso: --database-url,
// the schema owner this command migrates as, is CLONEISO_MIGRATE_DATABASE_URL, and
// --app-database-url, the application role, is CLONEISO_DATABASE_URL (as in the host app
// and cloneiso-doctor).
// With --schema (CLONEISO_SCHEMA, or "schema" in the configuration file) the SDK's own
// tables go to that schema, beside legacy tables of the same names (a legacy clones
// table), and the command connects with search_path set to it and the legacy schema
// (--legacy-schema; default: the connection's current schema); give it to every
// command. See "A schema for the SDK's tables" in MIGRATION_GUIDE.md.
// PINECONE_API_KEY is read too, and S3 credentials come from the AWS default chain
// unless --s3-access-key and --s3-secret-key are set.
//
// Exit status:
//
//	0  success.
//	1  a discrepancy was found: verify or check failed, enforce refused while rows lack
//	   their clone, rows, objects or vectors were left behind and are listed.
//	2  a permanent error: bad usage or configuration, or something the operator must
//	   change before running the command again — a key template the command cannot use,
//	   a legacy user ID that needs a decision, a missing column or a column of the wrong
//	   type, a name collision with the SDK's tables, a foreign key that does not hold,
//	   metadata over a size limit, a step run out of order. The message says what to
//	   change. Errors of kinds other than those below (clone.KindOf: invalid input,
//	   conflict, internal, too large, forbidden, ...) exit 2.
//	3  a transient failure: a database or store unavailable, a timeout, a lost
//	   connection, an interruption (clone.ErrUnavailable, clone.ErrCanceled, or an error
//	   of no kind). Run the same command again: every step resumes.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/pinecone-io/go-pinecone/v5/pinecone"
	"github.com/pressly/goose/v3"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/migrate/legacy"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
)

// Exit codes.
const (
	exitOK          = 0
	exitDiscrepancy = 1
	exitUsage       = 2
	exitFailure     = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// options are the flags (and environment) of every command.
type options struct {
	databaseURL, appDatabaseURL, appRole string
	configFile, tables, usersQuery       string
	subjectTemplate, withoutUser         string
	subjectQuery                         string
	schema, legacySchema                 string
	batchSize                            int
	progress                             string
	dryRun, restart, retake, deep        bool
	perUser                              bool

	s3Endpoint, s3Region, s3AccessKey, s3SecretKey string
	s3PathStyle                                    bool
	legacyBucket, bucket, keyTemplate, objectKind  string
	concurrency                                    int
	sanitize                                       bool
	outOfScope                                     string

	pineconeHost, legacyPineconeHost, pineconeAPIKey string
	dimension                                        int
	vectorLayout, namespaceTemplate, sharedNamespace string
	userKey                                          string
	vectorBatch                                      int
	vectorIDs, vectorNamespace, reason               string
	undo                                             bool
}

func (o *options) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL of the schema owner (required)")
	fs.StringVar(&o.appDatabaseURL, "app-database-url", "", "check: PostgreSQL URL of the application role")
	fs.StringVar(&o.appRole, "app-role", "", "check: the application role, if not connecting as it")
	fs.StringVar(&o.configFile, "config", "", "JSON file with the migration configuration (tables, users_query, subject_template, batch_size)")
	fs.StringVar(&o.schema, "schema", "", "schema of the SDK's own tables (config \"schema\"), for a database with tables of the SDK's names such as clones; default: the current schema")
	fs.StringVar(&o.legacySchema, "legacy-schema", "", "with --schema: schema of the legacy tables (config \"legacy_schema\"); default: the connection's current schema")
	fs.StringVar(&o.tables, "tables", "", "tables to migrate as name[:user_column],... (default: the SDK's tables)")
	fs.StringVar(&o.usersQuery, "users-query", "", "SELECT of every legacy user ID, so users without rows get a clone")
	fs.StringVar(&o.subjectTemplate, "subject-template", "", "subject of a user's clone; {user_id} is replaced (default {user_id})")
	fs.StringVar(&o.subjectQuery, "subject-query", "", "SELECT of (user ID, subject) pairs, for subjects kept in a column (instead of --subject-template)")
	fs.StringVar(&o.withoutUser, "without-user", "", "backfill: rows without a user are set aside: quarantine or drop (default: left in place, reported)")
	fs.IntVar(&o.batchSize, "batch-size", 0, "rows per backfill transaction (default 5000)")
	fs.StringVar(&o.progress, "progress", "auto", "progress bar on stderr: auto (if a terminal), always or never")
	fs.BoolVar(&o.dryRun, "dry-run", false, "objects, vectors: report what would be done, change nothing")
	fs.BoolVar(&o.restart, "restart", false, "backfill: forget the checkpoints and rescan every table; vectors copy: rescan every legacy vector")
	fs.BoolVar(&o.retake, "retake", false, "snapshot: record the snapshot again")
	fs.BoolVar(&o.perUser, "per-user", false, "verify: print every user's counts before and after, per table")
	fs.BoolVar(&o.deep, "deep", true, "objects verify/delete-legacy: read every copy back and compare SHA-256")

	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "S3 endpoint for S3-compatible servers (empty: AWS)")
	fs.StringVar(&o.s3Region, "s3-region", "us-east-1", "S3 region")
	fs.StringVar(&o.s3AccessKey, "s3-access-key", "", "S3 access key (default: the AWS credential chain)")
	fs.StringVar(&o.s3SecretKey, "s3-secret-key", "", "S3 secret key")
	fs.BoolVar(&o.s3PathStyle, "s3-path-style", true, "address buckets by path (S3-compatible servers)")
	fs.StringVar(&o.legacyBucket, "legacy-bucket", "", "bucket of the legacy objects (enables object steps)")
	fs.StringVar(&o.bucket, "bucket", "", "bucket the clones' objects go to (default: the legacy bucket)")
	fs.StringVar(&o.keyTemplate, "key-template", "users/{user_id}/{kind}/{name}",
		"legacy object key layouts, comma-separated, tried in order; each TEMPLATE or TEMPLATE=KIND (the kind when it has no {kind})")
	fs.StringVar(&o.objectKind, "object-kind", legacy.DefaultObjectKind, "kind of objects when the template has no {kind}")
	fs.IntVar(&o.concurrency, "concurrency", 4, "objects copied at once")
	fs.BoolVar(&o.sanitize, "sanitize", false, "objects copy/plan: copy objects the SDK refuses (NFD or %xx names, bad metadata keys or Content-Type) in a sanitized form, recorded in the ledger")
	fs.StringVar(&o.outOfScope, "out-of-scope", "", "objects exclude/include: legacy keys and prefixes (ending in /), comma-separated")

	fs.StringVar(&o.pineconeHost, "pinecone-host", "", "Pinecone index host of the clones' vectors (enables vector steps)")
	fs.StringVar(&o.legacyPineconeHost, "legacy-pinecone-host", "", "Pinecone index host of the legacy vectors (default: --pinecone-host)")
	fs.StringVar(&o.pineconeAPIKey, "pinecone-api-key", "", "Pinecone API key (or PINECONE_API_KEY)")
	fs.IntVar(&o.dimension, "dimension", 0, "vector dimension of the index")
	fs.StringVar(&o.vectorLayout, "vector-layout", legacy.LayoutNamespacePerUser, "legacy vector layout: namespace-per-user or shared")
	fs.StringVar(&o.namespaceTemplate, "namespace-template", "{user_id}", "legacy namespace of a user (namespace-per-user)")
	fs.StringVar(&o.sharedNamespace, "shared-namespace", "", "legacy namespace of every user's vectors (shared; __default__ is Pinecone's default namespace)")
	fs.StringVar(&o.userKey, "user-key", "user_id", "metadata key holding the user ID (shared)")
	fs.IntVar(&o.vectorBatch, "vector-batch", 100, "vectors per batch (1..100)")
	fs.StringVar(&o.vectorIDs, "vector-ids", "", "vectors exclude: comma-separated IDs of legacy vectors copy refused (empty: the whole --vector-namespace)")
	fs.StringVar(&o.vectorNamespace, "vector-namespace", "", "vectors exclude: their legacy namespace (default: the shared namespace)")
	fs.StringVar(&o.reason, "reason", "", "objects exclude, vectors exclude: why (recorded; required)")
	fs.BoolVar(&o.undo, "undo", false, "vectors exclude: take the exclusion back (the vectors are pending again)")
}

const usage = `usage: cloneiso-migrate <command> [subcommand] [flags]

commands: status, up, plan, backfill, snapshot --retake, objects copy|verify|rewrite-keys|delete-legacy|exclude|include,
          vectors copy|verify|exclude|delete-legacy, verify, enforce, grant, check, rollback-sql
see MIGRATION_GUIDE.md; run a command with -h for its flags`

// app is one invocation.
type app struct {
	opts           options
	stdout, stderr io.Writer
	getenv         func(string) string
	bar            *progressBar
	db             *sql.DB
	m              *legacy.Migrator
	schema         string // the SDK's schema (--schema), "" for the current one
}

// withSearchPath returns dsn (a URL or key=value string) with the search_path run-time
// parameter set to path, which the driver sends to the server for every connection.
func withSearchPath(dsn, path string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set("search_path", path)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	if strings.Contains(dsn, "search_path") {
		return "", fmt.Errorf("it sets search_path: leave it out, --schema sets it")
	}
	return strings.TrimSpace(dsn) + " search_path=" + path, nil
}

// run executes the command line args and returns the exit status.
// envName is the environment variable of a flag: CLONEISO_ and the flag's name in upper
// case, except the database URLs, whose names mean one role across cloneiso's commands.
func envName(flagName string) string {
	switch flagName {
	case "database-url":
		return "CLONEISO_MIGRATE_DATABASE_URL"
	case "app-database-url":
		return "CLONEISO_DATABASE_URL"
	}
	return "CLONEISO_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, args := args[0], args[1:]
	sub := ""
	if (cmd == "objects" || cmd == "vectors") && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv}
	fs := flag.NewFlagSet("cloneiso-migrate "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	a.opts.flags(fs)
	// Environment first, flags over it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s: %v", name, err)
			}
		}
	})
	if envErr != nil {
		fmt.Fprintln(stderr, "cloneiso-migrate:", envErr)
		return exitUsage
	}
	if a.opts.pineconeAPIKey == "" {
		a.opts.pineconeAPIKey = getenv("PINECONE_API_KEY")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cloneiso-migrate: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	code, err := a.dispatch(ctx, cmd, sub)
	a.bar.finish()
	if a.db != nil {
		a.db.Close()
	}
	if err != nil {
		if code == exitOK || code == exitFailure {
			code = exitCode(err)
		}
		switch code {
		case exitFailure:
			fmt.Fprintf(stderr, "cloneiso-migrate: %v\n(a transient failure: run the same command again to resume)\n", err)
		case exitUsage:
			var ue usageError
			if errors.As(err, &ue) {
				fmt.Fprintln(stderr, "cloneiso-migrate:", err)
			} else {
				fmt.Fprintf(stderr, "cloneiso-migrate: %v\n(a permanent error: running the command again does not help; change what the message says first)\n", err)
			}
		default:
			fmt.Fprintln(stderr, "cloneiso-migrate:", err)
		}
	}
	return code
}

// exitCode is the exit status of a command that failed with err: 2 (exitUsage) for a
// usage error and a permanent error — one of a kind that running again unchanged does
// not fix (clone.ErrInvalidInput, ErrConflict, ErrInternal, ErrTooLarge, ErrForbidden,
// ErrNotFound, ErrUnsupported, ...); 3 (exitFailure) for a transient one
// (clone.ErrUnavailable, clone.ErrCanceled) and an error of no kind. Commands (objects
// and vectors included) return classified errors and get the right status from here.
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	switch clone.KindOf(err) {
	case clone.KindUnknown, clone.ErrUnavailable, clone.ErrCanceled:
		return exitFailure
	}
	return exitUsage
}

type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func (a *app) dispatch(ctx context.Context, cmd, sub string) (int, error) {
	commands := map[string]func(context.Context) (int, error){
		"status": a.status, "up": a.up, "plan": a.plan, "backfill": a.backfill, "snapshot": a.snapshot,
		"verify": a.verify, "enforce": a.enforce, "check": a.check, "grant": a.grant, "rollback-sql": a.rollbackSQL,
		"objects": func(ctx context.Context) (int, error) { return a.objects(ctx, sub) },
		"vectors": func(ctx context.Context) (int, error) { return a.vectors(ctx, sub) },
	}
	fn, ok := commands[cmd]
	if !ok {
		fmt.Fprintln(a.stderr, usage)
		return exitUsage, fmt.Errorf("unknown command %q", cmd)
	}
	if err := a.open(ctx); err != nil {
		return exitCode(err), err
	}
	code, err := fn(ctx)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage, err
	}
	return code, err
}

// open connects to the database and builds the Migrator from the configuration.
func (a *app) open(ctx context.Context) error {
	o := &a.opts
	if o.databaseURL == "" {
		return usagef("--database-url (or CLONEISO_MIGRATE_DATABASE_URL: the schema owner) is required")
	}
	switch o.progress {
	case "always":
		a.bar = newProgressBar(a.stderr, true)
	case "never":
		a.bar = newProgressBar(a.stderr, false)
	case "auto":
		a.bar = newProgressBar(a.stderr, isTerminal(a.stderr))
	default:
		return usagef("--progress must be auto, always or never")
	}
	var cfg legacy.Config
	if o.configFile != "" {
		b, err := os.ReadFile(o.configFile)
		if err != nil {
			return usagef("config: %v", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return usagef("config %s: %v", o.configFile, err)
		}
	}
	if o.tables != "" {
		cfg.Tables = nil
		for spec := range strings.SplitSeq(o.tables, ",") {
			name, col, _ := strings.Cut(strings.TrimSpace(spec), ":")
			cfg.Tables = append(cfg.Tables, legacy.Table{Name: name, UserColumn: col})
		}
	}
	if o.usersQuery != "" {
		cfg.UsersQuery = o.usersQuery
	}
	if o.subjectTemplate != "" {
		cfg.SubjectTemplate = o.subjectTemplate
	}
	if o.withoutUser != "" {
		cfg.WithoutUser = o.withoutUser
	}
	if o.subjectQuery != "" {
		cfg.SubjectQuery = o.subjectQuery
	}
	if o.batchSize > 0 {
		cfg.BatchSize = o.batchSize
	}
	if o.schema != "" {
		cfg.Schema = o.schema
	}
	if o.legacySchema != "" {
		cfg.LegacySchema = o.legacySchema
	}
	cfg.Progress = func(ev legacy.Progress) {
		a.bar.update(ev)
		checkpoint(ev)
	}
	db, err := clonesql.OpenPostgres(o.databaseURL)
	if err != nil {
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("connect: %w", err)
	}
	if cfg.Schema != "" {
		// Every connection resolves the SDK's tables in its schema and the legacy
		// tables in theirs: search_path = schema, legacy schema.
		if cfg.LegacySchema == "" {
			if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&cfg.LegacySchema); err != nil {
				db.Close()
				return fmt.Errorf("current schema: %w", err)
			}
		}
		db.Close()
		if err := migrate.ValidSchema(cfg.Schema); err != nil {
			return usagef("schema: %v", err)
		}
		if err := migrate.ValidSchema(cfg.LegacySchema); err != nil {
			return usagef("legacy schema: %v", err)
		}
		dsn, err := withSearchPath(o.databaseURL, cfg.Schema+","+cfg.LegacySchema)
		if err != nil {
			return usagef("--database-url: %v", err)
		}
		if db, err = clonesql.OpenPostgres(dsn); err != nil {
			return err
		}
	}
	a.db = db
	a.schema = cfg.Schema
	m, err := legacy.New(db, &cfg)
	if err != nil {
		return usageError{err}
	}
	a.m = m
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (a *app) printf(format string, args ...any) { fmt.Fprintf(a.stdout, format, args...) }

func (a *app) status(ctx context.Context) (int, error) {
	s, err := a.m.Status(ctx)
	if err != nil {
		return exitFailure, err
	}
	state := "fresh (no cloneiso schema, no legacy tables)"
	switch {
	case s.SchemaVersion > 0 && s.Adopted:
		state = "enforced (legacy migration complete)"
	case s.SchemaVersion > 0:
		state = "cloneiso schema installed"
	case s.Adopted:
		state = "adopted (legacy migration in progress)"
	case s.Legacy:
		state = "legacy (not adopted: run up)"
	}
	a.printf("state: %s\nschema version: %d\n", state, s.SchemaVersion)
	if s.SchemaVersion > 0 {
		p, err := migrate.NewProvider(a.db, &migrate.Options{Schema: a.schema})
		if err != nil {
			return exitFailure, err
		}
		ms, err := p.Status(ctx)
		if err != nil {
			return exitFailure, err
		}
		pending := 0
		for _, m := range ms {
			if m.State == goose.StatePending {
				pending++
			}
		}
		a.printf("pending migrations: %d (run up)\n", pending)
	}
	if s.Adopted {
		a.printf("legacy users with a clone: %d\n", s.Users)
		a.printf("%-24s %-8s %-11s %-10s %8s %12s\n", "table", "exists", "snapshot", "backfill", "batches", "rows changed")
		for _, t := range s.Tables {
			bf := "pending"
			if t.Backfilled {
				bf = "done"
			} else if t.Batches > 0 {
				bf = "partial"
			}
			a.printf("%-24s %-8v %-11v %-10s %8d %12d\n", t.Table, t.Exists, t.Snapshotted, bf, t.Batches, t.RowsChanged)
		}
		a.printf("rows set aside (quarantine, drop): %d\n", s.Quarantined)
		a.printf("objects copied: %d (legacy deleted: %d)\nvectors copied: %d (legacy deleted: %d)\n",
			s.ObjectsCopied, s.ObjectsDeleted, s.VectorsCopied, s.VectorsDeleted)
	}
	return exitOK, nil
}

func (a *app) up(ctx context.Context) (int, error) {
	s, err := a.m.Status(ctx)
	if err != nil {
		return exitFailure, err
	}
	if s.SchemaVersion > 0 || !s.Legacy {
		if err := migrate.Up(ctx, a.db, &migrate.Options{Schema: a.schema}); err != nil {
			return exitFailure, err
		}
		v, _ := a.m.Status(ctx)
		a.printf("cloneiso schema at version %d\n", v.SchemaVersion)
		return exitOK, nil
	}
	rep, err := a.m.Adopt(ctx)
	if err != nil {
		return exitFailure, err
	}
	a.printf("legacy schema adopted: tables %s now have nullable tenant_id and clone_id\n", strings.Join(rep.AdoptedTables, ", "))
	if len(rep.CreatedTables) > 0 {
		a.printf("created: %s\n", strings.Join(rep.CreatedTables, ", "))
	}
	if len(rep.MissingTables) > 0 {
		a.printf("absent (created empty by enforce): %s\n", strings.Join(rep.MissingTables, ", "))
	}
	a.printf("next: plan, backfill, verify, enforce (see MIGRATION_GUIDE.md)\n")
	return exitOK, nil
}

func (a *app) plan(ctx context.Context) (int, error) {
	p, err := a.m.Plan(ctx)
	if err != nil {
		return exitFailure, err
	}
	if len(p.SchemaProblems) > 0 {
		a.printf("schema prerequisites: %d problems; up and enforce refuse until they are fixed:\n", len(p.SchemaProblems))
		for _, sp := range p.SchemaProblems {
			a.printf("  %s\n", sp)
		}
		a.printf("\n")
	}
	a.printf("legacy users: %d (%d without a clone yet)\n", p.Users, len(p.NewUsers))
	a.printUserIssues(p)
	a.printf("%-24s %10s %12s %13s %7s\n", "table", "rows", "to backfill", "without user", "users")
	for _, t := range p.Tables {
		if !t.Exists {
			a.printf("%-24s %10s\n", t.Table, "absent")
			continue
		}
		a.printf("%-24s %10d %12d %13d %7d\n", t.Table, t.Rows, t.ToBackfill, t.WithoutUser, len(t.Users))
	}
	a.printf("total: %d rows to backfill, %d rows without a user\n", p.RowsToBackfill, p.WithoutUser)
	a.printf("\nper user (table user rows to-backfill):\n")
	for _, t := range p.Tables {
		for _, u := range t.Users {
			a.printf("  %s %s %d %d\n", t.Table, u.UserID, u.Rows, u.ToBackfill)
		}
	}
	if p.WithoutUser > 0 && a.opts.withoutUser == "" && !a.withoutUserDecided() {
		a.printf("\nwarning: %d rows have no user; backfill will leave them and enforce will refuse until they are assigned, deleted or set aside (without_user: quarantine or drop)\n", p.WithoutUser)
	} else if p.WithoutUser > 0 {
		a.printf("\n%d rows without a user will be set aside in cloneiso_legacy_quarantine\n", p.WithoutUser)
	}
	if a.opts.legacyBucket != "" {
		oo, err := a.objectOptions(ctx)
		if err != nil {
			return exitFailure, err
		}
		oo.DryRun = true
		rep, err := a.m.MigrateObjects(ctx, oo)
		if err != nil {
			return exitCode(err), err
		}
		a.printObjects("objects (dry run)", rep)
		if err := a.printScope(ctx); err != nil {
			return exitFailure, err
		}
	}
	if a.opts.pineconeHost != "" {
		vo, closeFn, err := a.vectorOptions()
		if err != nil {
			return exitFailure, err
		}
		defer closeFn()
		vo.DryRun = true
		rep, err := a.m.MigrateVectors(ctx, vo)
		if err != nil {
			return exitFailure, err
		}
		a.printVectors("vectors (dry run)", rep)
	}
	return exitOK, nil
}

// printUserIssues lists the legacy user IDs that need a decision before the backfill.
func (a *app) printUserIssues(p *legacy.Plan) {
	if p.NoUsersQuery {
		a.printf("warning: no users_query: IDs of deleted users cannot be told apart; only spellings that differ in case are listed\n")
	}
	if len(p.UserIssues) == 0 {
		return
	}
	undecided := 0
	for _, is := range p.UserIssues {
		if is.Decision == nil {
			undecided++
		}
	}
	a.printf("\nlegacy user IDs that need a decision (user_decisions: map, quarantine, drop or keep): %d, %d undecided\n", len(p.UserIssues), undecided)
	for _, is := range p.UserIssues {
		a.printf("  %s\n", is)
	}
	if undecided > 0 {
		a.printf("backfill refuses until every one is decided (see MIGRATION_GUIDE.md)\n\n")
	}
}

// withoutUserDecided reports whether the configuration decides about rows without a user.
func (a *app) withoutUserDecided() bool {
	return a.m.WithoutUser() != ""
}

// checkpoint is called after the progress bar at every reported step of a long command
// (a provisioned user, a snapshotted table, a committed batch). It does nothing; the
// command's tests replace it to kill the process at a chosen step, so that crash tests
// land at deterministic points instead of after guessed delays.
var checkpoint = func(legacy.Progress) {}

func (a *app) backfill(ctx context.Context) (int, error) {
	rep, err := a.m.Backfill(ctx, &legacy.BackfillOptions{Restart: a.opts.restart})
	a.bar.finish()
	if rep != nil && rep.Provision != nil {
		a.printf("users: %d (%d provisioned now)\n", rep.Provision.Users, rep.Provision.Provisioned)
		for _, f := range rep.Provision.Failed {
			a.printf("  user %q (subject %q) got no clone: %s\n", f.UserID, f.Key, f.Reason)
		}
	}
	if rep != nil {
		for _, t := range a.m.Tables() {
			if n := rep.Quarantined[t.Name]; n > 0 {
				a.printf("%-24s %d rows set aside in cloneiso_legacy_quarantine (user decisions)\n", t.Name, n)
			}
		}
		for _, t := range rep.Tables {
			switch {
			case t.Missing:
				a.printf("%-24s absent\n", t.Table)
			case t.Skipped:
				a.printf("%-24s already complete\n", t.Table)
			default:
				a.printf("%-24s %d batches, %d rows read, %d updated, %d without a user, %d of an unprovisioned user\n",
					t.Table, t.Batches, t.Scanned, t.Updated, t.WithoutUser, t.Unmapped)
			}
		}
	}
	if err != nil {
		return exitCode(err), err
	}
	p, err := a.m.Plan(ctx)
	if err != nil {
		return exitFailure, err
	}
	var left int64
	for _, t := range p.Tables {
		left += t.ToBackfill + t.WithoutUser
	}
	if left > 0 || len(p.NewUsers) > 0 {
		a.printf("backfill complete, but %d rows still have no clone (%d of them no user) and %d users no clone: see verify\n",
			left, p.WithoutUser, len(p.NewUsers))
		return exitDiscrepancy, nil
	}
	a.printf("backfill complete: every row has its clone\n")
	return exitOK, nil
}

func (a *app) snapshot(ctx context.Context) (int, error) {
	if !a.opts.retake {
		if err := a.m.Snapshot(ctx); err != nil {
			return exitFailure, err
		}
		a.printf("snapshot recorded (tables already recorded were kept; use --retake to record again)\n")
		return exitOK, nil
	}
	if err := a.m.RetakeSnapshot(ctx); err != nil {
		return exitFailure, err
	}
	a.printf("snapshot recorded again from the current data\n")
	return exitOK, nil
}

func (a *app) printReport(title string, r *legacy.VerifyReport) {
	if r.OK() {
		a.printf("%s: OK\n", title)
		return
	}
	a.printf("%s: %d discrepancies\n", title, len(r.Discrepancies))
	for _, d := range r.Discrepancies {
		a.printf("  %s\n", d)
	}
}

func (a *app) verify(ctx context.Context) (int, error) {
	code := exitOK
	r, err := a.m.Verify(ctx)
	if err != nil {
		return exitFailure, err
	}
	a.printf("%-24s %12s %12s %12s %14s %12s\n", "table", "rows before", "rows after", "set aside", "without clone", "wrong clone")
	for _, t := range r.Tables {
		a.printf("%-24s %12d %12d %12d %14d %12d\n", t.Table, t.RowsBefore, t.RowsAfter, t.Quarantined, t.WithoutClone, t.WrongClone)
	}
	if a.opts.perUser {
		a.printf("\nper user (table user rows-before rows-after content):\n")
		for _, t := range r.Tables {
			for _, u := range t.Users {
				same := "same"
				if u.ChecksumBefore != u.ChecksumAfter {
					same = "CHANGED"
				}
				label := u.UserID
				if label == "" {
					label = "(no user)"
				}
				a.printf("  %s %s %d %d %s\n", t.Table, label, u.RowsBefore, u.RowsAfter, same)
			}
		}
	}
	a.printReport("sql", r)
	if !r.OK() {
		code = exitDiscrepancy
	}
	if a.opts.legacyBucket != "" {
		oo, err := a.objectOptions(ctx)
		if err != nil {
			return exitFailure, err
		}
		or, err := a.m.VerifyObjects(ctx, oo)
		if err != nil {
			return exitCode(err), err
		}
		a.printReport("objects", or)
		if !or.OK() {
			code = exitDiscrepancy
		}
	}
	if a.opts.pineconeHost != "" {
		vo, closeFn, err := a.vectorOptions()
		if err != nil {
			return exitFailure, err
		}
		defer closeFn()
		vr, err := a.m.VerifyVectors(ctx, vo)
		if err != nil {
			return exitFailure, err
		}
		a.printReport("vectors", vr)
		if !vr.OK() {
			code = exitDiscrepancy
		}
	}
	return code, nil
}

func (a *app) enforce(ctx context.Context) (int, error) {
	rep, err := a.m.Enforce(ctx)
	if errors.Is(err, legacy.ErrIncomplete) {
		fmt.Fprintln(a.stderr, err)
		return exitDiscrepancy, nil
	}
	if err != nil {
		return exitFailure, err
	}
	if rep.AlreadyEnforced {
		a.printf("already enforced; schema migrations applied\n")
		return exitOK, nil
	}
	a.printf("enforced on %s\n", strings.Join(rep.Tables, ", "))
	if len(rep.CreatedTables) > 0 {
		a.printf("created: %s\n", strings.Join(rep.CreatedTables, ", "))
	}
	a.printf("next: grant the application role (migrate.AppRoleSQL) and run check\n")
	return exitOK, nil
}

func (a *app) check(ctx context.Context) (int, error) {
	db := a.db
	if a.opts.appDatabaseURL != "" {
		app, err := clonesql.OpenPostgres(a.opts.appDatabaseURL)
		if err != nil {
			return exitFailure, err
		}
		defer app.Close()
		db = app
	} else if a.opts.appRole == "" {
		return exitUsage, usagef("check needs --app-database-url (connect as the application role) or --app-role")
	}
	var extra []string
	for _, t := range a.m.Tables() {
		extra = append(extra, t.Name)
	}
	r, err := migrate.CheckIsolation(ctx, db, &migrate.CheckOptions{Role: a.opts.appRole, Schema: a.schema, Tables: extra})
	if err != nil {
		return exitFailure, err
	}
	a.printf("%s\n", r)
	if !r.OK() {
		return exitDiscrepancy, nil
	}
	return exitOK, nil
}

func (a *app) awsConfig(ctx context.Context) (aws.Config, error) {
	o := &a.opts
	lo := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(o.s3Region)}
	if o.s3AccessKey != "" {
		lo = append(lo, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.s3AccessKey, o.s3SecretKey, "")))
	}
	return awsconfig.LoadDefaultConfig(ctx, lo...)
}

func (a *app) objectOptions(ctx context.Context) (*legacy.ObjectOptions, error) {
	o := &a.opts
	if o.legacyBucket == "" {
		return nil, usagef("object steps need --legacy-bucket")
	}
	cfg, err := a.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.s3Endpoint != "" {
			so.BaseEndpoint = aws.String(o.s3Endpoint)
		}
		so.UsePathStyle = o.s3PathStyle
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	bucket := o.bucket
	if bucket == "" {
		bucket = o.legacyBucket
	}
	target, err := s3object.OpenBucket(ctx, cfg, bucket, &s3object.Options{Endpoint: o.s3Endpoint, UsePathStyle: o.s3PathStyle})
	if err != nil {
		return nil, err
	}
	oo := &legacy.ObjectOptions{Client: client, LegacyBucket: o.legacyBucket, Kind: o.objectKind,
		Target: target, DryRun: o.dryRun, Deep: o.deep, Concurrency: o.concurrency, Sanitize: o.sanitize}
	for spec := range strings.SplitSeq(o.keyTemplate, ",") {
		tmpl, kind, _ := strings.Cut(strings.TrimSpace(spec), "=")
		if kind == "" {
			kind = o.objectKind
		}
		oo.Templates = append(oo.Templates, legacy.KeyTemplate{Template: tmpl, Kind: kind})
	}
	return oo, nil
}

// printScope lists the recorded out-of-scope decisions.
func (a *app) printScope(ctx context.Context) error {
	scope, err := a.m.ObjectsOutOfScope(ctx)
	if err != nil {
		return err
	}
	for _, e := range scope {
		a.printf("  out of scope: %s (declared %s: %s)\n", e.Entry, e.DeclaredAt.UTC().Format("2006-01-02 15:04"), e.Reason)
	}
	return nil
}

// objectScope records (exclude) or withdraws (include) out-of-scope decisions.
func (a *app) objectScope(ctx context.Context, sub string) (int, error) {
	var entries []string
	for e := range strings.SplitSeq(a.opts.outOfScope, ",") {
		if e = strings.TrimSpace(e); e != "" {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		return exitUsage, usagef("objects %s needs --out-of-scope KEY_OR_PREFIX/,...", sub)
	}
	if sub == "exclude" {
		if a.opts.reason == "" {
			return exitUsage, usagef("objects exclude needs --reason (it is recorded with the decision)")
		}
		if err := a.m.DeclareObjectsOutOfScope(ctx, entries, a.opts.reason); err != nil {
			return exitCode(err), err
		}
		a.printf("recorded out of scope: %s\n", strings.Join(entries, ", "))
	} else {
		n, err := a.m.WithdrawObjectsOutOfScope(ctx, entries)
		if err != nil {
			return exitCode(err), err
		}
		a.printf("withdrawn: %d of %d entries were recorded\n", n, len(entries))
	}
	return exitOK, a.printScope(ctx)
}

func (a *app) printObjects(title string, r *legacy.ObjectReport) {
	a.printf("%s: %d legacy objects listed, %d to copy, %d copied, %d already copied, %d out of scope, %d refused, %d deleted, %d bytes, %d users\n",
		title, r.Listed, r.ToCopy, r.Copied, r.Skipped, r.OutOfScope, len(r.Problems), r.Deleted, r.Bytes, len(r.PerUser))
	if r.Sanitized > 0 || r.InClones > 0 || r.References > 0 {
		a.printf("  %d under a sanitized name; %d objects already in the clone layout; %d legacy keys named by rows, %d of them not accounted for\n",
			r.Sanitized, r.InClones, r.References, len(r.RowProblems))
	}
	for _, u := range r.PerUser {
		a.printf("  %s %d objects %d bytes\n", u.UserID, u.Objects, u.Bytes)
	}
	for _, p := range r.Problems {
		a.printf("  problem: %s (user %q): %s\n", p.Key, p.UserID, p.Reason)
	}
	for _, p := range r.RowProblems {
		a.printf("  row problem: %s (user %q): %s\n", p.Key, p.UserID, p.Reason)
	}
}

// rewriteKeys points the object key columns at the copies. It reads and writes SQL
// only, so it needs no object store settings. Its error gets the exit status of its
// kind; run prints the advice to run again after a transient one (exit 3) only.
func (a *app) rewriteKeys(ctx context.Context) (int, error) {
	n, err := a.m.RewriteObjectKeys(ctx)
	a.bar.finish()
	for t, k := range n {
		a.printf("%s: %d object keys rewritten\n", t, k)
	}
	if err != nil {
		return exitCode(err), err
	}
	return exitOK, nil
}

func (a *app) objects(ctx context.Context, sub string) (int, error) {
	if sub == "exclude" || sub == "include" {
		return a.objectScope(ctx, sub)
	}
	if sub == "rewrite-keys" {
		return a.rewriteKeys(ctx)
	}
	oo, err := a.objectOptions(ctx)
	if err != nil {
		return exitFailure, err
	}
	defer oo.Target.Close()
	var rep *legacy.ObjectReport
	switch sub {
	case "copy", "":
		rep, err = a.m.MigrateObjects(ctx, oo)
	case "verify":
		vr, err := a.m.VerifyObjects(ctx, oo)
		if err != nil {
			return exitCode(err), err
		}
		a.bar.finish()
		a.printReport("objects", vr)
		if !vr.OK() {
			return exitDiscrepancy, nil
		}
		return exitOK, nil
	case "delete-legacy":
		rep, err = a.m.DeleteLegacyObjects(ctx, oo)
	default:
		return exitUsage, usagef("objects: unknown subcommand %q (copy, verify, rewrite-keys, delete-legacy, exclude, include)", sub)
	}
	a.bar.finish()
	if rep != nil {
		a.printObjects("objects "+map[bool]string{true: "(dry run)", false: sub}[oo.DryRun], rep)
	}
	if err != nil {
		return exitCode(err), err
	}
	if !rep.OK() {
		return exitDiscrepancy, nil
	}
	return exitOK, nil
}

func (a *app) vectorOptions() (*legacy.VectorOptions, func(), error) {
	o := &a.opts
	if o.pineconeHost == "" || o.dimension <= 0 {
		return nil, nil, usagef("vector steps need --pinecone-host and --dimension")
	}
	legacyHost := o.legacyPineconeHost
	if legacyHost == "" {
		legacyHost = o.pineconeHost
	}
	src, err := pineconevector.NewDriver(legacyHost, o.dimension, &pineconevector.Options{APIKey: o.pineconeAPIKey})
	if err != nil {
		return nil, nil, err
	}
	target, err := pineconevector.Open(o.pineconeHost, o.dimension, &pineconevector.Options{APIKey: o.pineconeAPIKey})
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	closeFn := func() { src.Close(); target.Close() }
	// Read the legacy vectors with go-pinecone itself: it reaches Pinecone's default
	// namespace (which the clone-scoped driver refuses) and lists namespaces.
	var conn *pinecone.IndexConnection
	if !src.As(&conn) {
		closeFn()
		return nil, nil, fmt.Errorf("the Pinecone driver exposes no IndexConnection")
	}
	return &legacy.VectorOptions{Source: legacy.PineconeSource(conn), Layout: o.vectorLayout, NamespaceTemplate: o.namespaceTemplate,
		SharedNamespace: o.sharedNamespace, UserKey: o.userKey, Target: target, BatchSize: o.vectorBatch, DryRun: o.dryRun, Restart: o.restart}, closeFn, nil
}

func (a *app) printVectors(title string, r *legacy.VectorReport) {
	verb := "copied"
	if strings.Contains(title, "dry run") {
		verb = "to copy"
	}
	a.printf("%s: %d %s, %d already copied, %d users done earlier, %d excluded, %d deleted, %d problems\n",
		title, r.Copied, verb, r.Skipped, r.UsersDone, r.Excluded, r.Deleted, len(r.Problems))
	for _, u := range slices.Sorted(maps.Keys(r.PerUser)) {
		a.printf("  %s %d vectors\n", u, r.PerUser[u])
	}
	for _, p := range r.Problems {
		a.printf("  problem: %s (user %q): %s\n", p.Key, p.UserID, p.Reason)
	}
	if r.LeftBehind > 0 {
		a.printf("left behind in the legacy layout: %d vectors (not recorded as copied, or kept by a check; run vectors copy --restart, verify, delete-legacy again)\n", r.LeftBehind)
		for _, v := range r.LeftBehindIDs {
			a.printf("  left: %s %s\n", v.Namespace, v.ID)
		}
		if r.LeftBehind > int64(len(r.LeftBehindIDs)) {
			a.printf("  ... and %d more\n", r.LeftBehind-int64(len(r.LeftBehindIDs)))
		}
	}
}

func (a *app) vectors(ctx context.Context, sub string) (int, error) {
	vo, closeFn, err := a.vectorOptions()
	if err != nil {
		return exitUsage, err
	}
	defer closeFn()
	var rep *legacy.VectorReport
	switch sub {
	case "copy", "":
		rep, err = a.m.MigrateVectors(ctx, vo)
	case "verify":
		vr, err := a.m.VerifyVectors(ctx, vo)
		if err != nil {
			return exitFailure, err
		}
		a.bar.finish()
		a.printReport("vectors", vr)
		if !vr.OK() {
			return exitDiscrepancy, nil
		}
		return exitOK, nil
	case "exclude":
		return a.excludeVectors(ctx, vo)
	case "delete-legacy":
		rep, err = a.m.DeleteLegacyVectors(ctx, vo)
	default:
		return exitUsage, usagef("vectors: unknown subcommand %q (copy, verify, exclude, delete-legacy)", sub)
	}
	a.bar.finish()
	if rep != nil {
		a.printVectors("vectors "+map[bool]string{true: "(dry run)", false: sub}[vo.DryRun], rep)
	}
	if err != nil {
		return exitFailure, err
	}
	if !rep.OK() {
		return exitDiscrepancy, nil
	}
	return exitOK, nil
}

// excludeVectors records the operator's decision about vectors copy refused.
func (a *app) excludeVectors(ctx context.Context, vo *legacy.VectorOptions) (int, error) {
	x := legacy.VectorExclusion{Namespace: a.opts.vectorNamespace, Reason: a.opts.reason, Undo: a.opts.undo}
	for id := range strings.SplitSeq(a.opts.vectorIDs, ",") {
		if id = strings.TrimSpace(id); id != "" {
			x.IDs = append(x.IDs, id)
		}
	}
	if len(x.IDs) == 0 && x.Namespace == "" {
		return exitUsage, usagef("vectors exclude needs --vector-ids, or --vector-namespace for a whole namespace of no user")
	}
	n, err := a.m.ExcludeVectors(ctx, vo, x)
	if err != nil {
		return exitFailure, err
	}
	if x.Undo {
		a.printf("%d exclusions taken back: the next vectors copy retries them\n", n)
	} else {
		a.printf("%d excluded (%s): never copied, never deleted; vectors exclude --undo takes it back\n", n, x.Reason)
	}
	return exitOK, nil
}

func (a *app) grant(ctx context.Context) (int, error) {
	role := a.opts.appRole
	if role == "" {
		return exitUsage, usagef("grant needs --app-role")
	}
	stmts, err := a.m.AppRoleSQL(ctx, role)
	if err != nil {
		return exitFailure, err
	}
	if _, err := a.db.ExecContext(ctx, stmts); err != nil {
		return exitFailure, err
	}
	a.printf("granted %s:\n%s", role, stmts)
	return exitOK, nil
}

func (a *app) rollbackSQL(ctx context.Context) (int, error) {
	script, err := a.m.RollbackSQL(ctx)
	if err != nil {
		return exitFailure, err
	}
	a.printf("%s", script)
	return exitOK, nil
}
