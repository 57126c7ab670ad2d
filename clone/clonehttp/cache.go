package clonehttp

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
)

// Cache defaults.
const (
	DefaultCacheEntries = 10000
	DefaultCacheTTL     = 30 * time.Second
)

// CacheOptions tune a [Cache]. A nil *CacheOptions, and every zero field, means the
// default.
type CacheOptions struct {
	// MaxEntries bounds the number of cached resolutions (default 10000). When full,
	// expired entries are dropped first, then arbitrary ones.
	MaxEntries int
	// TTL is how long a resolution is reused (default 30 s). It bounds how long a
	// suspension, an offboarding or a revoked grant takes to bite in a process that was
	// not told with an Invalidate call.
	TTL time.Duration
	// Now is the clock (default time.Now); for tests.
	Now func() time.Time
}

// Cache remembers, per subject and clone selection, the CloneContext the middleware
// resolved, so that most requests cost no database round trip. Only successful
// resolutions are cached; refusals always go back to the store.
//
// Entries expire after the TTL. Whatever suspends, offboards or takes away access must
// call [Cache.InvalidateClone], [Cache.InvalidateTenant] or [Cache.Invalidate] so the
// change applies to the next request: a tenant.Store given the cache
// (tenant.StoreOptions.Cache) does so for every such change made through it or its
// tenant.Admin; a resolution that was in flight while an
// invalidation happened is not cached. Invalidation is local to the process: with several
// processes, each must be told, or the TTL bounds the delay.
//
// A Cache is safe for concurrent use.
type Cache struct {
	mu      sync.RWMutex
	entries map[cacheKey]cacheEntry
	max     int
	ttl     time.Duration
	now     func() time.Time
	gen     atomic.Uint64 // bumped by every invalidation
}

// cacheKey is one resolution: a subject and its explicit selection (uuid.Nil, uuid.Nil
// for "the subject's own clone").
type cacheKey struct {
	subject         string
	tenant, cloneID uuid.UUID
}

type cacheEntry struct {
	cc      clone.CloneContext
	expires time.Time
}

// NewCache returns an empty Cache.
func NewCache(opts *CacheOptions) *Cache {
	var o CacheOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultCacheEntries
	}
	if o.TTL <= 0 {
		o.TTL = DefaultCacheTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Cache{entries: make(map[cacheKey]cacheEntry), max: o.MaxEntries, ttl: o.TTL, now: o.Now}
}

func (c *Cache) get(k cacheKey) (clone.CloneContext, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return clone.CloneContext{}, false
	}
	return e.cc, true
}

// generation returns a token to pass to putIf: taken before a resolution starts, it
// makes putIf drop the result if an invalidation happened meanwhile.
func (c *Cache) generation() uint64 { return c.gen.Load() }

func (c *Cache) putIf(gen uint64, k cacheKey, cc clone.CloneContext) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	c.entries[k] = cacheEntry{cc: cc, expires: now.Add(c.ttl)}
}

// evictLocked makes room: expired entries first, then arbitrary ones (Go's map order),
// a sixteenth of the capacity at a time so that a full cache is not swept on every put.
func (c *Cache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) < c.max {
		return
	}
	n := len(c.entries) - c.max + 1 + c.max/16
	for k := range c.entries {
		if n <= 0 {
			break
		}
		delete(c.entries, k)
		n--
	}
}

// Invalidate drops every cached resolution of subject (call it after removing a member
// or revoking a grant).
func (c *Cache) Invalidate(subject string) {
	c.drop(func(k cacheKey, _ cacheEntry) bool { return k.subject == subject })
}

// InvalidateClone drops every cached resolution to clone cloneID of tenant tenantID, by
// any subject (call it after suspending or offboarding the clone).
func (c *Cache) InvalidateClone(tenantID, cloneID uuid.UUID) {
	c.drop(func(_ cacheKey, e cacheEntry) bool {
		return e.cc.TenantID() == tenantID && e.cc.CloneID() == cloneID
	})
}

// InvalidateTenant drops every cached resolution to any clone of tenant tenantID (call
// it after suspending or offboarding the tenant, or changing a member's role).
func (c *Cache) InvalidateTenant(tenantID uuid.UUID) {
	c.drop(func(_ cacheKey, e cacheEntry) bool { return e.cc.TenantID() == tenantID })
}

// Purge drops every entry.
func (c *Cache) Purge() { c.drop(func(cacheKey, cacheEntry) bool { return true }) }

// Len returns the number of entries, expired ones included until they are evicted.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

func (c *Cache) drop(match func(cacheKey, cacheEntry) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1) // under the lock: a putIf cannot slip between the bump and the sweep
	for k, e := range c.entries {
		if match(k, e) {
			delete(c.entries, k)
		}
	}
}
