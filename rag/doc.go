// Package rag answers questions with one clone's own knowledge: retrieve the clone's
// passages, build a prompt from the clone's persona, passages and conversation
// history, generate the answer (streaming), and store the conversation.
//
// # Pieces
//
//   - Retriever embeds the question (package ingest/embed), queries the clone's
//     vectors (package vectorstore: top-k, an optional score threshold, optional MMR
//     diversification, an optional metadata filter) and loads the matching chunks
//     and their documents' titles from SQL (package clone/records, through
//     ingest.Resolve so that only the committed version of a document is cited). It
//     returns Passages with scores and Citations (document ID, title, chunk ordinal,
//     byte offsets). Its embedder must be the one the documents were ingested with:
//     a document that records another model fails the retrieval with an
//     EmbeddingModelError instead of answering from incomparable vectors.
//   - BuildPrompt assembles the system message (instructions, the clone's Profile,
//     insights, training examples and the passages with their citation markers "[n]"),
//     a window of the conversation's history and the question, within a token budget
//     measured with package ingest/token; its documentation gives the truncation
//     order. Its first step is Guard, the prompt-assembly guard.
//   - A generate.Generator writes the answer: generate.Extractive (the embedded
//     default: quotes the best sentences with their markers; no network,
//     deterministic) or generate/openaigen (any OpenAI-compatible chat completions
//     API, streaming).
//   - Processor runs a conversation turn: create or continue the conversation, store
//     the user's message, retrieve, build the prompt, generate while streaming the
//     answer to a callback (Process) or an iterator (Stream), and store the assistant
//     message with the citations its markers name. WriteSSE and Processor.ServeSSE
//     stream a turn to an HTTP client as Server-Sent Events.
//
// # Isolation
//
// Every function takes the clone.CloneContext and derives every tenant and clone ID
// it uses from it: the SQL statements are scoped by package clone/clonesql (and
// row-level security on PostgreSQL), the vector query by the namespace and filter of
// package vectorstore. Rows the stores return are re-checked against the context
// (clone.ErrIsolationViolation and an audit.Violation event on a mismatch), and the
// prompt guard refuses any profile, passage, message, insight or training example
// whose tenant or clone differs from the context before anything reaches a generator
// — so one clone's documents, persona or history can never appear in another clone's
// prompt, answer or citations. A conversation ID of another clone is
// clone.ErrNotFound, like a missing one.
//
// # Cancellation
//
// A turn that stops during generation (the context is cancelled, the client
// disconnects, the consumer stops iterating, or the generator fails) keeps the user's
// message and stores exactly the text that had been delivered as the assistant
// message, with the citations it contains, or no assistant message if nothing was
// delivered. The history of a conversation therefore always shows what its user saw.
// See Processor.Process.
//
// # Example
//
// On the embedded backends:
//
//	db, _ := clonesql.New(sqlDB, nil)                      // SQLite or PostgreSQL
//	emb, _ := embed.NewLocal(nil)                          // or openaiembed
//	index, _ := memvector.Open(emb.Dimension(), nil)       // or pineconevector
//	retriever, _ := rag.NewRetriever(db, index, emb, nil)
//	gen, _ := generate.NewExtractive(nil)                  // or openaigen.New(...)
//	processor, _ := rag.NewProcessor(db, retriever, gen, nil)
//
//	http.HandleFunc("POST /ask", func(w http.ResponseWriter, r *http.Request) {
//		cc, err := clone.FromContext(r.Context())        // set by clonehttp middleware
//		if err != nil {
//			http.Error(w, "unauthenticated", clone.HTTPStatus(err))
//			return
//		}
//		processor.ServeSSE(w, r, cc, &rag.Request{Question: r.FormValue("q")})
//	})
package rag
