package migrate

import (
	"slices"
	"strings"
	"testing"
)

// TestRoleGraphReach checks which grants reach follows, including the per-grant
// options of PostgreSQL 16 and newer that the test server (15) cannot produce: a grant
// is followed if it allows SET ROLE, inheritance or ADMIN, and not otherwise.
func TestRoleGraphReach(t *testing.T) {
	g := &roleGraph{roles: map[int64]roleInfo{}, byName: map[string]int64{}, grants: map[int64][]roleGrant{}, owns: map[int64][]string{}}
	add := func(oid int64, ri roleInfo) {
		g.roles[oid], g.byName[ri.name] = ri, oid
	}
	add(1, roleInfo{name: "app"})
	add(2, roleInfo{name: "set_only", super: true})
	add(3, roleInfo{name: "inherit_only", bypassRLS: true})
	add(4, roleInfo{name: "admin_only", createRole: true})
	add(5, roleInfo{name: "nothing", super: true})
	add(6, roleInfo{name: "mid"})
	add(7, roleInfo{name: "owner"})
	add(8, roleInfo{name: "behind_nothing", super: true})
	g.owns[7] = []string{"insights"}
	g.grants[1] = []roleGrant{
		{group: 2, set: true},
		{group: 3, inherit: true},
		{group: 4, admin: true},
		{group: 5},
		{group: 6, set: true},
	}
	g.grants[5] = []roleGrant{{group: 8, set: true, inherit: true}}
	g.grants[6] = []roleGrant{{group: 7, inherit: true}} // SET ROLE mid, then inherit owner
	var got []string
	for _, rr := range g.reach(1) {
		got = append(got, strings.Join(g.names(rr.path), ">"))
	}
	want := []string{"app", "app>set_only", "app>inherit_only", "app>admin_only", "app>mid", "app>mid>owner"}
	if !slices.Equal(got, want) {
		t.Fatalf("reach = %v; want %v", got, want)
	}
	rr := g.reach(1)[5]
	d := g.dangers(rr.oid)
	if len(d) != 1 || d[0].code != ProblemRoleOwnsTable || d[0].table != "insights" {
		t.Fatalf("dangers of owner: %+v", d)
	}
	if s := g.describe(rr, d[0].what); s != "role app is a member of mid (can SET ROLE, does not inherit), which is a member of owner (cannot SET ROLE, inherits its privileges), which owns table insights" {
		t.Fatalf("describe: %s", s)
	}
	if _, _, unsafe := g.firstDanger(6); !unsafe {
		t.Fatal("mid inherits from a table owner and is not judged unsafe")
	}
	if _, _, unsafe := g.firstDanger(8); !unsafe {
		t.Fatal("a superuser is not judged unsafe")
	}
	add(9, roleInfo{name: "plain"})
	if _, _, unsafe := g.firstDanger(9); unsafe {
		t.Fatal("a plain role is judged unsafe")
	}
}
