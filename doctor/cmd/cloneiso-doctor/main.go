// Command cloneiso-doctor checks a deployment for the misconfigurations that would let
// one clone reach another's data (see package doctor) and exits non-zero if it
// finds any. Run it with the application's own credentials, at deploy time and in CI:
//
//	cloneiso-doctor \
//	  -database-url "$APP_DATABASE_URL" \
//	  -s3-bucket cloneiso-objects -s3-endpoint http://127.0.0.1:9000 \
//	  -pinecone-host https://my-index.svc.pinecone.io \
//	  -jwt-issuer https://id.example.com -jwt-audience cloneiso
//
// Every flag can also be set with the environment variable in its help. S3 credentials
// and region come from the AWS default chain (AWS_ACCESS_KEY_ID, AWS_REGION, ...).
//
// Each finding names its cause, e.g. "database: role-owns-table: insights: role app is
// a member of cloneiso_owner (can SET ROLE, inherits its privileges), which owns table
// insights: ...".
//
// Exit codes: 0 nothing found, 1 findings, 2 bad usage, 3 a check could not run or could
// not finish (a partial check is never reported as clean).
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	_ "github.com/lib/pq"

	"github.com/cloneiso/cloneiso/doctor"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cloneiso-doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	dbURL := fs.String("database-url", env("CLONEISO_DATABASE_URL", ""), "PostgreSQL URL of the application role [CLONEISO_DATABASE_URL]")
	schema := fs.String("schema", env("CLONEISO_SCHEMA", ""), "schema of cloneiso's tables (migrate.Options.Schema); default: the connection's current schema [CLONEISO_SCHEMA]")
	bucket := fs.String("s3-bucket", env("CLONEISO_S3_BUCKET", ""), "bucket of the object store [CLONEISO_S3_BUCKET]")
	endpoint := fs.String("s3-endpoint", env("CLONEISO_S3_ENDPOINT", ""), "S3-compatible endpoint, empty for AWS [CLONEISO_S3_ENDPOINT]")
	pcHost := fs.String("pinecone-host", env("CLONEISO_PINECONE_HOST", ""), "Pinecone index host [CLONEISO_PINECONE_HOST]")
	pcKey := fs.String("pinecone-api-key", env("PINECONE_API_KEY", ""), "Pinecone API key [PINECONE_API_KEY]")
	issuer := fs.String("jwt-issuer", env("CLONEISO_JWT_ISSUER", ""), "issuer the authenticator requires [CLONEISO_JWT_ISSUER]")
	audience := fs.String("jwt-audience", env("CLONEISO_JWT_AUDIENCE", ""), "audience the authenticator requires [CLONEISO_JWT_AUDIENCE]")
	checkJWT := fs.Bool("check-jwt", false, "check the JWT settings even if both are empty")
	timeout := fs.Duration("timeout", time.Minute, "time allowed for all checks")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cloneiso-doctor: unexpected arguments %v\n", fs.Args())
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cfg := &doctor.Config{CheckJWT: *checkJWT || *issuer != "" || *audience != "", JWTIssuer: *issuer, JWTAudience: *audience}
	if *dbURL != "" {
		db, err := sql.Open("postgres", *dbURL)
		if err != nil {
			fmt.Fprintf(stderr, "cloneiso-doctor: database: %v\n", err)
			return 2
		}
		defer db.Close()
		cfg.DB = db
		if *schema != "" {
			cfg.DBOptions = &migrate.CheckOptions{Schema: *schema}
		}
	}
	if *bucket != "" {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "cloneiso-doctor: AWS configuration: %v\n", err)
			return 2
		}
		if awsCfg.Region == "" {
			awsCfg.Region = "us-east-1"
		}
		b, err := s3object.OpenBucket(ctx, awsCfg, *bucket, &s3object.Options{Endpoint: *endpoint, UsePathStyle: *endpoint != ""})
		if err != nil {
			fmt.Fprintf(stderr, "cloneiso-doctor: object store: %v\n", err)
			return 2
		}
		defer b.Close()
		cfg.Bucket = b
	}
	if *pcHost != "" {
		idx, err := pineconevector.Open(*pcHost, 1, &pineconevector.Options{APIKey: *pcKey})
		if err != nil {
			fmt.Fprintf(stderr, "cloneiso-doctor: pinecone: %v\n", err)
			return 2
		}
		defer idx.Close()
		cfg.Index = idx
	}
	if cfg.DB == nil && cfg.Bucket == nil && cfg.Index == nil && !cfg.CheckJWT {
		fmt.Fprintln(stderr, "cloneiso-doctor: nothing to check; give -database-url, -s3-bucket, -pinecone-host or -jwt-issuer/-jwt-audience")
		return 2
	}
	r, err := doctor.Check(ctx, cfg)
	if r != nil && len(r.Findings) > 0 {
		fmt.Fprintln(stdout, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cloneiso-doctor: %v\n", err)
		return 3
	}
	if !r.OK() {
		return 1
	}
	fmt.Fprintln(stdout, r)
	return 0
}
