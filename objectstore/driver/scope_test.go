package driver_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore/driver"
)

func TestCheckKeyAndPrefix(t *testing.T) {
	const scope = "tenants/t/clones/c/"
	for _, k := range []string{scope + "docs/a", scope + "docs/a/b.txt", scope + "x"} {
		if err := driver.CheckKey("test", scope, k); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", k, err)
		}
	}
	for _, p := range []string{scope, scope + "do", scope + "docs/", scope + "docs/re", scope + "docs/.."} {
		if err := driver.CheckPrefix("test", scope, p); err != nil {
			t.Errorf("CheckPrefix(%q) = %v, want nil", p, err)
		}
	}
	badKeys := []string{"", scope, scope + "/a", scope + "a/", scope + "../c2/a", scope + "a/../../c2/a", scope + "./a",
		scope + `a\b`, scope + "a\x00", scope + "\xff", "tenants/t/clones/c2/a", "tenants/t/clones/cx/a", scope[:len(scope)-1],
		scope + strings.Repeat("a", driver.MaxKeyLen)}
	for _, k := range badKeys {
		err := driver.CheckKey("test", scope, k)
		if !errors.Is(err, driver.ErrOutOfScope) || !errors.Is(err, clone.ErrIsolationViolation) {
			t.Errorf("CheckKey(%q) = %v, want ErrOutOfScope", k, err)
		}
	}
	for _, p := range []string{"", "tenants/", "tenants/t/clones/c", "tenants/t/clones/c2/", scope + "../", scope + "a//b", scope + "./"} {
		if err := driver.CheckPrefix("test", scope, p); !errors.Is(err, driver.ErrOutOfScope) {
			t.Errorf("CheckPrefix(%q) = %v, want ErrOutOfScope", p, err)
		}
	}
	for _, s := range []string{"", "/", "a", "../", "a/../", "a//", "/a/", `a\b/`, "a\x00/"} {
		if err := driver.CheckKey("test", s, s+"x"); !errors.Is(err, driver.ErrOutOfScope) {
			t.Errorf("CheckKey with scope %q = %v, want ErrOutOfScope", s, err)
		}
	}
}
