package clonehttp

import (
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
)

// TestCacheGeneration: a resolution that was in flight while an invalidation ran is not
// cached, so it cannot resurrect the access the invalidation ended.
func TestCacheGeneration(t *testing.T) {
	c := NewCache(nil)
	cc, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: "s"})
	if err != nil {
		t.Fatal(err)
	}
	k := cacheKey{subject: "s"}
	gen := c.generation()
	c.InvalidateClone(uuid.New(), uuid.New()) // any invalidation, even of another clone
	c.putIf(gen, k, cc)
	if _, ok := c.get(k); ok {
		t.Fatal("a resolution from before an invalidation was cached")
	}
	c.putIf(c.generation(), k, cc)
	if got, ok := c.get(k); !ok || !got.Same(cc) {
		t.Fatal("a current resolution was not cached")
	}
	// Entries are keyed by subject and selection: another subject, or the same subject
	// with a selection, misses.
	if _, ok := c.get(cacheKey{subject: "t"}); ok {
		t.Fatal("hit for another subject")
	}
	if _, ok := c.get(cacheKey{subject: "s", tenant: cc.TenantID(), cloneID: cc.CloneID()}); ok {
		t.Fatal("hit for a selection that was never resolved")
	}
	c.Invalidate("t")
	if _, ok := c.get(k); !ok {
		t.Fatal("Invalidate of another subject dropped the entry")
	}
	c.InvalidateTenant(uuid.New())
	if _, ok := c.get(k); !ok {
		t.Fatal("InvalidateTenant of another tenant dropped the entry")
	}
	c.Invalidate("s")
	if _, ok := c.get(k); ok {
		t.Fatal("Invalidate left the entry")
	}
}
