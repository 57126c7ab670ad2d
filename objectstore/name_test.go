package objectstore_test

import (
	"errors"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore"
)

func TestValidateName(t *testing.T) {
	good := []string{
		"a", "report.pdf", "dir/sub/file.txt", "100%", "50% off.txt", "%zz", "a%2", "...", "..a", "a..",
		".hidden", "a/.b/c", "ünïcödé/ファイル", "spaces are fine.txt", "ab:c", strings.Repeat("x", 255),
		strings.Repeat("a/", 255) + "b",
	}
	for _, n := range good {
		if err := objectstore.ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	bad := map[string]string{
		"empty":                 "",
		"dotdot":                "..",
		"dot":                   ".",
		"leading dotdot":        "../x",
		"inner dotdot":          "a/../../b",
		"trailing dotdot":       "a/..",
		"dot segment":           "a/./b",
		"absolute":              "/etc/passwd",
		"double slash":          "a//b",
		"trailing slash":        "a/",
		"backslash":             `a\b`,
		"backslash traversal":   `..\..\x`,
		"NUL":                   "a\x00b",
		"newline":               "a\nb",
		"DEL":                   "a\x7fb",
		"C1 control":            "a\u0085b",
		"bidi override":         "a\u202eb",
		"BOM":                   "\ufeffa",
		"invalid UTF-8":         "a\xffb",
		"overlong UTF-8 dot":    "\xc0\xae\xc0\xae/x",
		"percent dotdot":        "%2e%2e/x",
		"percent upper":         "%2E%2E%2Fx",
		"percent slash":         "a%2fb",
		"double encoded":        "%252e%252e/x",
		"percent NUL":           "a%00",
		"percent backslash":     "..%5cx",
		"drive letter":          "C:/Windows",
		"drive letter relative": "c:x",
		"drive letter short":    "a:b",
		"not NFC":               "e\u0301.txt",
		"too long":              strings.Repeat("a/", 300),
		"long segment":          strings.Repeat("x", 256),
	}
	for why, n := range bad {
		err := objectstore.ValidateName(n)
		if !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("%s: ValidateName(%q) = %v, want ErrInvalidInput", why, n, err)
		}
		if err != nil && len(n) > 3 && strings.Contains(err.Error(), n) {
			t.Errorf("%s: error echoes the name: %v", why, err)
		}
	}
}

func TestValidateKind(t *testing.T) {
	for _, k := range []string{"documents", "uploads", "a", "x-1", "chat_logs", "0"} {
		if err := objectstore.ValidateKind(k); err != nil {
			t.Errorf("ValidateKind(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "..", ".", "Docs", "a/b", "-a", "_a", "a b", strings.Repeat("a", 33), "é"} {
		if err := objectstore.ValidateKind(k); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("ValidateKind(%q) = %v, want ErrInvalidInput", k, err)
		}
	}
}

func TestKeyShape(t *testing.T) {
	cc, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := objectstore.Key(cc, "docs", "a/b.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := "tenants/" + cc.TenantID().String() + "/clones/" + cc.CloneID().String() + "/docs/a/b.txt"
	if k != want {
		t.Errorf("Key = %q, want %q", k, want)
	}
	if _, err := objectstore.Key(clone.CloneContext{}, "docs", "a"); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Errorf("Key without context: %v", err)
	}
}

// FuzzValidateName checks that every accepted name stays inside its directory however
// it is interpreted: as a slash path, as a local file path, and after percent-decoding.
// The committed corpus in testdata/fuzz/FuzzValidateName holds traversal tricks.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "%2e%2e/x", `..\x`, "a\x00", "é", "e\u0301", "C:x", "/x", "a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if objectstore.ValidateName(name) != nil {
			return
		}
		if !utf8.ValidString(name) || !norm.NFC.IsNormalString(name) {
			t.Fatalf("accepted non-UTF-8 or non-NFC name %q", name)
		}
		if len(name) == 0 || len(name) > objectstore.MaxNameLen {
			t.Fatalf("accepted name of length %d", len(name))
		}
		if path.Clean(name) != name || path.IsAbs(name) {
			t.Fatalf("accepted unclean or absolute name %q", name)
		}
		for _, seg := range strings.Split(name, "/") {
			if seg == ".." || seg == "." || seg == "" {
				t.Fatalf("accepted name %q with segment %q", name, seg)
			}
		}
		for _, r := range name {
			if r == '\\' || r == 0 || unicode.IsControl(r) {
				t.Fatalf("accepted name %q with %U", name, r)
			}
		}
		const root = "/srv/objects/tenants/t/clones/c/docs"
		if p := filepath.Join(root, filepath.FromSlash(name)); !strings.HasPrefix(p, root+string(filepath.Separator)) {
			t.Fatalf("accepted name %q escapes to %q", name, p)
		}
		dec := name
		for range 3 {
			d, err := url.PathUnescape(dec)
			if err != nil || d == dec {
				break
			}
			dec = d
		}
		if dec != name {
			t.Fatalf("accepted name %q that percent-decodes to %q", name, dec)
		}
	})
}
