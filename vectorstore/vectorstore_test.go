package vectorstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/drivertest"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

func TestNewIndexRejectsNilDriver(t *testing.T) {
	if _, err := vectorstore.NewIndex(nil, nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("NewIndex(nil) = %v", err)
	}
}

func TestScopeFilter(t *testing.T) {
	cc := drivertest.NewClone(t)
	f, err := vectorstore.ScopeFilter(cc)
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]any{"tenant_id": cc.TenantID().String(), "clone_id": cc.CloneID().String()}
	if !f.Match(own) {
		t.Fatalf("scope filter %s does not match the clone's own metadata", f)
	}
	sib := drivertest.SameTenantClone(t, cc)
	if f.Match(map[string]any{"tenant_id": cc.TenantID().String(), "clone_id": sib.CloneID().String()}) {
		t.Fatalf("scope filter %s matches a sibling clone", f)
	}
	if _, err := vectorstore.ScopeFilter(clone.CloneContext{}); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Fatalf("ScopeFilter of the zero context: %v", err)
	}
}

// failing is a backend whose every query fails with err.
type failing struct {
	driver.Index
	err error
}

func (f failing) Query(context.Context, string, *driver.Query) ([]driver.Match, error) {
	return nil, f.err
}

func TestBackendErrorsAreClassified(t *testing.T) {
	d, err := memvector.NewDriver(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	cc := drivertest.NewClone(t)
	for _, tc := range []struct {
		cause error
		want  error
	}{
		{boom, clone.ErrUnavailable},
		{context.Canceled, clone.ErrCanceled},
		{context.DeadlineExceeded, clone.ErrUnavailable},
		{clone.ErrNotFound, clone.ErrNotFound},
	} {
		x, err := vectorstore.NewIndex(failing{d, tc.cause}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = x.Query(t.Context(), cc, vectorstore.Query{Vector: []float32{1, 0}, TopK: 1})
		if !errors.Is(err, tc.want) || !errors.Is(err, tc.cause) {
			t.Errorf("cause %v: got %v, want kind %v with the cause reachable", tc.cause, err, tc.want)
		}
	}
}
