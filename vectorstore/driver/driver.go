// Package driver defines the interface a vector store backend implements for package
// vectorstore. Application code never uses it: it uses the portable
// [github.com/cloneiso/cloneiso/vectorstore.Index], which owns validation, clone scoping,
// result post-checks and error classification, and calls a driver only with input it has
// already validated.
//
// The comments of [Index] are the contract; package vectorstore/drivertest checks it.
package driver

import (
	"context"

	"github.com/cloneiso/cloneiso/vectorstore/filter"
)

// Vector is a record of the index.
type Vector struct {
	// ID is unique within a namespace: 1 to 512 bytes of valid UTF-8 without control
	// characters.
	ID string
	// Values has exactly Dimension() finite elements, not all zero.
	Values []float32
	// Metadata values are string, float64, bool or []string. It always contains the
	// clone scope keys (tenant_id and clone_id) stamped by the portable type.
	Metadata map[string]any
}

// Match is one query result.
type Match struct {
	ID    string
	Score float32
	// Values is set only if the query asked for it.
	Values []float32
	// Metadata is always returned, in full: the portable type re-checks the scope keys
	// of every match.
	Metadata map[string]any
}

// Query is a similarity search in one namespace.
type Query struct {
	// Vector has exactly Dimension() finite elements.
	Vector []float32
	// TopK is at least 1.
	TopK int
	// Filter is already AND-ed with the clone scope; it is never nil when called through
	// the portable type. The driver must apply it before ranking (it is a pre-filter,
	// not a post-filter: a query returns min(TopK, matching records) results).
	Filter *filter.Filter
	// IncludeValues asks for Match.Values.
	IncludeValues bool
}

// ListRequest asks for one page of IDs.
type ListRequest struct {
	// Prefix restricts the listing to IDs that start with it ("" lists everything).
	Prefix string
	// Limit is between 1 and 100.
	Limit int
	// PageToken is "" for the first page, or a NextPageToken returned by an earlier call
	// with the same namespace and prefix.
	PageToken string
}

// ListPage is one page of IDs.
type ListPage struct {
	// IDs in ascending byte order.
	IDs []string
	// NextPageToken is "" on the last page.
	NextPageToken string
}

// Stats describes one namespace.
type Stats struct {
	// VectorCount is the number of records in the namespace (0 if it does not exist).
	VectorCount int
}

// Index is a vector index partitioned into namespaces. The portable type gives every
// clone its own namespace, derived from its CloneContext, and never passes "" or
// "__default__".
//
// Implementations must be safe for concurrent use. Every method that takes a context
// must honour its cancellation and deadline. Errors are returned as the backend produces
// them (wrapped or not); the portable type classifies them with ErrorKind.
type Index interface {
	// Dimension is the length of every vector the index stores.
	Dimension() int

	// Upsert inserts the vectors into namespace ns, replacing existing records with the
	// same IDs entirely (values and metadata). IDs within one call are distinct. A
	// namespace that does not exist is created. Upsert is idempotent, so it may be
	// retried after a partial failure. The vectors' Values and Metadata belong to the
	// caller: the driver copies what it keeps and retains neither after returning.
	Upsert(ctx context.Context, ns string, vectors []Vector) error

	// Query returns up to q.TopK records of namespace ns that match q.Filter, most
	// similar first, each with its full metadata. A namespace that does not exist has
	// no records (no error).
	Query(ctx context.Context, ns string, q *Query) ([]Match, error)

	// Fetch returns the records of namespace ns with the given IDs (distinct, at least
	// one), with values and full metadata, in any order. IDs that do not exist are
	// omitted (no error).
	Fetch(ctx context.Context, ns string, ids []string) ([]Vector, error)

	// Delete removes the records of namespace ns with the given IDs (distinct, at least
	// one). Deleting an ID that does not exist is not an error.
	Delete(ctx context.Context, ns string, ids []string) error

	// DeleteByFilter removes every record of namespace ns that matches f (never nil).
	DeleteByFilter(ctx context.Context, ns string, f *filter.Filter) error

	// DeleteNamespace removes every record of namespace ns, and the namespace. Deleting
	// a namespace that does not exist is not an error.
	DeleteNamespace(ctx context.Context, ns string) error

	// List returns one page of the IDs of namespace ns, in ascending order.
	List(ctx context.Context, ns string, req *ListRequest) (*ListPage, error)

	// Stats describes namespace ns; a namespace that does not exist has 0 records.
	Stats(ctx context.Context, ns string) (*Stats, error)

	// ErrorKind classifies an error returned by this driver: it returns the
	// clone.Err* sentinel that describes it best (clone.ErrUnavailable for a backend that
	// is down or throttling, clone.ErrInvalidInput for a request the backend refused,
	// clone.ErrNotFound, ...) or nil if the error is not classified.
	ErrorKind(err error) error

	// As converts i, a pointer to a backend type, to the driver's underlying client
	// (for example a *pinecone.IndexConnection), and reports whether it did.
	As(i any) bool

	// Close releases the driver's resources.
	Close() error
}

// NamespaceLister is implemented by drivers that can enumerate every namespace of the
// index with its vector count. It is for deployment checks (vectors outside any clone's
// namespace), never for serving a clone.
type NamespaceLister interface {
	Namespaces(ctx context.Context) (map[string]int, error)
}

// MetadataAdopter is implemented by drivers that can keep the metadata maps of an
// upsert instead of copying them. The portable type builds a fresh map for every
// vector it upserts (the caller's fields plus the scope keys) and never touches it
// again, so it calls UpsertAdopt instead of Upsert when the driver offers it, and the
// driver saves a copy of every map.
type MetadataAdopter interface {
	// UpsertAdopt is Upsert, except that each vector's Metadata map (the map itself,
	// not the values in it, which still belong to the caller) passes to the driver: it
	// may keep or change it. It is called only if Upsert is not.
	UpsertAdopt(ctx context.Context, ns string, vectors []Vector) error
}
