package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Config is everything the host app can be told. Every empty field means the embedded
// default; configFromEnv reads it from the environment variables named in each comment
// (the README's configuration reference lists them too).
type Config struct {
	// Addr is the listen address (CLONEISO_ADDR, default 127.0.0.1:8080).
	Addr string
	// PublicURL is the URL clients reach the app at, used in signed links to files on
	// the embedded object store (CLONEISO_PUBLIC_URL, default http://<Addr>).
	PublicURL string
	// DataDir holds the embedded stores: cloneiso.db (SQLite), files/ (objects) and
	// vectors.idx with its write-ahead logs vectors.idx.wal.* (CLONEISO_DATA_DIR,
	// default ./cloneiso-data).
	DataDir string
	// Dev enables development mode: a random token secret unless JWTSecret is set, and
	// GET /dev/token?sub=NAME minting tokens for anyone. Never in production
	// (flag -dev or CLONEISO_DEV=1).
	Dev bool

	// JWTSecret verifies HS256 tokens (CLONEISO_JWT_SECRET, at least 32 bytes);
	// JWKSURL verifies tokens of an identity provider instead (CLONEISO_JWKS_URL).
	JWTSecret, JWKSURL string
	// JWTIssuer and JWTAudience are the required "iss" and "aud" claims
	// (CLONEISO_JWT_ISSUER, CLONEISO_JWT_AUDIENCE; default cloneiso-hostapp / cloneiso).
	JWTIssuer, JWTAudience string

	// DatabaseURL is a PostgreSQL URL of the application role, which must own nothing
	// and have neither SUPERUSER nor BYPASSRLS (CLONEISO_DATABASE_URL); "" means SQLite
	// in DataDir. MigrateURL, if set, is the schema owner's URL: the app runs the
	// migrations with it at start-up (CLONEISO_MIGRATE_DATABASE_URL).
	DatabaseURL, MigrateURL string
	// DatabaseDriver opens the PostgreSQL URLs: "pgx" (the default; one round trip per
	// scoped operation, see clonesql.OpenPgx) or "libpq" (three; clonesql.OpenPostgres)
	// (CLONEISO_DATABASE_DRIVER).
	DatabaseDriver string

	// S3Bucket stores objects in S3 instead of DataDir (CLONEISO_S3_BUCKET).
	// S3Endpoint is an S3-compatible server such as MinIO, addressed path-style
	// (CLONEISO_S3_ENDPOINT). Credentials and region come from the AWS SDK's usual
	// chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, profiles, roles).
	S3Bucket, S3Endpoint string
	// S3RoleARN makes upload tickets and links signed with short-lived STS credentials
	// of this role, narrowed to the clone's prefix by a session policy, so S3 itself
	// refuses any other key (CLONEISO_S3_ROLE_ARN; MinIO ignores the role but not the
	// policy, so any ARN enables it there).
	S3RoleARN string
	// FileSigningKey signs links to the embedded object store (CLONEISO_FILE_SIGNING_KEY,
	// at least 32 bytes; default random per process, so links die with it).
	FileSigningKey string

	// PineconeHost is the host of a Pinecone index (CLONEISO_PINECONE_HOST, e.g.
	// https://clones-abc123.svc.aped-4627-b74a.pinecone.io) whose dimension is the
	// embedder's; PineconeAPIKey is its key (PINECONE_API_KEY). "" means the embedded
	// index persisted in DataDir.
	PineconeHost, PineconeAPIKey string

	// OpenAIBaseURL and OpenAIAPIKey locate an OpenAI-compatible API
	// (CLONEISO_OPENAI_BASE_URL, OPENAI_API_KEY). EmbeddingModel switches the embedder
	// to it (CLONEISO_EMBEDDING_MODEL, with CLONEISO_EMBEDDING_DIMENSION for models
	// other than OpenAI's) and ChatModel the generator (CLONEISO_CHAT_MODEL). Empty
	// models mean the local embedder and the extractive generator.
	OpenAIBaseURL, OpenAIAPIKey string
	EmbeddingModel, ChatModel   string
	EmbeddingDimension          int

	// MaxUploadBytes caps a document (CLONEISO_MAX_UPLOAD_BYTES, default 32 MiB).
	MaxUploadBytes int64

	// RepairTimeout bounds the repair of every clone that runs at start-up beside the
	// server (CLONEISO_REPAIR_TIMEOUT, a Go duration such as 10m; default 5m; negative
	// disables it). Tenant admins can repair their clone any time with POST /v1/repair.
	RepairTimeout time.Duration
}

// configFromEnv reads a Config from the environment.
func configFromEnv() (Config, error) {
	c := Config{
		Addr:           env("CLONEISO_ADDR", "127.0.0.1:8080"),
		PublicURL:      os.Getenv("CLONEISO_PUBLIC_URL"),
		DataDir:        env("CLONEISO_DATA_DIR", "cloneiso-data"),
		JWTSecret:      os.Getenv("CLONEISO_JWT_SECRET"),
		JWKSURL:        os.Getenv("CLONEISO_JWKS_URL"),
		JWTIssuer:      env("CLONEISO_JWT_ISSUER", "cloneiso-hostapp"),
		JWTAudience:    env("CLONEISO_JWT_AUDIENCE", "cloneiso"),
		DatabaseURL:    os.Getenv("CLONEISO_DATABASE_URL"),
		MigrateURL:     os.Getenv("CLONEISO_MIGRATE_DATABASE_URL"),
		DatabaseDriver: env("CLONEISO_DATABASE_DRIVER", "pgx"),
		S3Bucket:       os.Getenv("CLONEISO_S3_BUCKET"),
		S3Endpoint:     os.Getenv("CLONEISO_S3_ENDPOINT"),
		S3RoleARN:      os.Getenv("CLONEISO_S3_ROLE_ARN"),
		FileSigningKey: os.Getenv("CLONEISO_FILE_SIGNING_KEY"),
		PineconeHost:   os.Getenv("CLONEISO_PINECONE_HOST"),
		PineconeAPIKey: os.Getenv("PINECONE_API_KEY"),
		OpenAIBaseURL:  os.Getenv("CLONEISO_OPENAI_BASE_URL"),
		OpenAIAPIKey:   os.Getenv("OPENAI_API_KEY"),
		EmbeddingModel: os.Getenv("CLONEISO_EMBEDDING_MODEL"),
		ChatModel:      os.Getenv("CLONEISO_CHAT_MODEL"),
	}
	var err error
	if c.Dev, err = envBool("CLONEISO_DEV"); err != nil {
		return c, err
	}
	if c.EmbeddingDimension, err = envInt("CLONEISO_EMBEDDING_DIMENSION"); err != nil {
		return c, err
	}
	n, err := envInt("CLONEISO_MAX_UPLOAD_BYTES")
	c.MaxUploadBytes = int64(n)
	if err != nil {
		return c, err
	}
	if v := os.Getenv("CLONEISO_REPAIR_TIMEOUT"); v != "" {
		if c.RepairTimeout, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("CLONEISO_REPAIR_TIMEOUT: %w", err)
		}
	}
	return c, nil
}

// validate reports configurations that cannot work, before anything is opened.
func (c *Config) validate() error {
	switch {
	case c.JWTSecret != "" && c.JWKSURL != "":
		return errors.New("set CLONEISO_JWT_SECRET or CLONEISO_JWKS_URL, not both")
	case c.JWTSecret == "" && c.JWKSURL == "" && !c.Dev:
		return errors.New("no authentication configured: set CLONEISO_JWT_SECRET or CLONEISO_JWKS_URL, " +
			"or run in development mode (-dev or CLONEISO_DEV=1), which hands out tokens to anyone")
	case c.JWKSURL != "" && c.Dev:
		return errors.New("development mode mints HS256 tokens and cannot be combined with CLONEISO_JWKS_URL")
	case c.DatabaseDriver != "" && c.DatabaseDriver != "pgx" && c.DatabaseDriver != "libpq":
		return fmt.Errorf("CLONEISO_DATABASE_DRIVER is %q; want pgx or libpq", c.DatabaseDriver)
	case c.MigrateURL != "" && c.DatabaseURL == "":
		return errors.New("CLONEISO_MIGRATE_DATABASE_URL needs CLONEISO_DATABASE_URL (the application role)")
	case (c.S3Endpoint != "" || c.S3RoleARN != "") && c.S3Bucket == "":
		return errors.New("CLONEISO_S3_ENDPOINT and CLONEISO_S3_ROLE_ARN need CLONEISO_S3_BUCKET")
	case c.EmbeddingDimension != 0 && c.EmbeddingModel == "":
		return errors.New("CLONEISO_EMBEDDING_DIMENSION needs CLONEISO_EMBEDDING_MODEL")
	case c.MaxUploadBytes < 0:
		return errors.New("CLONEISO_MAX_UPLOAD_BYTES must not be negative")
	}
	return nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

func envBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}
