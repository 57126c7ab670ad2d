package pineconevector

import (
	"context"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso/vectorstore/driver"
)

var _ driver.NamespaceLister = (*Driver)(nil)

// Namespaces implements driver.NamespaceLister with DescribeIndexStats: every namespace
// of the index (the default one as "__default__" or "") with its vector count.
func (d *Driver) Namespaces(ctx context.Context) (map[string]int, error) {
	var st *pinecone.DescribeIndexStatsResponse
	err := d.do(ctx, func(ctx context.Context) error {
		var err error
		st, err = d.conn.DescribeIndexStats(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(st.Namespaces))
	for ns, s := range st.Namespaces {
		if s != nil {
			out[ns] = int(s.VectorCount)
		}
	}
	return out, nil
}
