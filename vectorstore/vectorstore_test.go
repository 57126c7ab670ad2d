package vectorstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
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

// The metadata size limit is exact: the JSON encoding (scope keys included) may be
// MaxMetadataBytes long, not one byte more, whatever the characters (escaped ones and
// multi-byte ones are measured as encoding/json writes them), and values are checked
// in place (vectors with NaN or infinite values are refused).
func TestMetadataLimitIsExact(t *testing.T) {
	x, err := memvector.Open(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := drivertest.NewClone(t)
	base, _ := json.Marshal(map[string]any{"s": "", "tenant_id": cc.TenantID().String(), "clone_id": cc.CloneID().String()})
	for _, unit := range []string{"a", "<", "é", "\u2028"} {
		enc, _ := json.Marshal(unit)
		per := len(enc) - 2
		n := (vectorstore.MaxMetadataBytes - len(base)) / per
		fill := strings.Repeat(unit, n)
		pad := vectorstore.MaxMetadataBytes - len(base) - n*per // top up to the limit with "a"
		fits := fill + strings.Repeat("a", pad)
		if b, _ := json.Marshal(map[string]any{"s": fits, "tenant_id": cc.TenantID().String(), "clone_id": cc.CloneID().String()}); len(b) != vectorstore.MaxMetadataBytes {
			t.Fatalf("test setup: %d bytes", len(b))
		}
		if err := x.Upsert(t.Context(), cc, []vectorstore.Vector{{ID: "v", Values: []float32{1, 0}, Metadata: map[string]any{"s": fits}}}); err != nil {
			t.Fatalf("%q: metadata of exactly the limit refused: %v", unit, err)
		}
		err := x.Upsert(t.Context(), cc, []vectorstore.Vector{{ID: "v", Values: []float32{1, 0}, Metadata: map[string]any{"s": fits + "a"}}})
		if !errors.Is(err, clone.ErrTooLarge) {
			t.Fatalf("%q: metadata one byte over the limit: %v", unit, err)
		}
	}
	for _, bad := range [][]float32{{float32(math.NaN()), 1}, {float32(math.Inf(1)), 0}, {0, 0}, {3e38, float32(math.Inf(-1))}} {
		if err := x.Upsert(t.Context(), cc, []vectorstore.Vector{{ID: "v", Values: bad}}); !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("values %v: %v", bad, err)
		}
	}
	for _, ok := range [][]float32{{3e38, 3e38}, {1e-45, 0}} { // overflowing and underflowing squares
		if err := x.Upsert(t.Context(), cc, []vectorstore.Vector{{ID: "v", Values: ok}}); err != nil {
			t.Fatalf("values %v: %v", ok, err)
		}
	}
}
