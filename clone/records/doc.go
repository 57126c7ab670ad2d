// Package records holds cloneiso's typed, clone-scoped repositories for the records a
// clone owns in SQL: documents and their chunks, insights, training examples,
// conversations and their messages.
//
// Every function takes, in this order, a context.Context, a [clonesql.Querier] (a
// *clonesql.DB, or tx.Querier() of a *clonesql.Tx to join a transaction), the
// [clone.CloneContext] of the clone acting, and the payload. The tenant and clone IDs in every statement are bound
// by package clonesql from the CloneContext, never from the payload: a record's TenantID
// and CloneID are filled from the context on create, and a payload that names another
// tenant or clone is refused with clone.ErrCloneMismatch. On PostgreSQL, row-level
// security enforces the same scope a second time; SQLite (the embedded default) relies on
// the scoped statements alone.
//
// # Getting started
//
// Open a database, apply cloneiso's migrations, provision a clone, and wrap the
// database in a clonesql.DB:
//
//	sx, _ := sqlitedb.Open("clones.db") // or clonesql.OpenPostgres(dsn)
//	_ = migrate.Up(ctx, sx, nil)
//	cc, _, _ := tenant.NewStore(sx, nil).ProvisionSolo(ctx, "user-42") // usually done by clonehttp
//	db, _ := clonesql.New(sx, &clonesql.Options{Audit: audit.SlogSink(slog.Default())})
//
//	doc, err := records.CreateDocument(ctx, db, cc, records.Document{Title: "Pricing notes"})
//	_, err = records.ReplaceDocumentChunks(ctx, db, cc, doc.ID, []records.Chunk{{Ordinal: 0, Content: "..."}})
//
// # Another clone's records
//
// A get, update or delete by ID of a record the clone does not own — because it does
// not exist or because it is another clone's — fails with clone.ErrNotFound (HTTP 404),
// never "forbidden", so IDs cannot be probed. The two cases cannot be told apart, so
// both are recorded as one audit.Denied event on the sink of the Querier (the DB's or
// the Tx's; [WithAudit] substitutes another). The same holds for the child lists and
// counts (chunks of a document, messages of a conversation) and for [AppendMessage]
// and [ReplaceDocumentChunks] when the parent is not the clone's. [GetChunks] leaves
// keys the clone does not own out of its result and records one event per call.
//
// # Transactions
//
// Functions that run several statements ([ReplaceDocumentChunks], [AppendMessage]) open
// a scoped transaction when given a *clonesql.DB and join the transaction when given a
// *clonesql.Tx. To compose cloneiso's writes with the host's own, use
// [clonesql.DB.WithTx], or [clonesql.DB.Bind] on a transaction the host opened, and pass
// tx.Querier(): denials inside it reach the DB's audit sink once it has ended.
//
//	err := db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
//		d, err := records.CreateDocument(ctx, tx.Querier(), cc, records.Document{Title: "t"})
//		if err != nil {
//			return err
//		}
//		return records.SetDocumentStatus(ctx, tx.Querier(), cc, d.ID, records.StatusReady, "")
//	})
//
// A statement that fails inside a clonesql transaction dooms it: the transaction rolls
// back even if the function ignores the error and returns nil.
//
// # Pagination
//
// List functions return a [Page] and take [ListOptions]. Pages follow a keyset on
// (CreatedAt, ID) — by Ordinal for chunks — so they are stable under inserts and ties,
// and cost the same at any depth. Page.Next is an opaque cursor for the next page; it
// is bound to the clone, the list (and the document or conversation) and the
// direction, and any other use is refused with clone.ErrInvalidInput. Messages are
// stamped so that a conversation lists in append order.
//
// # Validation
//
// Payloads are validated before any statement runs. Text must be valid UTF-8 without
// NUL bytes (which PostgreSQL cannot store) and within its documented limit
// ([MaxContentBytes] for content, prompts and responses; [MaxTitleBytes],
// [MaxShortBytes], [MaxErrorBytes] for the rest); too long is clone.ErrTooLarge, other
// bad input clone.ErrInvalidInput. Metadata must be a JSON object and citations a JSON
// array, at most [MaxJSONBytes]; they are stored re-encoded (PostgreSQL's jsonb
// normalizes key order and spacing anyway), so compare them as JSON, not as bytes.
// Statuses and roles must be the documented constants. Numbers must fit their columns.
//
// # Cost
//
// Each function runs one statement — on PostgreSQL one scoped transaction of three
// round trips (see [clonesql.DB]) when given a *clonesql.DB, one round trip inside a
// transaction — except: the child lists and counts ([ListDocumentChunks],
// [ListMessages], [CountDocumentChunks], [CountMessages]) run a second statement only
// when their result is empty, to tell an empty parent from a missing one (and
// [UpdateDocumentIfUnchanged] when it fails, to tell a conflict from a missing
// document); [GetChunks]
// runs one statement per 50 keys; [ReplaceDocumentChunks] runs 2 statements plus one
// per 50 chunks, and [AppendMessage] 3 statements, each in one transaction.
//
// # Timestamps
//
// CreatedAt and UpdatedAt are set by this package from the Go clock, in UTC and
// truncated to microseconds, so both dialects store and return the same instant and
// order rows the same way.
package records
