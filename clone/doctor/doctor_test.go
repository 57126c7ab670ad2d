package doctor_test

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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
