package cloneiso_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/cloneiso/cloneiso"
	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/ingest/embed/openaiembed"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/rag/generate/openaigen"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
)

// The whole SDK on its embedded defaults — SQLite, the embedded vector index and
// object store in one directory, the local embedder and the extractive generator —
// then two people who each teach their clone one fact and ask it the same question.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cloneiso-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// The database: migrated, then handed to the stack (which does not close it).
	db, err := sqlitedb.Open(filepath.Join(dir, "cloneiso.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := migrate.Up(ctx, db, nil); err != nil {
		panic(err)
	}
	// The embedder and the generator are required: the embedded ones here.
	emb, err := embed.NewLocal(nil)
	if err != nil {
		panic(err)
	}
	gen, err := generate.NewExtractive(nil)
	if err != nil {
		panic(err)
	}
	sdk, err := cloneiso.New(ctx, db, emb, gen, &cloneiso.Options{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer sdk.Close()

	for subject, fact := range map[string]string{"alice": "Our office dog is called Biscuit.", "bob": "Our office dog is called Rex."} {
		cc, _, err := sdk.Tenants().ProvisionSolo(ctx, subject) // what the middleware does on first sign-in
		if err != nil {
			panic(err)
		}
		if _, err := sdk.Pipeline().Ingest(ctx, cc, ingest.Source{Title: "Office", SourceName: "office.txt", Data: []byte(fact)}); err != nil {
			panic(err)
		}
	}

	// Over HTTP: the stack's middleware turns the authenticated subject into its clone.
	auth := clonehttp.AuthenticatorFunc(func(r *http.Request) (clone.Principal, error) {
		return clone.Principal{Subject: r.Header.Get("X-Demo-Subject")}, nil // a real host verifies a token (jwtauth)
	})
	chat := sdk.Middleware(auth, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		resp, err := sdk.Processor().Process(r.Context(), cc, &rag.Request{Subject: cc.Principal().Subject, Question: "What is the office dog called?"}, nil)
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		fmt.Fprint(w, resp.Answer.Content)
	}))
	for _, subject := range []string{"alice", "bob"} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/chat", nil)
		r.Header.Set("X-Demo-Subject", subject)
		chat.ServeHTTP(w, r)
		fmt.Printf("%s's clone: %s\n", subject, w.Body)
	}
	// Output:
	// alice's clone: Our office dog is called Biscuit. [1]
	// bob's clone: Our office dog is called Rex. [1]
}

// A host on PostgreSQL, Pinecone, S3 and an OpenAI-compatible API: it opens the
// database (the application role, migrated), the models and the vendor drivers, and
// hands them to New, which wraps the drivers with the guard hooks and the audit sink.
// (Compiled, not run: it needs the services.)
func ExampleNew_vendorStores() {
	ctx := context.Background()
	db, err := clonesql.OpenPgx(os.Getenv("APP_DATABASE_URL")) // the application role, migrated
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	emb, err := openaiembed.New(&openaiembed.Options{Model: "text-embedding-3-small", APIKey: os.Getenv("OPENAI_API_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	gen, err := openaigen.New(&openaigen.Options{Model: "gpt-4o-mini", APIKey: os.Getenv("OPENAI_API_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	vectors, err := pineconevector.NewDriver(os.Getenv("PINECONE_HOST"), emb.Dimension(), &pineconevector.Options{APIKey: os.Getenv("PINECONE_API_KEY")})
	if err != nil {
		log.Fatal(err)
	}
	awsConfig, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	objects, err := s3object.OpenDriver(ctx, awsConfig, "my-bucket", nil)
	if err != nil {
		log.Fatal(err)
	}
	sdk, err := cloneiso.New(ctx, db, emb, gen, &cloneiso.Options{Vectors: vectors, Objects: objects, Logger: slog.Default()})
	if err != nil {
		log.Fatal(err)
	}
	defer sdk.Close()
	auth, err := jwtauth.NewJWKS(ctx, "https://issuer.example.com/", "my-api", "https://issuer.example.com/.well-known/jwks.json", nil)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", sdk.Middleware(auth, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		fmt.Fprintln(w, cc) // the clone this request acts for
	})))
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mux))
}
