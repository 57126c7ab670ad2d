package doctor_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/doctor"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore/s3object/s3test"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func codes(r *doctor.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Code)
	}
	return out
}

// TestDoctor: a correct deployment reports nothing; each misconfiguration, made for
// real on PostgreSQL, MinIO and the Pinecone emulator, is reported.
func TestDoctor(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Fresh(t, true)
	env := s3test.Require(t)
	bucket := s3test.NewBucket(t, env, false)
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4})
	idx, err := pineconevector.Open(srv.Host(), 4, &pineconevector.Options{APIKey: "emulator"})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	cc, _ := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: "s"})
	if err := idx.Upsert(ctx, cc, []vectorstore.Vector{{ID: "v", Values: []float32{1, 0, 0, 0}}}); err != nil {
		t.Fatal(err)
	}
	var conn *pinecone.IndexConnection
	if !idx.As(&conn) {
		t.Fatal("no go-pinecone connection")
	}
	cfg := &doctor.Config{DB: db.App.DB, S3: env.Client(), Bucket: bucket, Pinecone: conn,
		CheckJWT: true, JWTIssuer: "https://id.example.com", JWTAudience: "cloneiso"}

	r, err := doctor.Check(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.Checked) != 4 {
		t.Fatalf("a correct deployment reports:\n%s (checked %v)", r, r.Checked)
	}

	// Break every part.
	if _, err := db.Owner.Exec("ALTER TABLE insights NO FORCE ROW LEVEL SECURITY"); err != nil {
		t.Fatal(err)
	}
	public := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject","s3:ListBucket"],
		"Resource":["arn:aws:s3:::` + bucket + `","arn:aws:s3:::` + bucket + `/*"]}]}`
	if _, err := env.Client().PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(public)}); err != nil {
		t.Fatal(err)
	}
	values := []float32{0, 1, 0, 0}
	if _, err := conn.WithNamespace("__default__").UpsertVectors(ctx, []*pinecone.Vector{{Id: "orphan", Values: &values}}); err != nil {
		t.Fatal(err)
	}
	cfg.JWTIssuer, cfg.JWTAudience = "", "*"

	r, err = doctor.Check(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := codes(r)
	for _, want := range []string{migrate.ProblemRLSNotForced, doctor.BucketAnonymousList, doctor.BucketPublicPolicy,
		doctor.PineconeDefaultNS, doctor.JWTIssuerNotPinned, doctor.JWTAudienceNotPinned} {
		if !slices.Contains(got, want) {
			t.Errorf("misconfiguration %s not reported; report:\n%s", want, r)
		}
	}
	cfg.JWTIssuer = "http://id.example.com"
	if r, _ := doctor.Check(ctx, &doctor.Config{CheckJWT: true, JWTIssuer: cfg.JWTIssuer, JWTAudience: "a"}); !slices.Contains(codes(r), doctor.JWTIssuerNotHTTPS) {
		t.Errorf("plain-http issuer not reported: %s", r)
	}
}

// TestDoctorNamesTheCause: database findings name the membership path and the object's
// owner, not only a code.
func TestDoctorNamesTheCause(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Fresh(t, true)
	var b [4]byte
	rand.Read(b[:])
	app := "cloneiso_doc_" + hex.EncodeToString(b[:])
	owner := app + "_owner"
	var admin string
	if err := db.Owner.Get(&admin, "SELECT current_user"); err != nil {
		t.Fatal(err)
	}
	exec := func(stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if _, err := db.Owner.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	qa, qo := pq.QuoteIdentifier(app), pq.QuoteIdentifier(owner)
	exec("CREATE ROLE "+qa+" LOGIN PASSWORD 'doc' NOSUPERUSER NOBYPASSRLS", "CREATE ROLE "+qo+" NOLOGIN")
	t.Cleanup(func() {
		for _, r := range []string{qa, qo} {
			db.Owner.Exec("REASSIGN OWNED BY " + r + " TO CURRENT_USER; DROP OWNED BY " + r)
			if _, err := db.Owner.Exec("DROP ROLE " + r); err != nil {
				t.Errorf("drop role %s: %v", r, err)
			}
		}
	})
	exec(migrate.AppRoleSQL(app, ""),
		"ALTER TABLE insights OWNER TO "+qo, "GRANT "+qo+" TO "+qa,
		`CREATE FUNCTION peek() RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER AS $$
			BEGIN RETURN QUERY EXECUTE 'SELECT content FROM ' || 'insi' || 'ghts'; END $$`)
	u, _ := url.Parse(db.OwnerURL)
	u.User = url.UserPassword(app, "doc")
	conn, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	r, err := doctor.Check(ctx, &doctor.Config{DB: conn.DB})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		migrate.ProblemRoleOwnsTable: {"insights: role " + app + " is a member of " + owner, "which owns table insights"},
		migrate.ProblemSecurityDefiner: {"peek(): SECURITY DEFINER function peek()", "role " + admin + " is a superuser",
			"role " + app + " can EXECUTE it through PUBLIC"},
	}
	for code, parts := range want {
		i := slices.IndexFunc(r.Findings, func(f doctor.Finding) bool { return f.Code == code })
		if i < 0 {
			t.Errorf("%s not reported; report:\n%s", code, r)
			continue
		}
		for _, p := range parts {
			if !strings.Contains(r.Findings[i].Detail, p) {
				t.Errorf("finding %q does not say %q", r.Findings[i].Detail, p)
			}
		}
	}
}

// TestDoctorBucketProbeFailsClosed: an anonymous listing that fails for any reason but
// a refusal proves nothing, so the check fails instead of passing. The server below
// answers signed requests (no bucket policy) and fails unsigned ones with a 500.
func TestDoctorBucketProbeFailsClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`<Error><Code>InternalError</Code><Message>broken</Message></Error>`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`<Error><Code>NoSuchBucketPolicy</Code><Message>none</Message></Error>`))
	}))
	defer srv.Close()
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("key", "secret", ""), RetryMaxAttempts: 1})
	r, err := doctor.Check(context.Background(), &doctor.Config{S3: client, Bucket: "b"})
	if err == nil {
		t.Fatalf("an anonymous probe that failed with a 500 passed the check: %s", r)
	}
}
