package doctor_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
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
	"github.com/cloneiso/cloneiso/doctor"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
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
	b, err := s3object.OpenBucket(ctx, env.Config(), bucket, &s3object.Options{Endpoint: env.Endpoint, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := &doctor.Config{DB: db.App.DB, Bucket: b, Index: idx,
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
	// A legacy per-user namespace, left behind by a migration: no clone's either.
	if _, err := conn.WithNamespace("user-42").UpsertVectors(ctx, []*pinecone.Vector{{Id: "old", Values: &values}}); err != nil {
		t.Fatal(err)
	}
	cfg.JWTIssuer, cfg.JWTAudience = "", "*"

	r, err = doctor.Check(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := codes(r)
	for _, want := range []string{migrate.ProblemRLSNotForced, doctor.BucketAnonymousList, doctor.BucketPublicPolicy,
		doctor.VectorsOutsideClones, doctor.JWTIssuerNotPinned, doctor.JWTAudienceNotPinned} {
		if !slices.Contains(got, want) {
			t.Errorf("misconfiguration %s not reported; report:\n%s", want, r)
		}
	}
	var outside []string
	for _, f := range r.Findings {
		if f.Code == doctor.VectorsOutsideClones {
			outside = append(outside, f.Detail)
		}
	}
	if len(outside) != 2 || !strings.Contains(strings.Join(outside, "\n"), "default namespace") || !strings.Contains(strings.Join(outside, "\n"), `"user-42"`) {
		t.Errorf("vectors outside clones: %q; want the default namespace and user-42, and not the clone's own", outside)
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
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("key", "secret", ""), RetryMaxAttempts: 1}
	b, err := s3object.OpenBucket(context.Background(), cfg, "bucket", &s3object.Options{Endpoint: srv.URL, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := doctor.Check(context.Background(), &doctor.Config{Bucket: b})
	if err == nil {
		t.Fatalf("an anonymous probe that failed with a 500 passed the check: %s", r)
	}
}

// TestDoctorEmbeddedStores: the embedded drivers cannot be probed for exposure or
// enumerate namespaces; the report says so instead of passing them silently.
func TestDoctorEmbeddedStores(t *testing.T) {
	ctx := context.Background()
	b, err := fileobject.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	idx, err := memvector.Open(4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	r, err := doctor.Check(ctx, &doctor.Config{Bucket: b, Index: idx})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Checked) != 0 || len(r.Unchecked) != 2 || !strings.Contains(r.String(), "not checkable") {
		t.Fatalf("embedded stores: checked %v, unchecked %v, %q", r.Checked, r.Unchecked, r)
	}
}

// TestDoctorImportsNoVendorSDK: the doctor works on the portable types, so a host that
// imports it does not link the AWS or Pinecone SDKs (the command does, to open them).
func TestDoctorImportsNoVendorSDK(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the dependencies")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/cloneiso/cloneiso/doctor").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/aws/") || strings.HasPrefix(dep, "github.com/pinecone-io/") {
			t.Errorf("package doctor depends on %s", dep)
		}
	}
}
