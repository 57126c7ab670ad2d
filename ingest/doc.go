// Package ingest turns a clone's documents into knowledge it can retrieve: every step
// is scoped to the clone of the clone.CloneContext passed to the call, and a failed
// attempt leaves nothing behind.
//
// # Steps
//
// Pipeline.Ingest takes a Source (bytes, a reader, or an object a client uploaded
// through an objectstore upload ticket, which is verified first) and:
//
//  1. reads it (at most Options.MaxDocumentBytes), guesses its content type if none
//     is given (by content first: PDF and DOCX are recognised from their bytes),
//     and refuses unsupported types, and content contradicting its declared type,
//     before writing anything (package ingest/extract; PDF chunks record the pages
//     they come from in their metadata, see MetaPage);
//  2. computes its content hash ("sha256:<hex>") and looks for the clone's document
//     with that content: if it is ready and was ingested with the same embedding
//     model and chunking, Ingest checks that the index holds all its chunk vectors
//     (restoring lost ones from the stored chunk text, Result.VectorsRestored) and
//     answers Unchanged; otherwise that document is re-ingested in place;
//  3. records the document (status "pending", a document ID derived from the clone
//     and the hash, so concurrent first ingestions of the same content converge on one
//     row) and claims it ("processing") with a conditional update, so only one
//     attempt works on a document at a time;
//  4. stores the original in the object bucket under ObjectKind,
//     "<document ID>/<version>" (an SDK-built key, see ObjectName);
//  5. extracts the text (package ingest/extract), splits it into chunks with byte
//     offsets into the text (package ingest/chunk), embeds them in batches
//     (package ingest/embed) and upserts the vectors into the clone's namespace under
//     the IDs "<document ID>#<version>-<ordinal>" (VectorID);
//  6. in one SQL transaction, replaces the document's chunks and marks it "ready"
//     with the new hash, original and chunk count (package clone/records);
//  7. then removes the previous version's vectors and original, and a consumed
//     upload.
//
// The version (DocumentVersion) is derived from the content hash and the pipeline's
// configuration (embedding model, chunk size and overlap), so retrying the same
// content overwrites the same vectors and object (idempotent), while new content, or
// the same content under a new embedding model or chunking, gets a new version that
// never overwrites the one being served. Until step 6 commits, the chunks in SQL still
// name the old version's vectors; after it, the new ones: a reader that resolves
// vector matches through the chunks table and drops matches whose ID is not the
// chunk's VectorID (see Resolve) never sees a mix of versions.
//
// Document statuses move pending → processing → ready | failed. Pipeline.IngestAll
// runs many sources with a bounded number of workers and reports Progress events
// (documents, chunks, bytes) a host can show as a progress bar.
//
// # Failures
//
// If any step fails — the object store, the extractor, the embedder, the vector
// store, the database, or the context being cancelled — the attempt is compensated:
// its vectors and its original are deleted (with a fresh context, so cancellation
// does not stop the clean-up), its chunks were never committed, and the document is
// marked "failed" with the error recorded; a failed update leaves the previous
// version ready and served, with the error recorded. Retrying the same content reuses
// the failed document.
//
// A crashed process cannot compensate. Pipeline.Reconcile finds what such a process
// left for a clone (documents stuck in "processing", vectors and originals of
// uncommitted versions or of deleted documents) and removes it; documents claimed
// less than Options.StaleAfter ago are left alone, since another process may still
// be working on them. It also heals: every ready document must have exactly its
// chunks' vectors in the index, and vectors the index lost (a store that was not
// durable, a restore from an older backup, an operator's mistake) are re-embedded
// from the chunks' stored text and upserted again (ReconcileReport.VectorsRestored),
// so that the document answers its questions again instead of another document.
//
// # Deleting
//
// Pipeline.Delete removes a document's row and chunks first (readers stop finding it
// at once), then its vectors and originals; leftovers of a partial failure are
// reported and removed by Reconcile.
//
// # Isolation
//
// The pipeline never builds a tenant or clone ID itself: SQL statements are bound by
// package clone/clonesql, vector namespaces by package vectorstore, object keys by
// package objectstore, all from the CloneContext. A document ID of another clone is
// not found in any store.
//
// The pipeline writes one statement of its own through clonesql.DB (the conditional
// claim and release of a document's status, which package clone/records does not
// offer); everything else goes through clone/records.
package ingest
