package pineconevector_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/drivertest"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
)

// The opt-in run against a real Pinecone index. It needs:
//
//	PINECONE_API_KEY              an API key of the project
//	CLONEISO_TEST_PINECONE_HOST   the host of a serverless index of dimension 4 and
//	                              metric cosine (e.g. https://test-abc123.svc....pinecone.io)
//
// It writes only to namespaces it creates (random names) and deletes them when done.
const (
	envAPIKey = "PINECONE_API_KEY"
	envHost   = "CLONEISO_TEST_PINECONE_HOST"
)

func realIndex(t *testing.T) (host, key string) {
	t.Helper()
	host, key = os.Getenv(envHost), os.Getenv(envAPIKey)
	if host == "" || key == "" {
		t.Skipf("real Pinecone run skipped: set %s and %s (a serverless index of dimension %d, metric cosine) to run it", envAPIKey, envHost, drivertest.Dim)
	}
	return host, key
}

// cleaning deletes, when the test ends, every namespace the suite wrote to.
type cleaning struct {
	driver.Index
	mu  sync.Mutex
	nss map[string]bool
}

func (c *cleaning) Upsert(ctx context.Context, ns string, vs []driver.Vector) error {
	err := c.Index.Upsert(ctx, ns, vs)
	if err == nil {
		c.mu.Lock()
		c.nss[ns] = true
		c.mu.Unlock()
	}
	return err
}

// TestRealPinecone runs the conformance suite, in its eventually consistent mode, and
// the driver's own checks that need no fault injection, against a real index.
func TestRealPinecone(t *testing.T) {
	host, key := realIndex(t)
	openReal := func(t *testing.T, dim int) driver.Index {
		d, err := pineconevector.NewDriver(host, dim, &pineconevector.Options{APIKey: key, SourceTag: "cloneiso_test"})
		if err != nil {
			t.Fatal(err)
		}
		c := &cleaning{Index: d, nss: map[string]bool{}}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for ns := range c.nss {
				if err := d.DeleteNamespace(ctx, ns); err != nil {
					t.Logf("cleaning up namespace %s: %v", ns, err)
				}
			}
			d.Close()
		})
		return c
	}
	t.Run("Conformance", func(t *testing.T) {
		drivertest.RunConformanceTestsWith(t, openReal, &drivertest.Options{Eventual: true, PollInterval: time.Second, Wait: 2 * time.Minute})
	})
	t.Run("WrongAPIKey", func(t *testing.T) {
		d, err := pineconevector.NewDriver(host, drivertest.Dim, &pineconevector.Options{APIKey: "not-a-key", Retry: fastRetry()})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		x, _ := vectorstore.NewIndex(d, nil)
		if _, err := x.Stats(t.Context(), drivertest.NewClone(t)); !errors.Is(err, clone.ErrUnavailable) {
			t.Fatalf("wrong API key: %v, want ErrUnavailable", err)
		}
	})
	t.Run("DefaultNamespaceRefused", func(t *testing.T) {
		d := openReal(t, drivertest.Dim)
		for _, ns := range []string{"", "__default__"} {
			if err := d.Upsert(t.Context(), ns, []driver.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}}}); !errors.Is(err, clone.ErrInvalidInput) {
				t.Errorf("Upsert into %q: %v", ns, err)
			}
		}
	})
}
