package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestQuickstart runs the quickstart end to end and checks what it shows: two clones,
// one PDF each, the same question, and each answer drawn from, and citing the page of,
// its own clone's document only.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("quickstart failed: %v\n%s", err, out.String())
	}
	checkOutput(t, out.String())
}

func checkOutput(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{"alice@example.com signed up (new: true)", "bob@example.com signed up (new: true)",
		`ingested "About my business" (application/pdf): 2 chunk(s), ready`,
		"same clone: true", "clone mismatch", "(HTTP 403)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	answers := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if who, answer, ok := strings.Cut(line, "'s clone: "); ok {
			answers[who] = answer
		}
	}
	for who, own := range map[string]string{"alice@example.com": "cardamom bun", "bob@example.com": "touring frame"} {
		if !strings.Contains(answers[who], own) || !strings.Contains(answers[who], "[1, p. 2]") {
			t.Errorf("%s's answer does not cite page 2 of its own document: %q", who, answers[who])
		}
	}
	if strings.Contains(answers["alice@example.com"], "touring") || strings.Contains(answers["bob@example.com"], "cardamom") {
		t.Errorf("an answer drew on the other clone's document:\n%s", out)
	}
}

// TestREADMECommand runs the README's first command exactly as written and checks its
// output like TestQuickstart.
func TestREADMECommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example")
	}
	cmd := exec.Command("go", "run", "./examples/quickstart")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./examples/quickstart: %v\n%s", err, out)
	}
	checkOutput(t, string(out))
}

// TestREADMEShowsCommands keeps the README's two commands at its top, verbatim: the
// quickstart (run by TestREADMECommand) and the test script CI runs.
func TestREADMEShowsCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	block, _, _ := strings.Cut(readme, "\n## ")
	for _, cmd := range []string{"go run ./examples/quickstart", "./internal/ci/test.sh"} {
		if !strings.Contains(block, "\n"+cmd+" ") && !strings.Contains(block, "\n"+cmd+"\n") {
			t.Errorf("the README's introduction lacks the command line %q", cmd)
		}
	}
	if _, err := os.Stat("../../internal/ci/test.sh"); err != nil {
		t.Error(err)
	}
}
