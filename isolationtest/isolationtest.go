// Package isolationtest proves, for a host application's own wiring, that no clone can
// reach another clone's data: a test kit for the host's test suite.
//
// Describe how data enters and leaves the application as Surfaces (the SDK's stores
// have ready-made ones: [SQLSurface], [VectorSurface], [ObjectSurface]; HTTP endpoints
// and anything else are written as functions) and attack paths as Probes (an HTTP
// request, a chat question, a search that names the victim's data). [Kit.Run] then
//
//  1. provisions two clones through the host's own NewActor (for example a first
//     sign-in through its HTTP API),
//  2. seeds a unique canary string per clone into every surface, through the host's
//     own code paths,
//  3. observes every surface as each clone and asserts that the clone sees its own
//     canary there (the data exists, so the test can fail) and no canary of the other
//     clone anywhere,
//  4. runs every probe as each clone aimed at the other clone's canaries and asserts
//     that the answer contains none of them.
//
// Every leak is reported with the surface or probe that showed it. The kit only reads
// what the host's functions return: it works for any store and any transport.
package isolationtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
)

// Actor is a clone as the host application sees it.
type Actor struct {
	// Name labels the actor in failure messages ("A", "B").
	Name string
	// CC is the clone's context.
	CC clone.CloneContext
	// Token authenticates the actor's HTTP requests (as "Authorization: Bearer"), if the
	// host's surfaces or probes use HTTP.
	Token string
}

// Surface is one place where a clone's data is stored and read back.
type Surface struct {
	// Name labels the surface in failure messages.
	Name string
	// Seed stores canary as actor a's data, through the host's own code path.
	Seed func(ctx context.Context, a Actor, canary string) error
	// Observe returns, as text, everything actor a can read through this surface.
	Observe func(ctx context.Context, a Actor) (string, error)
}

// Probe is an attack path: it acts as actor a, aimed at a victim's canaries (for
// example it searches for them, asks about them, or requests them by name), and returns
// what a got back as text.
type Probe struct {
	Name string
	Run  func(ctx context.Context, a Actor, victimCanaries []string) (string, error)
}

// Kit configures a run.
type Kit struct {
	// NewActor provisions a fresh clone through the host's own path and returns it.
	// It is called twice per run, with the names "A" and "B".
	NewActor func(ctx context.Context, name string) (Actor, error)
	// Surfaces where each clone stores data; at least one.
	Surfaces []Surface
	// Probes run after seeding.
	Probes []Probe
	// AllowProbeErrors lets a probe fail with an error (e.g. a 404 answered as an
	// error) instead of failing the run; the error text is still searched for canaries.
	AllowProbeErrors bool
}

// Result summarizes a run.
type Result struct {
	Surfaces     int      // surfaces seeded and observed
	Probes       int      // probe runs (each probe once per actor)
	Observations int      // texts searched for canaries
	Leaks        int      // canaries of the other clone found
	Findings     []string // every leak and failure, in order
}

// Run executes the kit as a test: it fails t on any finding (a leak, a surface that
// does not show a clone its own canary, an error) and logs the counts.
func (k *Kit) Run(t testing.TB) Result {
	t.Helper()
	res, err := k.Check(context.Background())
	for _, f := range res.Findings {
		t.Errorf("isolationtest: %s", f)
	}
	if err != nil && len(res.Findings) == 0 {
		t.Errorf("isolationtest: %v", err)
	}
	t.Logf("isolationtest: %d surfaces, %d probe runs, %d observations, %d leaks", res.Surfaces, res.Probes, res.Observations, res.Leaks)
	return res
}

// Check executes the kit and returns its result; the error is non-nil if there is any
// finding. Use it outside tests (a staging smoke check); in tests use [Kit.Run].
func (k *Kit) Check(ctx context.Context) (Result, error) {
	var res Result
	fail := func(format string, args ...any) { res.Findings = append(res.Findings, fmt.Sprintf(format, args...)) }
	done := func() (Result, error) {
		if len(res.Findings) > 0 {
			return res, fmt.Errorf("isolationtest: %d findings, %d leaks; first: %s", len(res.Findings), res.Leaks, res.Findings[0])
		}
		return res, nil
	}
	if k.NewActor == nil || len(k.Surfaces) == 0 {
		fail("Kit needs NewActor and at least one Surface")
		return done()
	}
	var actors []Actor
	for _, name := range []string{"A", "B"} {
		a, err := k.NewActor(ctx, name)
		if err != nil {
			fail("provisioning actor %s: %v", name, err)
			return done()
		}
		actors = append(actors, a)
	}
	if actors[0].CC.Same(actors[1].CC) {
		fail("NewActor returned the same clone twice (%s)", actors[0].CC)
		return done()
	}
	// canaries[i][s] is actor i's canary in surface s.
	canaries := make([][]string, len(actors))
	for i, a := range actors {
		for _, s := range k.Surfaces {
			c := fmt.Sprintf("canary-%s-%s-%s", a.Name, sanitize(s.Name), uuid.NewString())
			canaries[i] = append(canaries[i], c)
			if err := s.Seed(ctx, a, c); err != nil {
				fail("seeding %s as %s: %v", s.Name, a.Name, err)
				return done()
			}
		}
	}
	res.Surfaces = len(k.Surfaces)
	check := func(where string, a Actor, other []string, text string) {
		res.Observations++
		for _, c := range other {
			if strings.Contains(text, c) {
				res.Leaks++
				fail("LEAK: %s as %s (%s) shows the other clone's canary %s", where, a.Name, a.CC, c)
			}
		}
	}
	for i, a := range actors {
		other := canaries[1-i]
		for si, s := range k.Surfaces {
			text, err := s.Observe(ctx, a)
			if err != nil {
				fail("observing %s as %s: %v", s.Name, a.Name, err)
				continue
			}
			if !strings.Contains(text, canaries[i][si]) {
				fail("%s as %s does not show the clone's own canary %s: the surface cannot prove isolation", s.Name, a.Name, canaries[i][si])
			}
			check("surface "+s.Name, a, other, text)
		}
		for _, p := range k.Probes {
			res.Probes++
			text, err := p.Run(ctx, a, slices.Clone(other))
			if err != nil {
				if !k.AllowProbeErrors {
					fail("probe %s as %s: %v", p.Name, a.Name, err)
				}
				text += "\n" + err.Error()
			}
			check("probe "+p.Name, a, other, text)
		}
	}
	return done()
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}
