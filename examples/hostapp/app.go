package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/cloneiso/cloneiso"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/ingest/embed/openaiembed"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	objdriver "github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/rag/generate/openaigen"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	vecdriver "github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
)

// App is the host application: the SDK's stores wired together behind one
// http.Handler. Build it with newApp and release it with Close.
type App struct {
	Handler http.Handler

	cfg       Config
	log       *slog.Logger
	raw       *sql.DB
	sdk       *cloneiso.Stack // the SDK wired by cloneiso.New; the fields below are its parts
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
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	// The host's choices: the database, the embedder and generator, the vendor stores.
	if a.raw, err = openSQL(ctx, cfg); err != nil {
		return nil, err
	}
	emb, gen, err := openModels(cfg)
	if err != nil {
		return nil, err
	}
	vectors, objects, err := openDrivers(ctx, cfg, emb.Dimension())
	if err != nil {
		return nil, err
	}
	// The SDK, wired in one call: tenant store, guard hooks, resolution cache, audit
	// sink (the SQL hash chain and the log), scoped stores, ingestion and answering.
	a.sdk, err = cloneiso.New(ctx, a.raw, emb, gen, &cloneiso.Options{
		Vectors: vectors, Objects: objects, Dir: cfg.DataDir, Logger: log,
		FilesURL: cfg.PublicURL + "/files", FileSigningKey: []byte(cfg.FileSigningKey),
		Ingest:    &ingest.Options{MaxDocumentBytes: cfg.MaxUploadBytes},
		Processor: &rag.ProcessorOptions{QueryTurns: 1}})
	if err != nil {
		return nil, err
	}
	a.db, a.tenants, a.admin, a.sink = a.sdk.DB(), a.sdk.Tenants(), a.sdk.Admin(), a.sdk.Audit()
	a.index, a.bucket, a.pipeline, a.processor = a.sdk.Index(), a.sdk.Bucket(), a.sdk.Pipeline(), a.sdk.Processor()
	auth, err := a.authenticator(ctx)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	if files := a.sdk.FileHandler(); files != nil {
		mux.Handle("/files/", files) // signed links: no bearer token, the signature is the credential
	}
	mux.Handle("/v1/", a.sdk.Middleware(auth, nil)(a.routes()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if cfg.Dev {
		mux.HandleFunc("GET /dev/token", a.devToken)
	}
	a.Handler = mux
	a.backends = backends(cfg, emb, gen)
	return a, nil
}

// withDefaults validates c and fills in what newApp derives: the public URL and the
// upload limit; it creates the data directory.
func (c Config) withDefaults() (Config, error) {
	if err := c.validate(); err != nil {
		return c, err
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Addr
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = ingest.DefaultMaxDocumentBytes
	}
	return c, os.MkdirAll(c.DataDir, 0o700)
}

// openDrivers opens the vector and object drivers cfg names: Pinecone and S3, or nil
// for the SDK's embedded stores in the data directory (an index file of earlier
// releases adopted first).
func openDrivers(ctx context.Context, cfg Config, dim int) (vecdriver.Index, objdriver.Bucket, error) {
	var vectors vecdriver.Index
	if cfg.PineconeHost != "" {
		d, err := pineconevector.NewDriver(cfg.PineconeHost, dim, &pineconevector.Options{APIKey: cfg.PineconeAPIKey, SourceTag: "cloneiso_hostapp"})
		if err != nil {
			return nil, nil, err
		}
		vectors = d
	} else if err := adoptLegacyIndex(cfg.DataDir, filepath.Join(cfg.DataDir, cloneiso.VectorsFile)); err != nil {
		return nil, nil, err
	}
	if cfg.S3Bucket == "" {
		return vectors, nil, nil
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	var objects objdriver.Bucket
	if err == nil {
		sopts := &s3object.Options{Endpoint: cfg.S3Endpoint, UsePathStyle: cfg.S3Endpoint != ""}
		if cfg.S3RoleARN != "" {
			sopts.Scoped = &s3object.ScopedOptions{RoleARN: cfg.S3RoleARN}
		}
		objects, err = s3object.OpenDriver(ctx, awsCfg, cfg.S3Bucket, sopts)
	}
	if err != nil && vectors != nil {
		vectors.Close()
	}
	return vectors, objects, err
}

// backends says what each store runs on, for the start-up log.
func backends(cfg Config, emb embed.Embedder, gen generate.Generator) string {
	vectors, objects := "embedded", "filesystem"
	if cfg.PineconeHost != "" {
		vectors = "pinecone"
	}
	if cfg.S3Bucket != "" {
		objects = "s3"
	}
	return "sql=" + sqlDriverName(cfg) + " embedder=" + emb.Model() + " vectors=" + vectors + " objects=" + objects + " generator=" + gen.Model()
}

// sqlDriverName names the database/sql driver openSQL uses.
func sqlDriverName(cfg Config) string {
	switch {
	case cfg.DatabaseURL == "":
		return "sqlite"
	case cfg.DatabaseDriver == "libpq":
		return "postgres"
	}
	return "pgx"
}

// openSQL opens PostgreSQL as the application role (migrating first with the owner's
// URL, if given; cloneiso.New then refuses to start if the role could reach another
// clone's rows), or the embedded SQLite database, migrated.
func openSQL(ctx context.Context, cfg Config) (*sql.DB, error) {
	if cfg.DatabaseURL == "" {
		db, err := sqlitedb.Open(filepath.Join(cfg.DataDir, "cloneiso.db"))
		if err != nil {
			return nil, err
		}
		if err := migrate.Up(ctx, db, nil); err != nil {
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
	return openPostgres(cfg, cfg.DatabaseURL) // cloneiso.New checks that the role isolates clones
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
	if err := migrate.Up(ctx, owner, nil); err != nil {
		return err
	}
	_, err = owner.ExecContext(ctx, migrate.AppRoleSQL(u.User.Username(), ""))
	return err
}

// openPostgres opens a PostgreSQL URL with the configured driver: pgx unless
// CLONEISO_DATABASE_DRIVER=libpq.
func openPostgres(cfg Config, dsn string) (*sql.DB, error) {
	if cfg.DatabaseDriver == "libpq" {
		return clonesql.OpenPostgres(dsn)
	}
	return clonesql.OpenPgx(dsn)
}

// openModels returns the embedder and the generator cfg names: an OpenAI-compatible
// API's, or the local embedder and the extractive generator.
func openModels(cfg Config) (emb embed.Embedder, gen generate.Generator, err error) {
	if cfg.EmbeddingModel == "" {
		emb, err = embed.NewLocal(nil)
	} else {
		emb, err = openaiembed.New(&openaiembed.Options{BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey,
			Model: cfg.EmbeddingModel, Dimension: cfg.EmbeddingDimension})
	}
	if err != nil {
		return nil, nil, err
	}
	if cfg.ChatModel == "" {
		gen, err = generate.NewExtractive(nil)
	} else {
		gen, err = openaigen.New(&openaigen.Options{Model: cfg.ChatModel, BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey})
	}
	return emb, gen, err
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
	if a.sdk != nil {
		errs = append(errs, a.sdk.Close())
	}
	if a.raw != nil {
		errs = append(errs, a.raw.Close())
	}
	return errors.Join(errs...)
}
