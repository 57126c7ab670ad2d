package memvector_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloneiso/cloneiso/clone"

	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/drivertest"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, func(t *testing.T, dim int) driver.Index {
		d, err := memvector.NewDriver(dim, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}

func TestConformanceDurable(t *testing.T) {
	drivertest.RunConformanceTests(t, func(t *testing.T, dim int) driver.Index {
		d, err := memvector.NewDriver(dim, &memvector.Options{Path: filepath.Join(t.TempDir(), "index")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	})
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.gob")
	cc := drivertest.NewClone(t)
	x, err := memvector.Open(3, &memvector.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	err = x.Upsert(t.Context(), cc, []vectorstore.Vector{
		{ID: "a", Values: []float32{3, 4, 0}, Metadata: map[string]any{"tags": []string{"x"}, "n": 2, "ok": true, "s": "y"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := memvector.Open(3, &memvector.Options{Path: path}); !errors.Is(err, clone.ErrConflict) {
		t.Fatalf("a second open of an open index: %v, want ErrConflict", err)
	}
	var d *memvector.Driver
	if !x.As(&d) {
		t.Fatal("As(**memvector.Driver) failed")
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := x.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := x.Upsert(t.Context(), cc, []vectorstore.Vector{{ID: "b", Values: []float32{1, 0, 0}}}); !errors.Is(err, clone.ErrUnavailable) {
		t.Fatalf("Upsert after Close: %v, want ErrUnavailable", err)
	}

	y, err := memvector.Open(3, &memvector.Options{Path: path})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer y.Close()
	vs, err := y.Fetch(t.Context(), cc, []string{"a"})
	if err != nil || len(vs) != 1 {
		t.Fatalf("Fetch after reopen = %v, %v", vs, err)
	}
	if v := vs[0].Values; v[0] < 2.9999 || v[0] > 3.0001 || v[1] < 3.9999 || v[1] > 4.0001 {
		t.Errorf("values after reopen = %v", v)
	}
	if md := vs[0].Metadata; md["s"] != "y" || md["n"] != 2.0 || md["ok"] != true {
		t.Errorf("metadata after reopen = %v", md)
	}
	ms, err := y.Query(t.Context(), cc, vectorstore.Query{Vector: []float32{3, 4, 0}, TopK: 1, Filter: map[string]any{"tags": "x"}})
	if err != nil || len(ms) != 1 {
		t.Fatalf("Query after reopen = %v, %v", ms, err)
	}
	other := drivertest.NewClone(t)
	if vs, err := y.Fetch(t.Context(), other, []string{"a"}); err != nil || len(vs) != 0 {
		t.Fatalf("another clone fetched %v, %v after reopen", vs, err)
	}
	y.Close()

	if _, err := memvector.Open(4, &memvector.Options{Path: path}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("opening with another dimension: %v, want ErrInvalidInput", err)
	}
}

func TestCorruptIndexFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.gob")
	if err := os.WriteFile(path, []byte("not an index"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := memvector.Open(3, &memvector.Options{Path: path})
	if !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("Open of a corrupt file: %v, want ErrInvalidInput", err)
	}
	if _, err := memvector.Open(0, nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("Open with dimension 0: %v", err)
	}
}
