package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("quickstart failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"alice signed up (new: true)", "same clone: true", "clone mismatch", "(HTTP 403)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestREADMECommand runs the README's first command exactly as written.
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
	if !strings.Contains(string(out), "(HTTP 403)") {
		t.Fatalf("unexpected output:\n%s", out)
	}
}
