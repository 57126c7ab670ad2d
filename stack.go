package cloneiso

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	objdriver "github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	vecdriver "github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// Names of the embedded stores in Options.Dir.
const (
	// VectorsFile is the embedded vector index's snapshot in Options.Dir (its
	// write-ahead logs are kept next to it; see package memvector).
	VectorsFile = "vectors.idx"
	// FilesDir is the embedded object store's directory in Options.Dir.
	FilesDir = "files"
)

// Options configure [New]. A nil *Options, and every zero field, means the default.
type Options struct {
	// Vectors is the vector index's driver, e.g. from pineconevector.NewDriver or
	// memvector.NewDriver; its dimension must be the embedder's. New wraps it with the
	// tenant store's write check and the audit sink. Default: the embedded index,
	// durable in Dir/VectorsFile.
	Vectors vecdriver.Index
	// Objects is the object store's driver, e.g. from s3object.OpenDriver or
	// fileobject.OpenDriver. New wraps it with the tenant store's clone check and the
	// audit sink. Default: the embedded store in Dir/FilesDir.
	Objects objdriver.Bucket
	// Dir is where the embedded defaults of Vectors and Objects keep their data. It is
	// required when either is nil (New fails without it: the SDK never picks a
	// directory for a host's data).
	Dir string
	// FilesURL is the absolute URL at which the host serves [Stack.FileHandler], e.g.
	// "https://app.example.com/files": the embedded object store's signed links and
	// upload tickets point there. Default: none (the embedded store then signs no
	// links; a driver passed in Objects signs its own).
	FilesURL string
	// FileSigningKey is the HMAC key of the embedded store's links (at least 32 bytes).
	// Default: a random key per process (links die with it; set one to keep them valid
	// across restarts and processes).
	FileSigningKey []byte
	// Audit receives every audit event of every layer (denials, violations,
	// administration, offboarding), besides the SQL audit log that is always written
	// (clonesql.AuditSink: the per-tenant hash chain that tenant.Admin reads and
	// verifies). Default: audit.SlogSink(Logger).
	Audit audit.Sink
	// Logger receives the middleware's access log and, by default, the audit events.
	// Default: slog.Default().
	Logger *slog.Logger
	// Cache tunes the resolution cache the middleware reads and every revocation
	// through the tenant store invalidates. Default: clonehttp.NewCache(nil).
	Cache *clonehttp.CacheOptions
	// Ingest tunes the ingestion pipeline (document size limit, workers, chunking).
	Ingest *ingest.Options
	// Processor tunes answering. Its Profile defaults to rag.TenantProfile (the clone's
	// name), its Audit to the stack's sink.
	Processor *rag.ProcessorOptions
	// Admin tunes tenant administration (the host's own clone-owned tables,
	// break-glass limits, the two-person rule). Its Audit, Vectors and Objects are
	// always the stack's.
	Admin *tenant.AdminOptions
	// Isolation tunes the start-up isolation check on PostgreSQL (see New). Its Tables
	// default to Admin.Tables.
	Isolation *migrate.CheckOptions
	// SkipIsolationCheck turns the start-up isolation check off, for a deployment that
	// runs it (or cloneiso-doctor) elsewhere before the application starts.
	SkipIsolationCheck bool
}

// Stack is the SDK wired together: the tenant store, the clone-scoped SQL database,
// vector index and object bucket, the ingestion pipeline, the retriever and processor
// that answer, tenant administration, and the HTTP middleware that turns a request
// into a clone. Every part shares one audit sink and one resolution cache, and the
// vector and object stores accept writes for provisioned, active clones only (the
// tenant store's [tenant.Guard] hooks), so a host cannot forget any of them.
//
// A Stack is safe for concurrent use. Release it with [Stack.Close].
type Stack struct {
	sql       *clonesql.DB
	tenants   *tenant.Store
	admin     *tenant.Admin
	cache     *clonehttp.Cache
	sink      audit.Sink
	logger    *slog.Logger
	index     *vectorstore.Index
	bucket    *objectstore.Bucket
	files     *fileobject.Handler
	pipeline  *ingest.Pipeline
	retriever *rag.Retriever
	processor *rag.Processor
}

// New wires the SDK on db, embedding with embedder and answering with generator.
//
// db is the SQL database migrated by package migrate (PostgreSQL, opened as the
// application role, which owns nothing and cannot bypass row-level security — check
// it with migrate.CheckIsolation at start-up — or SQLite, the embedded default, from
// clonesql/sqlitedb.Open). The host keeps ownership of db: [Stack.Close] does not close
// it.
//
// embedder and generator are required, and nil is an error of kind
// clone.ErrInvalidInput: the embedder is both the one documents are ingested with and
// the one questions are embedded with (embed.NewLocal is the embedded, offline one;
// ingest/embed/openaiembed any OpenAI-compatible API), and the generator writes the
// answers (generate.NewExtractive is the embedded one; rag/generate/openaigen any
// OpenAI-compatible chat API). There is no silent default for either.
//
// On PostgreSQL, New refuses to start (clone.ErrInternal, with the report) unless
// migrate.CheckIsolation finds db's role unable to reach another clone's rows: a
// superuser, a table owner, a BYPASSRLS role, an unforced or fail-open policy and the
// other misconfigurations it lists (Options.SkipIsolationCheck turns this off). If the
// check cannot run, New fails with its error.
//
// The vector and object stores are the drivers in opts, or the embedded ones in
// opts.Dir. On success the Stack owns the drivers and closes them in Close; on error,
// drivers passed in are left to the caller. New pings db with ctx.
func New(ctx context.Context, db *sql.DB, embedder embed.Embedder, generator generate.Generator, opts *Options) (_ *Stack, err error) {
	const op = "cloneiso.New"
	o, err := checkArgs(db, embedder, generator, opts)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		return nil, clonesql.ClassifyError(op, err)
	}
	dialect, err := clonesql.DialectOf(db)
	if err != nil {
		return nil, err
	}
	if dialect == clonesql.Postgres && !o.SkipIsolationCheck {
		if err := checkIsolation(ctx, db, &o); err != nil {
			return nil, err
		}
	}

	s := &Stack{logger: o.Logger}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	var opened []func() error // the embedded drivers New opened, closed if it fails
	defer func() {
		if err != nil {
			for _, c := range opened {
				c()
			}
		}
	}()

	// One audit sink for every layer: the SQL hash chain, and the host's sink.
	extra := o.Audit
	if extra == nil {
		extra = audit.SlogSink(s.logger)
	}
	s.sink = audit.Multi(clonesql.AuditSink(db), extra)
	if s.sql, err = clonesql.New(db, &clonesql.Options{Audit: s.sink}); err != nil {
		return nil, err
	}

	// The tenant store invalidates the middleware's cache on every revocation, and its
	// guard lets only provisioned, active clones write vectors and objects.
	s.cache = clonehttp.NewCache(o.Cache)
	if s.tenants, err = tenant.NewStore(db, &tenant.StoreOptions{Cache: s.cache}); err != nil {
		return nil, err
	}
	if err := s.openStores(&o, embedder.Dimension(), &opened); err != nil {
		return nil, err
	}
	if err := s.wireServices(&o, embedder, generator); err != nil {
		return nil, err
	}
	return s, nil
}

// checkArgs refuses what New cannot start with and returns the options to use.
func checkArgs(db *sql.DB, embedder embed.Embedder, generator generate.Generator, opts *Options) (Options, error) {
	const op = "cloneiso.New"
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case db == nil:
		return o, errs.New(errs.InvalidInput, op, "a database is required")
	case embedder == nil:
		return o, errs.New(errs.InvalidInput, op, "an embedder is required (embed.NewLocal is the embedded one)")
	case generator == nil:
		return o, errs.New(errs.InvalidInput, op, "a generator is required (generate.NewExtractive is the embedded one)")
	case (o.Vectors == nil || o.Objects == nil) && o.Dir == "":
		return o, errs.New(errs.InvalidInput, op, "Options.Dir is required for the embedded vector or object store (or pass both drivers)")
	case o.Vectors != nil && o.Vectors.Dimension() != embedder.Dimension():
		return o, errs.New(errs.InvalidInput, op, "the vector index's dimension %d differs from the embedder's %d", o.Vectors.Dimension(), embedder.Dimension())
	}
	return o, nil
}

// openStores opens the vector index and the object bucket on the drivers in o, or on
// the embedded ones in o.Dir (appending their Close to opened), each behind the tenant
// store's guard.
func (s *Stack) openStores(o *Options, dim int, opened *[]func() error) error {
	guard := s.tenants.Guard()
	vectors := o.Vectors
	if vectors == nil {
		d, err := memvector.NewDriver(dim, &memvector.Options{Path: filepath.Join(o.Dir, VectorsFile)})
		if err != nil {
			return err
		}
		*opened = append(*opened, d.Close)
		vectors = d
	}
	var err error
	if s.index, err = vectorstore.NewIndex(vectors, &vectorstore.Options{Audit: s.sink, CheckWritable: guard.CheckWritable}); err != nil {
		return err
	}

	objects := o.Objects
	if objects == nil {
		if objects, s.files, err = embeddedFiles(filepath.Join(o.Dir, FilesDir), o.FilesURL, o.FileSigningKey); err != nil {
			return err
		}
		*opened = append(*opened, objects.Close)
		if s.files != nil {
			*opened = append(*opened, s.files.Close)
		}
	}
	s.bucket, err = objectstore.NewBucket(objects, &objectstore.Options{Audit: s.sink, CheckClone: guard.CheckClone})
	return err
}

// wireServices builds ingestion, retrieval, the message processor and tenant
// administration on the stack's stores.
func (s *Stack) wireServices(o *Options, embedder embed.Embedder, generator generate.Generator) error {
	var err error
	if s.pipeline, err = ingest.New(s.sql, s.index, s.bucket, embedder, o.Ingest); err != nil {
		return err
	}
	if s.retriever, err = rag.NewRetriever(s.sql, s.index, embedder, &rag.RetrieverOptions{Audit: s.sink}); err != nil {
		return err
	}
	var po rag.ProcessorOptions
	if o.Processor != nil {
		po = *o.Processor
	}
	if po.Profile == nil {
		po.Profile = rag.TenantProfile(s.tenants, "")
	}
	if po.Audit == nil {
		po.Audit = s.sink
	}
	if s.processor, err = rag.NewProcessor(s.sql, s.retriever, generator, &po); err != nil {
		return err
	}

	var ao tenant.AdminOptions
	if o.Admin != nil {
		ao = *o.Admin
	}
	ao.Audit, ao.Vectors, ao.Objects = s.sink, s.index, s.bucket
	s.admin, err = tenant.NewAdmin(s.tenants, &ao)
	return err
}

// checkIsolation runs migrate.CheckIsolation for db's role and fails unless it finds
// nothing.
func checkIsolation(ctx context.Context, db *sql.DB, o *Options) error {
	var co migrate.CheckOptions
	if o.Isolation != nil {
		co = *o.Isolation
	}
	if co.Tables == nil && o.Admin != nil {
		co.Tables = o.Admin.Tables
	}
	report, err := migrate.CheckIsolation(ctx, db, &co)
	if err != nil {
		return err
	}
	if !report.OK() {
		return errs.New(errs.Internal, "cloneiso.New", "the database does not isolate clones for this role:\n%s", report)
	}
	return nil
}

// embeddedFiles opens the embedded object store in dir, and its handler of signed
// links when baseURL is set.
func embeddedFiles(dir, baseURL string, key []byte) (objdriver.Bucket, *fileobject.Handler, error) {
	if baseURL == "" {
		d, err := fileobject.OpenDriver(dir, nil)
		return d, nil, err
	}
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key) // never fails (crypto/rand)
	}
	fo := &fileobject.Options{SigningKey: key, BaseURL: baseURL}
	h, err := fileobject.NewHandler(dir, fo)
	if err != nil {
		return nil, nil, err
	}
	d, err := fileobject.OpenDriver(dir, fo)
	if err != nil {
		return nil, nil, errors.Join(err, h.Close())
	}
	return d, h, nil
}

// Middleware returns the HTTP middleware that authenticates each request with auth,
// resolves it to a clone through the tenant store (provisioning a solo clone on first
// sign-in) and puts the clone.CloneContext in the request's context (see
// clonehttp.Middleware). opts may tune it (a selector, RequireSelection, ...); its
// Audit and Logger default to the stack's, and its Cache is always the stack's, which
// every revocation through [Stack.Tenants] and [Stack.Admin] invalidates (set NoCache
// to resolve every request against the store instead).
//
// Middleware panics if auth is nil.
func (s *Stack) Middleware(auth clonehttp.Authenticator, opts *clonehttp.Options) func(http.Handler) http.Handler {
	var o clonehttp.Options
	if opts != nil {
		o = *opts
	}
	if o.Audit == nil {
		o.Audit = s.sink
	}
	if o.Logger == nil {
		o.Logger = s.logger
	}
	o.Cache = s.cache
	return clonehttp.Middleware(auth, s.tenants, &o)
}

// Tenants returns the tenant store: tenants, clones, members and grants, first-sign-in
// provisioning. Revocations through it take effect at the next request.
func (s *Stack) Tenants() *tenant.Store { return s.tenants }

// Admin returns tenant administration (suspension, grants, break-glass access,
// inventory, offboarding of every store, the audit log).
func (s *Stack) Admin() *tenant.Admin { return s.admin }

// DB returns the clone-scoped SQL database, for package clone/records and the host's
// own clone-owned tables.
func (s *Stack) DB() *clonesql.DB { return s.sql }

// Index returns the clone-scoped vector index.
func (s *Stack) Index() *vectorstore.Index { return s.index }

// Bucket returns the clone-scoped object bucket.
func (s *Stack) Bucket() *objectstore.Bucket { return s.bucket }

// Pipeline returns the ingestion pipeline.
func (s *Stack) Pipeline() *ingest.Pipeline { return s.pipeline }

// Retriever returns the retriever (the same embedder as the pipeline's).
func (s *Stack) Retriever() *rag.Retriever { return s.retriever }

// Processor returns the processor that answers questions in conversations.
func (s *Stack) Processor() *rag.Processor { return s.processor }

// Audit returns the audit sink every part of the stack writes to.
func (s *Stack) Audit() audit.Sink { return s.sink }

// Cache returns the resolution cache the middleware reads (for hosts that must
// invalidate it after changes made outside the tenant store, e.g. in another process).
func (s *Stack) Cache() *clonehttp.Cache { return s.cache }

// FileHandler returns the handler of the embedded object store's signed links and
// upload tickets, to be mounted at Options.FilesURL with the full path (for
// Options.FilesURL "https://host/files": mux.Handle("/files/", h)). It needs no bearer
// token: the signature is the credential. It is nil when the objects are not in the
// embedded store or Options.FilesURL is empty.
func (s *Stack) FileHandler() http.Handler {
	if s.files == nil {
		return nil // not a typed nil in a non-nil interface
	}
	return s.files
}

// Close closes the vector index, the object bucket (and so their drivers) and the
// embedded file handler. It does not close the database.
func (s *Stack) Close() error {
	err := errors.Join(s.index.Close(), s.bucket.Close())
	if s.files != nil {
		err = errors.Join(err, s.files.Close())
	}
	return err
}
