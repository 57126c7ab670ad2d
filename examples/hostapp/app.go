package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/ingest/embed/openaiembed"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/rag/generate/openaigen"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
)

// App is the host application: the SDK's stores wired together behind one
// http.Handler. Build it with newApp and release it with Close.
type App struct {
	Handler http.Handler

	cfg       Config
	log       *slog.Logger
	raw       *sqlx.DB
	db        *clonesql.DB
	tenants   *tenant.Store
	admin     *tenant.Admin
	index     *vectorstore.Index
	bucket    *objectstore.Bucket
	pipeline  *ingest.Pipeline
	processor *rag.Processor
	sink      audit.Sink
	devSecret []byte // signs development tokens; nil outside development mode
	backends  string // what each store runs on, for the start-up log
}

// newApp opens every store cfg names (the embedded defaults for those it leaves empty)
// and returns the app. Nothing is listening yet.
func newApp(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Addr
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.MaxUploadBytes == 0 {
		cfg.MaxUploadBytes = ingest.DefaultMaxDocumentBytes
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	var used []string

	// SQL: the tenants, the clones' records and the audit log's hash chain.
	if a.raw, err = openSQL(ctx, cfg); err != nil {
		return nil, err
	}
	used = append(used, "sql="+a.raw.DriverName())
	sink := audit.Multi(clonesql.AuditSink(a.raw), audit.SlogSink(log))
	a.sink = sink
	if a.db, err = clonesql.New(a.raw, &clonesql.Options{Audit: sink}); err != nil {
		return nil, err
	}
	cache := clonehttp.NewCache(nil) // resolutions, invalidated by every revocation through the store
	if a.tenants, err = tenant.NewStore(a.raw, &tenant.StoreOptions{Cache: cache}); err != nil {
		return nil, err
	}
	guard := a.tenants.Guard() // only provisioned, active clones may write vectors and objects

	emb, err := openEmbedder(cfg)
	if err != nil {
		return nil, err
	}
	used = append(used, "embedder="+emb.Model())

	// Vectors: one namespace per clone, derived from the clone context.
	vopts := &vectorstore.Options{Audit: sink, CheckWritable: guard.CheckWritable}
	if cfg.PineconeHost != "" {
		a.index, err = pineconevector.Open(cfg.PineconeHost, emb.Dimension(),
			&pineconevector.Options{APIKey: cfg.PineconeAPIKey, SourceTag: "cloneiso_hostapp", Index: vopts})
		used = append(used, "vectors=pinecone")
	} else {
		// Durable: every write is in an fsynced write-ahead log before it returns.
		path := filepath.Join(cfg.DataDir, "vectors.idx")
		if err := adoptLegacyIndex(cfg.DataDir, path); err != nil {
			return nil, err
		}
		a.index, err = memvector.Open(emb.Dimension(), &memvector.Options{Path: path, Index: vopts})
		used = append(used, "vectors=embedded")
	}
	if err != nil {
		return nil, err
	}

	// Objects: one key prefix per clone; the embedded store serves its signed links itself.
	mux := http.NewServeMux()
	oopts := &objectstore.Options{Audit: sink, CheckClone: guard.CheckClone}
	if cfg.S3Bucket != "" {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		sopts := &s3object.Options{Endpoint: cfg.S3Endpoint, UsePathStyle: cfg.S3Endpoint != "", Bucket: oopts}
		if cfg.S3RoleARN != "" {
			sopts.Scoped = &s3object.ScopedOptions{RoleARN: cfg.S3RoleARN}
		}
		a.bucket, err = s3object.OpenBucket(ctx, awsCfg, cfg.S3Bucket, sopts)
		if err != nil {
			return nil, err
		}
		used = append(used, "objects=s3")
	} else {
		key := []byte(cfg.FileSigningKey)
		if len(key) == 0 {
			key = []byte(rand.Text() + rand.Text())
		}
		fopts := &fileobject.Options{SigningKey: key, BaseURL: cfg.PublicURL + "/files", Bucket: oopts}
		dir := filepath.Join(cfg.DataDir, "files")
		if a.bucket, err = fileobject.OpenBucket(dir, fopts); err != nil {
			return nil, err
		}
		files, err := fileobject.NewHandler(dir, fopts)
		if err != nil {
			return nil, err
		}
		mux.Handle("/files/", files) // signed links: no bearer token, the signature is the credential
		used = append(used, "objects=filesystem")
	}

	// Ingestion and answering.
	if a.pipeline, err = ingest.New(a.db, a.index, a.bucket, emb,
		&ingest.Options{MaxDocumentBytes: cfg.MaxUploadBytes}); err != nil {
		return nil, err
	}
	retriever, err := rag.NewRetriever(a.db, a.index, emb, nil)
	if err != nil {
		return nil, err
	}
	gen, err := openGenerator(cfg)
	if err != nil {
		return nil, err
	}
	used = append(used, "generator="+gen.Model())
	if a.processor, err = rag.NewProcessor(a.db, retriever, gen,
		&rag.ProcessorOptions{Profile: rag.TenantProfile(a.tenants, ""), QueryTurns: 1, Audit: sink}); err != nil {
		return nil, err
	}

	// Authentication and the middleware that turns a token into a clone context.
	if a.admin, err = tenant.NewAdmin(a.tenants, &tenant.AdminOptions{
		Audit: sink, Vectors: a.index, Objects: a.bucket}); err != nil {
		return nil, err
	}
	auth, err := a.authenticator(ctx)
	if err != nil {
		return nil, err
	}
	protect := clonehttp.Middleware(auth, a.tenants, &clonehttp.Options{Audit: sink, Logger: log, Cache: cache})
	mux.Handle("/v1/", protect(a.routes()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if cfg.Dev {
		mux.HandleFunc("GET /dev/token", a.devToken)
	}
	a.Handler = mux
	a.backends = strings.Join(used, " ")
	return a, nil
}

// openSQL opens PostgreSQL as the application role (migrating first with the owner's
// URL, if given, and refusing to start if the role could reach another clone's rows),
// or the embedded SQLite database.
func openSQL(ctx context.Context, cfg Config) (*sqlx.DB, error) {
	if cfg.DatabaseURL == "" {
		db, err := clonesql.OpenSQLite(filepath.Join(cfg.DataDir, "cloneiso.db"))
		if err != nil {
			return nil, err
		}
		if err := migrate.Up(ctx, db.DB, nil); err != nil {
			db.Close()
			return nil, err
		}
		return db, nil
	}
	if cfg.MigrateURL != "" {
		if err := migrateAndGrant(ctx, cfg); err != nil {
			return nil, fmt.Errorf("migrating: %w", err)
		}
	}
	db, err := openPostgres(cfg, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	report, err := migrate.CheckIsolation(ctx, db.DB, nil)
	if err == nil && !report.OK() {
		err = fmt.Errorf("the database does not isolate clones for this role:\n%s", report)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// migrateAndGrant applies the migrations as the schema owner and grants the
// application role (the user of CLONEISO_DATABASE_URL) what it needs on the tables, and
// no more.
func migrateAndGrant(ctx context.Context, cfg Config) error {
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil || u.User == nil || u.User.Username() == "" {
		return errors.New("CLONEISO_DATABASE_URL must be a postgres:// URL naming the application role")
	}
	owner, err := openPostgres(cfg, cfg.MigrateURL)
	if err != nil {
		return err
	}
	defer owner.Close()
	if err := migrate.Up(ctx, owner.DB, nil); err != nil {
		return err
	}
	_, err = owner.ExecContext(ctx, migrate.AppRoleSQL(u.User.Username(), ""))
	return err
}

// openPostgres opens a PostgreSQL URL with the configured driver: pgx unless
// CLONEISO_DATABASE_DRIVER=libpq.
func openPostgres(cfg Config, dsn string) (*sqlx.DB, error) {
	if cfg.DatabaseDriver == "libpq" {
		return clonesql.OpenPostgres(dsn)
	}
	return clonesql.OpenPgx(dsn)
}

func openEmbedder(cfg Config) (embed.Embedder, error) {
	if cfg.EmbeddingModel == "" {
		return embed.NewLocal(nil)
	}
	return openaiembed.New(&openaiembed.Options{BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey,
		Model: cfg.EmbeddingModel, Dimension: cfg.EmbeddingDimension})
}

func openGenerator(cfg Config) (generate.Generator, error) {
	if cfg.ChatModel == "" {
		return generate.NewExtractive(nil)
	}
	return openaigen.New(&openaigen.Options{Model: cfg.ChatModel, BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey})
}

// authenticator verifies bearer tokens: with the configured HS256 secret or JWKS URL,
// or in development mode with a secret made up now (unless one is configured).
func (a *App) authenticator(ctx context.Context) (clonehttp.Authenticator, error) {
	if a.cfg.JWKSURL != "" {
		return jwtauth.NewJWKS(ctx, a.cfg.JWTIssuer, a.cfg.JWTAudience, a.cfg.JWKSURL, nil)
	}
	secret := []byte(a.cfg.JWTSecret)
	if len(secret) == 0 {
		secret = []byte(rand.Text() + rand.Text())
	}
	if a.cfg.Dev {
		a.devSecret = secret
	}
	return jwtauth.NewHMAC(a.cfg.JWTIssuer, a.cfg.JWTAudience, secret, nil)
}

// adoptLegacyIndex renames the index file of earlier releases (vectors.gob, written only
// on shutdown) to path, where memvector reads it once and rewrites it in its current
// format.
func adoptLegacyIndex(dataDir, path string) error {
	old := filepath.Join(dataDir, "vectors.gob")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if _, err := os.Stat(old); err != nil {
		return nil
	}
	return os.Rename(old, path)
}

// Close releases every store.
func (a *App) Close() error {
	var errs []error
	if a.index != nil {
		errs = append(errs, a.index.Close())
	}
	if a.bucket != nil {
		errs = append(errs, a.bucket.Close())
	}
	if a.raw != nil {
		errs = append(errs, a.raw.Close())
	}
	return errors.Join(errs...)
}
