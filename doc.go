// Package cloneiso is an SDK for serving many AI clones from shared infrastructure
// (PostgreSQL, Pinecone, S3) without ever letting one clone read, write, list, retrieve,
// presign or delete another clone's data.
//
// This package is the composition root: [New] wires the tenant store, the clone-scoped
// SQL database, vector index and object bucket, ingestion, retrieval and answering,
// tenant administration and the HTTP middleware with one audit sink, one resolution
// cache (which every revocation invalidates) and the tenant store's guard hooks on
// every store, after checking on PostgreSQL that the database role isolates clones,
// with the embedded stores as defaults:
//
//	sdk, err := cloneiso.New(ctx, db, embedder, generator, &cloneiso.Options{Dir: dataDir})
//	if err != nil {
//		return err
//	}
//	defer sdk.Close()
//	mux.Handle("/v1/", sdk.Middleware(auth, nil)(routes))
//
// PostgreSQL, Pinecone and S3 come in as the drivers the host opens (Options.Vectors,
// Options.Objects), so importing this package pulls in no vendor SDK. Each piece also
// stands alone in its sub-package.
//
// # Map
//
//   - clone: the CloneContext (tenant ID, clone ID, principal) that every data
//     operation takes; strict ID parsing; guards; the SDK's error kinds and their HTTP
//     status codes.
//   - clone/audit: audit events written by every layer on every denial.
//   - clone/clonehttp: net/http middleware that authenticates a request (JWT/JWKS),
//     resolves it to a clone (provisioning tenant and clone on first sign-in) and puts
//     the CloneContext into the request context.
//   - clone/clonesql: clone-scoped SQL on a standard *sql.DB; PostgreSQL with row-level security, or
//     SQLite as the embedded default; the SQL audit sink with its per-tenant hash chain.
//   - clone/records: typed repositories for every clone-owned record (documents and
//     chunks, insights, training examples, conversations, messages).
//   - isolationtest: a test kit that proves a host's own wiring isolates clones.
//   - doctor: a start-up check (and the cloneiso-doctor command) for the
//     misconfigurations that would break isolation.
//   - tenant: tenants, plans, clones, members and grants; first-sign-in provisioning;
//     tenant administration, audited break-glass access and verified offboarding.
//   - vectorstore: clone-scoped vector index (embedded, or Pinecone).
//   - objectstore: clone-scoped object storage (filesystem, or S3).
//   - ingest and rag: document ingestion; retrieval, prompt building and answering.
//   - migrate: schema migrations (goose), the application role, isolation checks;
//     migrate/legacy and the cloneiso-migrate command move a legacy user_id deployment
//     to the clone model across SQL, S3 and vectors.
//   - examples: a quick start and a host HTTP application.
//
// # How a request flows
//
// An HTTP request enters the clonehttp middleware, which authenticates it, looks up (or
// on first sign-in creates, through package tenant) the subject's clone, and attaches
// the clone.CloneContext to the request's context. Handlers read it with
// clone.FromContext and pass it to the clone-scoped stores, which derive every tenant and
// clone ID they use from it (SQL predicates and row-level security settings, the vector
// namespace, object key prefixes), re-check what the stores return, and audit every
// denial.
package cloneiso
