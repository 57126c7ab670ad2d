package embed_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest/embed"
)

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestLocal(t *testing.T) {
	e, err := embed.NewLocal(&embed.LocalOptions{Dimension: 256})
	if err != nil {
		t.Fatal(err)
	}
	var _ embed.Embedder = e
	texts := []string{
		"The cat sat on the mat.",
		"the CAT sat on a mat",
		"Quarterly revenue grew by twelve percent.",
		"!!! ...",
		"",
	}
	vs, err := e.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(texts) {
		t.Fatalf("%d vectors", len(vs))
	}
	for i, v := range vs {
		if len(v) != 256 {
			t.Fatalf("vector %d has %d values", i, len(v))
		}
		if n := dot(v, v); math.Abs(n-1) > 1e-5 {
			t.Fatalf("vector %d has norm² %v", i, n)
		}
	}
	if near, far := dot(vs[0], vs[1]), dot(vs[0], vs[2]); near <= far || near < 0.5 {
		t.Fatalf("similar texts %.3f, unrelated %.3f", near, far)
	}
	again, _ := e.Embed(context.Background(), texts[:1])
	for i := range again[0] {
		if again[0][i] != vs[0][i] {
			t.Fatal("not deterministic")
		}
	}
	if e.Model() != "local-hash-v1/256/2" || e.Dimension() != 256 {
		t.Fatalf("model %q dim %d", e.Model(), e.Dimension())
	}
}

// The vectors are fixed forever: a changed hash would silently mismatch stored ones.
func TestLocalStable(t *testing.T) {
	e, _ := embed.NewLocal(&embed.LocalOptions{Dimension: 8})
	vs, _ := e.Embed(context.Background(), []string{"hello world"})
	got := fmt.Sprintf("%.3f", vs[0])
	const want = "[0.447 0.000 0.000 0.000 0.000 -0.894 0.000 0.000]"
	if got != want {
		t.Fatalf("hello world = %s, want %s", got, want)
	}
}

func TestLocalOptions(t *testing.T) {
	for _, o := range []embed.LocalOptions{{Dimension: -1}, {Dimension: embed.MaxLocalDimension + 1}, {NGram: 6}} {
		if _, err := embed.NewLocal(&o); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	e, _ := embed.NewLocal(nil)
	if e.Dimension() != embed.DefaultLocalDimension {
		t.Fatal(e.Dimension())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Embed(ctx, []string{"x"}); !errors.Is(err, clone.ErrUnavailable) {
		t.Fatal(err)
	}
}

func ExampleLocal() {
	e, _ := embed.NewLocal(&embed.LocalOptions{Dimension: 64})
	vs, _ := e.Embed(context.Background(), []string{"refund policy", "our refund policy is simple", "weather today"})
	fmt.Printf("%.2f %.2f\n", dot(vs[0], vs[1]), dot(vs[0], vs[2]))
	// Output: 0.44 0.00
}
