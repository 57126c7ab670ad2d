package legacy

import (
	"context"
	"fmt"
	"strings"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso/vectorstore/driver"
)

// PineconeSource returns a [VectorSource] that reads legacy vectors with go-pinecone
// directly, in any namespace including Pinecone's default one ("" or "__default__"),
// which the vectorstore driver refuses by design. conn is an index connection (for
// example from pineconevector.Driver.As); its own namespace does not matter. The
// source also lists namespaces ([NamespaceLister]), so verification finds per-user
// namespaces of users the database does not know.
func PineconeSource(conn *pinecone.IndexConnection) VectorSource { return &pineconeSource{conn: conn} }

// NamespaceLister is implemented by vector sources that can list namespaces.
type NamespaceLister interface {
	// ListNamespaces returns the names of the namespaces that start with prefix.
	ListNamespaces(ctx context.Context, prefix string) ([]string, error)
}

type pineconeSource struct{ conn *pinecone.IndexConnection }

func (s *pineconeSource) ns(ns string) *pinecone.IndexConnection {
	if ns == "__default__" {
		ns = ""
	}
	return s.conn.WithNamespace(ns)
}

func (s *pineconeSource) List(ctx context.Context, ns string, req *driver.ListRequest) (*driver.ListPage, error) {
	limit := uint32(req.Limit)
	lr := &pinecone.ListVectorsRequest{Limit: &limit}
	if req.Prefix != "" {
		lr.Prefix = &req.Prefix
	}
	if req.PageToken != "" {
		lr.PaginationToken = &req.PageToken
	}
	res, err := s.ns(ns).ListVectors(ctx, lr)
	if err != nil {
		if strings.Contains(err.Error(), "NotFound") || strings.Contains(err.Error(), "not found") {
			return &driver.ListPage{}, nil
		}
		return nil, err
	}
	p := &driver.ListPage{}
	for _, id := range res.VectorIds {
		if id != nil {
			p.IDs = append(p.IDs, *id)
		}
	}
	if res.NextPaginationToken != nil {
		p.NextPageToken = *res.NextPaginationToken
	}
	return p, nil
}

func (s *pineconeSource) Fetch(ctx context.Context, ns string, ids []string) ([]driver.Vector, error) {
	res, err := s.ns(ns).FetchVectors(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]driver.Vector, 0, len(res.Vectors))
	for id, v := range res.Vectors {
		if v == nil {
			continue
		}
		dv := driver.Vector{ID: id, Metadata: map[string]any{}}
		if v.Values != nil {
			dv.Values = *v.Values
		}
		if v.Metadata != nil {
			for k, x := range v.Metadata.AsMap() {
				if list, ok := x.([]any); ok {
					strs := make([]string, 0, len(list))
					for _, e := range list {
						s, ok := e.(string)
						if !ok {
							return nil, fmt.Errorf("vector %s: metadata %s is a list of non-strings", id, k)
						}
						strs = append(strs, s)
					}
					x = strs
				}
				dv.Metadata[k] = x
			}
		}
		out = append(out, dv)
	}
	return out, nil
}

func (s *pineconeSource) Delete(ctx context.Context, ns string, ids []string) error {
	return s.ns(ns).DeleteVectorsById(ctx, ids)
}

func (s *pineconeSource) DeleteNamespace(ctx context.Context, ns string) error {
	return s.ns(ns).DeleteAllVectorsInNamespace(ctx)
}

func (s *pineconeSource) Stats(ctx context.Context, ns string) (*driver.Stats, error) {
	res, err := s.conn.DescribeIndexStats(ctx)
	if err != nil {
		return nil, err
	}
	names := []string{ns}
	if ns == "" || ns == "__default__" {
		names = []string{"", "__default__"} // servers name the default namespace either way
	}
	st := &driver.Stats{}
	for _, n := range names {
		if d, ok := res.Namespaces[n]; ok && d != nil {
			st.VectorCount += int(d.VectorCount)
		}
	}
	return st, nil
}

func (s *pineconeSource) ListNamespaces(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	var token *string
	for {
		p := &pinecone.ListNamespacesParams{PaginationToken: token}
		if prefix != "" {
			p.Prefix = &prefix
		}
		res, err := s.conn.ListNamespaces(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, n := range res.Namespaces {
			if n != nil && strings.HasPrefix(n.Name, prefix) {
				out = append(out, n.Name)
			}
		}
		if res.Pagination == nil || res.Pagination.Next == "" {
			return out, nil
		}
		next := res.Pagination.Next
		token = &next
	}
}
