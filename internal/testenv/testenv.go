// Package testenv tells tests whether the real services they need are present.
//
// Tests that need a real service (PostgreSQL, an S3-compatible server) call [Missing]
// when the service cannot be reached: without CLONEISO_REQUIRE_SERVICES the test is
// skipped with the reason; with CLONEISO_REQUIRE_SERVICES=1 (set by the README's test
// command and CI) it fails, so a run that was meant to exercise the real thing cannot
// pass by skipping it.
package testenv

import (
	"os"
	"testing"
)

// RequireServicesEnv is the environment variable that turns a missing service from a
// skip into a failure.
const RequireServicesEnv = "CLONEISO_REQUIRE_SERVICES"

// ServicesRequired reports whether CLONEISO_REQUIRE_SERVICES is set to 1 or true.
func ServicesRequired() bool {
	v := os.Getenv(RequireServicesEnv)
	return v == "1" || v == "true"
}

// Missing skips t (or fails it, when services are required) because service is not
// available for reason.
func Missing(t testing.TB, service, reason string) {
	t.Helper()
	if ServicesRequired() {
		t.Fatalf("%s is required (%s=1) but not available: %s", service, RequireServicesEnv, reason)
	}
	t.Skipf("%s not available (%s); set it up or run the README's test command", service, reason)
}
