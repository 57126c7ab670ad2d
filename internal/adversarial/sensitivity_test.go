package adversarial_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mutation switches off one isolation mechanism by editing one source file.
type mutation struct {
	name     string
	file     string // relative to the module root
	old, new string
	count    int // occurrences of old that must exist (guards against the source drifting)
}

var mutations = []mutation{
	{"forced row-level security", "migrate/migrations/postgres/00002_rls.sql",
		"ALTER TABLE insights FORCE ROW LEVEL SECURITY;\n", "", 1},
	{"transaction-local settings", "clone/clonesql/db.go",
		`.String()) + ", true)`, `.String()) + ", false)`, 2},
	{"namespace derivation", "vectorstore/vectorstore.go",
		`func namespaceOf(tenant, cloneID string) string { return "t-" + tenant + "-c-" + cloneID }`,
		`func namespaceOf(tenant, cloneID string) string { return "t-" + tenant + "-c-shared" }`, 1},
	{"object key prefix", "objectstore/objectstore.go",
		`return "tenants/" + cc.TenantID().String() + "/clones/" + cc.CloneID().String() + "/"`,
		`return "tenants/" + cc.TenantID().String() + "/clones/shared/"`, 1},
	{"vector result re-check", "vectorstore/vectorstore.go",
		"func inScope(md map[string]any, tenant, cloneID string) bool {\n",
		"func inScope(md map[string]any, tenant, cloneID string) bool {\n\tif true {\n\t\treturn true\n\t}\n", 1},
	{"SQL result re-check", "clone/clonesql/db.go",
		"if got != c.want {", "if false && got != c.want {", 1},
	{"object owner re-check", "objectstore/objectstore.go",
		"if (hasT && t != cc.TenantID().String()) || (hasC && c != cc.CloneID().String()) {",
		"if false && ((hasT && t != cc.TenantID().String()) || (hasC && c != cc.CloneID().String())) {", 1},
	{"vector scope filter", "vectorstore/vectorstore.go",
		"return filter.AndAll(scopeFilterOf(sc.tenant, sc.clone), pf), nil", "return pf, nil", 1},
}

// TestSensitivity proves the suite can fail: for each isolation mechanism it builds a
// copy of the module with that mechanism switched off and asserts that TestAdversarial
// or TestMechanisms fails on it, and that the unmodified copy passes.
func TestSensitivity(t *testing.T) {
	if os.Getenv("CLONEISO_MUTATION_TESTS") != "1" {
		t.Skip("set CLONEISO_MUTATION_TESTS=1 to build and attack one mutant per isolation mechanism (slow)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files := moduleFiles(t, root)
	run := func(t *testing.T, m *mutation) (string, bool) {
		dir := t.TempDir()
		for _, f := range files {
			copyFile(t, filepath.Join(root, f), filepath.Join(dir, f))
		}
		if m != nil {
			p := filepath.Join(dir, m.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), m.old); n != m.count {
				t.Fatalf("mutation %q: %d occurrences of the code to switch off in %s; want %d (update the mutation)", m.name, n, m.file, m.count)
			}
			if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), m.old, m.new)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "test", "-trimpath", "-count=1", "-run", "^(TestAdversarial|TestMechanisms)$", "./internal/adversarial")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CLONEISO_MUTATION_TESTS=0", "CLONEISO_REQUIRE_SERVICES=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err == nil
	}
	t.Run("unmodified copy passes", func(t *testing.T) {
		if out, ok := run(t, nil); !ok {
			t.Fatalf("the suite fails on an unmodified copy of the module:\n%s", out)
		}
	})
	detected := 0
	defer func() {
		t.Logf("sensitivity: %d of %d mutants (one isolation mechanism switched off each) caught", detected, len(mutations))
	}()
	for i := range mutations {
		m := &mutations[i]
		ok := t.Run("without "+m.name, func(t *testing.T) {
			out, ok := run(t, m)
			if ok {
				t.Fatalf("the suite PASSES with %s switched off: it cannot detect that mechanism's failure\n%s", m.name, out)
			}
			if strings.Contains(out, "build failed") || strings.Contains(out, "[setup failed]") {
				t.Fatalf("the mutant does not build, so it proves nothing:\n%s", out)
			}
			var caught []string
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "LEAK") || strings.Contains(line, "want") {
					caught = append(caught, strings.TrimSpace(line))
				}
			}
			if len(caught) == 0 {
				t.Fatalf("the suite failed without naming a leak or a broken expectation:\n%s", out)
			}
			t.Logf("caught: %.200s", caught[0])
		})
		if ok {
			detected++
		}
	}
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
