package adversarial_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// edit replaces every occurrence of old in one source file by new.
type edit struct {
	file     string // relative to the module root
	old, new string
	count    int // occurrences of old that must exist (guards against the source drifting)
}

// mutation switches off one isolation mechanism and names the test that targets it: the
// mutant counts as caught only if that very test fails.
type mutation struct {
	name  string
	pkg   string // the expected test's package, e.g. ./internal/adversarial
	test  string // the expected (top-level) test
	edits []edit
}

func one(file, old, new string, count int) []edit { return []edit{{file, old, new, count}} }

const (
	adv       = "./internal/adversarial"
	rlsFile   = "migrate/migrations/postgres/00002_rls.sql"
	clonesqlF = "clone/clonesql/db.go"
	vectorsF  = "vectorstore/vectorstore.go"
	objectsF  = "objectstore/objectstore.go"
)

func forceRLS(table string) mutation {
	return mutation{"forced row-level security on " + table, adv, "TestForcedRLS",
		one(rlsFile, "ALTER TABLE "+table+" FORCE ROW LEVEL SECURITY;\n", "", 1)}
}

// mutations lists one mutant per isolation mechanism SECURITY.md names.
var mutations = []mutation{
	forceRLS("documents"), forceRLS("document_chunks"), forceRLS("insights"),
	forceRLS("training_examples"), forceRLS("conversations"), forceRLS("messages"),
	{"fail-closed policies on an empty setting", adv, "TestForcedRLS", []edit{
		{rlsFile, "(SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)", "COALESCE((SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid), tenant_id)", 12},
		{rlsFile, "(SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid)", "COALESCE((SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid), clone_id)", 12},
	}},
	{"transaction-local settings", adv, "TestMechanisms",
		one(clonesqlF, `.String()) + ", true)`, `.String()) + ", false)`, 2)},
	{"transaction-local settings (pgx pipeline)", adv, "TestMechanisms",
		one("clone/clonesql/pgx.go", `"', $1, true), set_config('" + SettingCloneID + "', $2, true)"`, `"', $1, false), set_config('" + SettingCloneID + "', $2, false)"`, 1)},
	{"namespace derivation", adv, "TestMechanisms",
		one(vectorsF, `func namespaceOf(tenant, cloneID string) string { return "t-" + tenant + "-c-" + cloneID }`,
			`func namespaceOf(tenant, cloneID string) string { return "t-" + tenant + "-c-shared" }`, 1)},
	{"default-namespace refusal (Pinecone driver)", "./vectorstore/pineconevector", "TestDriverRefusesDefaultNamespace",
		one("vectorstore/pineconevector/pineconevector.go", `if ns == "" || ns == "__default__" {`, `if false {`, 1)},
	{"object key prefix", adv, "TestMechanisms",
		one(objectsF, `return "tenants/" + cc.TenantID().String() + "/clones/" + cc.CloneID().String() + "/"`,
			`return "tenants/" + cc.TenantID().String() + "/clones/shared/"`, 1)},
	{"object name validation", adv, "TestAdversarial",
		one("objectstore/name.go", "	if why := nameProblem(name); why != \"\" {\n\t\treturn errs.New(errs.InvalidInput, \"objectstore.ValidateName\"",
			"	if why := nameProblem(name); false && why != \"\" {\n\t\treturn errs.New(errs.InvalidInput, \"objectstore.ValidateName\"", 1)},
	{"driver-level scope (fileobject)", "./objectstore/fileobject", "TestConformance",
		one("objectstore/fileobject/fileobject.go", `if err := driver.CheckKey("fileobject.Get", scope, key); err != nil {`,
			`if err := driver.CheckKey("fileobject.Get", scope, key); false && err != nil {`, 1)},
	{"driver-level scope (s3object)", "./objectstore/s3object", "TestConformance",
		one("objectstore/s3object/s3object.go", `if err := driver.CheckKey("s3object.Get", scope, key); err != nil {`,
			`if err := driver.CheckKey("s3object.Get", scope, key); false && err != nil {`, 1)},
	{"signing prefix check (s3object)", "./objectstore/s3object", "TestConformance",
		one("objectstore/s3object/sign.go", `if err := driver.CheckKey("s3object.SignedURL", scope, key); err != nil {`,
			`if err := driver.CheckKey("s3object.SignedURL", scope, key); false && err != nil {`, 1)},
	{"SQL result re-check", adv, "TestMechanisms",
		one(clonesqlF, "if got != c.want {", "if false && got != c.want {", 1)},
	{"vector result re-check", adv, "TestMechanisms",
		one(vectorsF, "func inScope(md map[string]any, tenant, cloneID string) bool {\n",
			"func inScope(md map[string]any, tenant, cloneID string) bool {\n\tif true {\n\t\treturn true\n\t}\n", 1)},
	{"object owner re-check", adv, "TestMechanisms",
		one(objectsF, "if (hasT && t != cc.TenantID().String()) || (hasC && c != cc.CloneID().String()) {",
			"if false && ((hasT && t != cc.TenantID().String()) || (hasC && c != cc.CloneID().String())) {", 1)},
	{"vector scope filter (portable type)", adv, "TestMechanisms",
		one(vectorsF, "return filter.AndAll(scopeFilterOf(sc.tenant, sc.clone), pf), nil", "return pf, nil", 1)},
	{"vector scope filter (memvector driver)", adv, "TestMechanisms",
		one("vectorstore/memvector/memvector.go", "d.e.Query(ctx, ns, q.Vector, q.TopK, q.Filter, q.IncludeValues)", "d.e.Query(ctx, ns, q.Vector, q.TopK, nil, q.IncludeValues)", 1)},
	{"vector scope filter (Pinecone driver)", adv, "TestMechanisms",
		one("vectorstore/pineconevector/pineconevector.go", "			MetadataFilter:  mf,\n", "			MetadataFilter:  map[bool]*pinecone.MetadataFilter{false: mf}[true],\n", 1)},
	{"statement scope check (:tenant_id and :clone_id required)", adv, "TestAdversarial",
		one("clone/clonesql/named.go", "if !hasTenant || !hasClone {", "if false {", 1)},
	{"IDs bound from the context, never from arguments", adv, "TestAdversarial", []edit{
		{clonesqlF, "if !zero && got != p.want {", "if false && !zero && got != p.want {", 1},
		{clonesqlF, "		case ParamCloneID:\n\t\t\targs[i] = cc.CloneID()\n", "		case ParamCloneID:\n\t\t\targs[i] = cc.CloneID()\n\t\t\tif v, ok := lookup(name); ok {\n\t\t\t\targs[i] = v\n\t\t\t}\n", 1},
	}},
	{"reserved vector metadata keys", adv, "TestAdversarial", []edit{
		{vectorsF, "case k == TenantKey && v != tenant || k == CloneKey && v != cloneID:", "case false:", 1},
		{vectorsF, "case k == TenantKey || k == CloneKey:", "case false:", 1},
	}},
	{"middleware cache key (subject)", adv, "TestAdversarial",
		one("clone/clonehttp/cache.go", "c.entries[k]", "c.entries[cacheKey{tenant: k.tenant, cloneID: k.cloneID}]", 3)},
	{"middleware single-flight key (subject)", "./clone/clonehttp", "TestColdCacheRace",
		one("clone/clonehttp/middleware.go", "string(key.cloneID[:]) + key.subject // fixed-width", "string(key.cloneID[:]) // fixed-width", 1)},
	{"middleware subject assertion", "./clone/clonehttp", "TestSubjectAssertion",
		one("clone/clonehttp/middleware.go", "if err == nil && !matches(cc, p.Subject, key, selected) {", "if false && err == nil && !matches(cc, p.Subject, key, selected) {", 1)},
	{"JWT algorithm allow-list", "./clone/clonehttp/jwtauth", "TestStaticKeyConfusion",
		one("clone/clonehttp/jwtauth/jwtauth.go", "		jwt.WithValidMethods(algs),\n", "", 1)},
	{"JWT issuer check", adv, "TestAdversarial",
		one("clone/clonehttp/jwtauth/jwtauth.go", "		jwt.WithIssuer(issuer),\n", "", 1)},
	{"JWT audience check", adv, "TestAdversarial",
		one("clone/clonehttp/jwtauth/jwtauth.go", "		jwt.WithAudience(audience),\n", "", 1)},
	{"prompt guard", "./rag", "TestPromptGuard",
		one("rag/prompt.go", "	if in == nil {\n\t\treturn nil\n\t}\n\trefuse :=", "	if in != nil {\n\t\treturn nil\n\t}\n\trefuse :=", 1)},
	{"tenant status guard", adv, "TestStatusGuards",
		one("tenant/guard.go", "if c != StatusActive || t != StatusActive {", "if c != StatusActive {", 1)},
	{"clone status guard", adv, "TestStatusGuards",
		one("tenant/guard.go", "if c != StatusActive || t != StatusActive {", "if t != StatusActive {", 1)},
	{"break-glass expiry", "./tenant", "TestBreakGlass",
		one("tenant/breakglass.go", "case !now.Before(gs[i].ExpiresAt):", "case false && !now.Before(gs[i].ExpiresAt):", 1)},
	{"versioned wipe (delete markers)", "./objectstore/s3object", "TestVersionedWipeLeavesNothing",
		one("objectstore/s3object/s3object.go", "for _, m := range out.DeleteMarkers {", "for _, m := range out.DeleteMarkers[:0] {", 1)},
	{"presign clients cached per clone (s3object)", "./objectstore/s3object", "TestSignersNeverSharedAcrossClones",
		one("objectstore/s3object/sign.go", "b.signers[scope]", "b.signers[scope[:strings.Index(scope, \"/clones/\")]]", 2)},
	{"request IDs from clients validated", "./clone/clonehttp", "TestClientRequestIDInjection",
		one("clone/clonehttp/middleware.go", "func validRequestID(s string) bool {\n", "func validRequestID(s string) bool {\n\tif true {\n\t\treturn s != \"\"\n\t}\n", 1)},
	{"audit sink failures logged and counted", "./clone/audit", "TestEmitSinkFailure",
		one("clone/audit/audit.go", "	err := Record(ctx, s, e)\n\tif err != nil {\n", "	err := Record(ctx, s, e)\n\tif false && err != nil {\n", 1)},
	{"break-glass grant and its audit event in one transaction", "./tenant", "TestBreakGlassGrantAndEventOneTransaction",
		one("clone/clonesql/audit_sink.go", "; ok && at.db == s.db && at.tx != nil {", "; false && ok && at.db == s.db && at.tx != nil {", 1)},
	{"audit hash chain verification", "./clone/clonesql", "TestAuditChainDetectsTampering",
		one("clone/clonesql/audit_sink.go", "if !bytes.Equal(row.Hash, want) {", "if false && !bytes.Equal(row.Hash, want) {", 1)},
	{"RLS refusal classified as a clone mismatch", "./clone/clonesql", "TestClassifyErrorPostgres",
		one("clone/clonesql/errors.go", `if strings.Contains(text, "row-level security") {`, `if false && strings.Contains(text, "row-level security") {`, 1)},
	{"unknown database errors are internal, never retryable", "./clone/clonesql", "TestClassifyErrorPostgres",
		one("clone/clonesql/errors.go", "			return errs.Unavailable\n\t\t}\n\t}\n\treturn errs.Internal\n}\n", "			return errs.Unavailable\n\t\t}\n\t}\n\treturn errs.Unavailable\n}\n", 1)},
	{"nil and max UUIDs refused as IDs", "./clone", "TestNewRejectsReservedIDs",
		one("clone/id.go", "	if id == uuid.Max {\n", "	if false && id == uuid.Max {\n", 1)},
	{"tenant roles open no clone", "./tenant", "TestResolveCloneRules",
		one("tenant/access.go", "allowed := row.OwnerSubject == subject || row.Granted > 0\n", "allowed := row.OwnerSubject == subject || row.Granted > 0 || role == RoleOwner || role == RoleAdmin\n", 1)},
	{"role membership walked by the isolation check", "./migrate", "TestCheckIsolationRoleGraph",
		one("migrate/check.go", "for _, e := range g.grants[cur.oid] {", "for _, e := range g.grants[cur.oid][:0] {", 1)},
	{"isolation check fails closed on a broken read", "./migrate", "TestCheckIsolationFailsClosed",
		one("migrate/check.go", "	if err := rows.Err(); err != nil {\n\t\treturn err\n\t}\n\treturn rows.Close()\n", "	if err := rows.Err(); err != nil {\n\t\treturn nil\n\t}\n\treturn rows.Close()\n", 1)},
	{"failed ingestion compensated", "./ingest", "TestFaultAtEveryStepLeavesNothing",
		one("ingest/ingest.go", "err = errors.Join(err, p.compensate(ctx, cc, a, err))", "err = errors.Join(err, nil)", 1)},
	{"PDFium instances kept per clone: the tenant is in the key", "./ingest/extract", "TestPDFInstanceReuseIsPerClone",
		one("ingest/extract/pdf.go", "return pdfCloneKey{cc.TenantID(), cc.CloneID()}, true", "return pdfCloneKey{clone: cc.CloneID()}, true", 1)},
	{"PDFium instances kept per clone: never shared", "./ingest/extract", "TestPDFInstanceReuseIsPerClone",
		one("ingest/extract/pdf.go", "return pdfCloneKey{cc.TenantID(), cc.CloneID()}, true", "return pdfCloneKey{}, true", 1)},
	{"offboarding tombstone", "./tenant", "TestOffboardClone",
		one("tenant/offboard.go", "StatusOffboarded, a.clock(), r.TenantID, r.CloneID, StatusOffboarding)", "StatusOffboarding, a.clock(), r.TenantID, r.CloneID, StatusOffboarding)", 1)},
}

// testEvent is one line of `go test -json`.
type testEvent struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// runTests runs `go test -json -run '^(tests)$' pkg` in the module copy at dir and
// returns the tests that failed (by exact name, subtests included) and the output.
func runTests(t *testing.T, dir, pkg string, tests []string) (failed map[string]bool, passed map[string]bool, out string) {
	t.Helper()
	// No wall-clock bound of its own: building a mutant's packages can take many minutes on
	// a loaded machine. The child stops when this test's own deadline (go test -timeout)
	// comes, and its test binary has a generous -timeout of its own.
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-json", "-trimpath", "-count=1", "-timeout", "20m", "-run", "^("+strings.Join(tests, "|")+")$", pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CLONEISO_MUTATION_TESTS=0", "CLONEISO_REQUIRE_SERVICES=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run() // a failing test exits non-zero; the events say which
	failed, passed = map[string]bool{}, map[string]bool{}
	var text strings.Builder
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev testEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			text.WriteString(sc.Text() + "\n") // not an event (e.g. a build error)
			continue
		}
		text.WriteString(ev.Output)
		switch {
		case ev.Action == "fail" && ev.Test != "":
			failed[ev.Test] = true
		case ev.Action == "pass" && ev.Test != "":
			passed[ev.Test] = true
		}
	}
	text.WriteString(stderr.String())
	if runErr != nil && len(failed) == 0 {
		fmt.Fprintf(&text, "go test %s: %v", pkg, runErr) // a build failure, or killed at the deadline
		if ctx.Err() != nil {
			text.WriteString(" (stopped at this test's deadline)")
		}
	}
	return failed, passed, text.String()
}

// TestSensitivity proves the suite can fail: for each isolation mechanism SECURITY.md
// names it builds a copy of the module with that mechanism switched off and runs the
// one test that targets the mechanism (only its package, only that test). The mutant
// counts as caught only if that test reports a failure in `go test -json` — not a build
// error, not another test. The unmodified copy must pass every expected test first. It
// is slow (a build per mutant) and runs when CLONEISO_MUTATION_TESTS=1 (the test
// command sets it); CLONEISO_MUTANTS=substring runs only the mutants whose name
// contains it (several substrings separated by "|" select every mutant matching one).
func TestSensitivity(t *testing.T) {
	if os.Getenv("CLONEISO_MUTATION_TESTS") != "1" {
		t.Skip("set CLONEISO_MUTATION_TESTS=1 to build and attack one mutant per isolation mechanism (slow)")
	}
	if len(mutations) < 20 {
		t.Fatalf("%d mutants; the suite promises at least 20", len(mutations))
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files := moduleFiles(t, root)
	selected := mutations
	if f := os.Getenv("CLONEISO_MUTANTS"); f != "" {
		selected = nil
		for _, m := range mutations {
			for _, alt := range strings.Split(f, "|") {
				if alt != "" && strings.Contains(m.name, alt) {
					selected = append(selected, m)
					break
				}
			}
		}
	}
	copyModule := func(t *testing.T, m *mutation) string {
		dir := t.TempDir()
		for _, f := range files {
			copyFile(t, filepath.Join(root, f), filepath.Join(dir, f))
		}
		if m == nil {
			return dir
		}
		for _, e := range m.edits {
			p := filepath.Join(dir, e.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), e.old); n != e.count {
				t.Fatalf("mutation %q: %d occurrences of the code to switch off in %s; want %d (update the mutation)", m.name, n, e.file, e.count)
			}
			if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), e.old, e.new)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}

	// The unmodified copy passes every expected test.
	byPkg := map[string][]string{}
	for _, m := range selected {
		if !contains(byPkg[m.pkg], m.test) {
			byPkg[m.pkg] = append(byPkg[m.pkg], m.test)
		}
	}
	pkgs := make([]string, 0, len(byPkg))
	for p := range byPkg {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	// Packages and mutants build and run CLONEISO_MUTATION_PARALLEL (default 2) at a time.
	parallel := 2
	if v := os.Getenv("CLONEISO_MUTATION_PARALLEL"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			parallel = n
		}
	}
	sem := make(chan struct{}, parallel)
	t.Run("unmodified copy passes", func(t *testing.T) {
		dir := copyModule(t, nil)
		for _, p := range pkgs {
			t.Run(p, func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				failed, passed, out := runTests(t, dir, p, byPkg[p])
				for _, name := range byPkg[p] {
					if failed[name] || !passed[name] {
						t.Fatalf("%s %s does not pass on an unmodified copy of the module:\n%s", p, name, out)
					}
				}
			})
		}
	})
	if t.Failed() {
		return
	}

	caught := make([]string, len(selected))
	t.Run("mutants", func(t *testing.T) {
		for i := range selected {
			m := &selected[i]
			caught[i] = "NO"
			t.Run("without "+m.name, func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				dir := copyModule(t, m)
				failed, passed, out := runTests(t, dir, m.pkg, []string{m.test})
				switch {
				case failed[m.test]:
					caught[i] = "yes"
				case strings.Contains(out, "[build failed]") || strings.Contains(out, "[setup failed]"):
					caught[i] = "build"
					t.Fatalf("the mutant does not build, so it proves nothing:\n%s", out)
				case passed[m.test]:
					t.Fatalf("%s PASSES with %s switched off: it cannot detect that mechanism's failure\n%s", m.test, m.name, out)
				default:
					t.Fatalf("%s neither passed nor failed with %s switched off:\n%s", m.test, m.name, out)
				}
			})
		}
	})
	detected := 0
	for i, m := range selected {
		t.Logf("sensitivity: | %-58s | %-70s | %-6s |", m.name, m.pkg+" "+m.test, caught[i])
		if caught[i] == "yes" {
			detected++
		}
	}
	t.Logf("sensitivity: %d of %d mutants (one isolation mechanism switched off each) caught by their expected test", detected, len(selected))
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// moduleFiles lists the files of the module (tracked and untracked-but-not-ignored).
func moduleFiles(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f == "" || strings.HasPrefix(f, ".git/") {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, f)); err == nil { // deleted but still tracked
			files = append(files, f)
		}
	}
	return files
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMutationsApply checks, without building anything, that every mutant still finds
// the code it switches off (the source may have moved on), that every mechanism has
// one mutant only once, and that there are at least 20.
func TestMutationsApply(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range mutations {
		if names[m.name] {
			t.Errorf("two mutants named %q", m.name)
		}
		names[m.name] = true
		if m.pkg == "" || !strings.HasPrefix(m.test, "Test") || len(m.edits) == 0 {
			t.Errorf("mutant %q: incomplete (package %q, test %q, %d edits)", m.name, m.pkg, m.test, len(m.edits))
		}
		for _, e := range m.edits {
			b, err := os.ReadFile(filepath.Join(root, e.file))
			if err != nil {
				t.Errorf("mutant %q: %v", m.name, err)
				continue
			}
			if n := strings.Count(string(b), e.old); n != e.count {
				t.Errorf("mutant %q: %d occurrences of the code to switch off in %s; want %d (update the mutation)", m.name, n, e.file, e.count)
			}
		}
	}
	if len(mutations) < 20 {
		t.Errorf("%d mutants; want at least 20", len(mutations))
	}
}
