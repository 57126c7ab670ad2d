package objectstore_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
)

func TestValidateName(t *testing.T) {
	good := []string{
		"a", "report.pdf", "dir/sub/file.txt", "100%", "50% off.txt", "%zz", "a%2", "..a", ".a.b",
		".hidden", "a/.b/c", "ünïcödé/ファイル", "spaces are fine.txt", " leading space", strings.Repeat("x", 255),
		strings.Repeat("a/", 255) + "b",
		// Compatibility characters that fold into harmless ones.
		"１２３.pdf", "ファイル（１）.pdf", "ﬁle.txt", "ＲＥＡＤＭＥ", "ｶﾀｶﾅ.txt", "x²",
		// Near misses of Windows device names.
		"console.log", "con-tract.pdf", "com10.txt", "lpt.txt", "nul_results", "auxiliary/x", "COMA",
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
		"colon":                 "ab:c",
		"alternate data stream": "report.txt::$DATA",
		// Names another layer folds (NFKC) into something else.
		"fullwidth dotdot":          "\uff0e\uff0e/x",
		"fullwidth dot":             "a/\uff0e/b",
		"two dot leader":            "\u2025/x",
		"one dot leaders":           "\u2024\u2024/x",
		"fullwidth solidus":         "a\uff0fb",
		"fullwidth reverse solidus": "..\uff3cx",
		"small reverse solidus":     "a\ufe68b",
		"division slash":            "..\u2215x",
		"fraction slash":            "a\u2044b",
		"big solidus":               "a\u29f8b",
		"set minus":                 "a\u2216b",
		"fullwidth colon":           "c\uff1ax",
		"fullwidth device":          "\uff23\uff2f\uff2e",
		"superscript device":        "COM\u00b9.txt",
		"fullwidth trailing dot":    "a\uff0e",
		"ideographic space end":     "a\u3000",
		// Invisible format characters (category Cf) and separators.
		"zero width space":     "a\u200bb",
		"zero width joiner":    "a\u200db",
		"zero width non-join":  "\u200c",
		"word joiner":          "a\u2060b",
		"soft hyphen":          "a\u00adb",
		"mongolian separator":  "a\u180eb",
		"LRM":                  "a\u200eb",
		"line separator":       "a\u2028b",
		"tag character":        "a\U000E0041b",
		"interlinear annotate": "a\ufff9b",
		// Windows reserved device names and stripped trailing characters.
		"CON":              "CON",
		"con lower":        "con",
		"nul with ext":     "nul.txt",
		"com1 double ext":  "Com1.tar.gz",
		"lpt9":             "docs/lpt9",
		"com0":             "COM0",
		"prn dir":          "PRN/x",
		"aux space ext":    "aux .txt",
		"conin":            "CONIN$",
		"conout":           "conout$.log",
		"trailing dot":     "a.",
		"trailing dots":    "...",
		"dots after name":  "a..",
		"trailing space":   "a ",
		"dir trailing dot": "dir./x",
		"dir trailing spc": "dir /x",
		"ext trailing dot": "report.pdf.",
		"not NFC":          "e\u0301.txt",
		"too long":         strings.Repeat("a/", 300),
		"long segment":     strings.Repeat("x", 256),
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

// FuzzValidateName checks that every accepted name stays inside its clone however it
// is interpreted: as a slash path, as a local file path, after percent-decoding, after
// compatibility folding (NFKC) and by Windows; that Key always starts with the clone's
// prefix and passes the drivers' own scope check; and that the filesystem driver
// stores it under its root, at the key's path. The committed corpus in
// testdata/fuzz/FuzzValidateName holds traversal tricks.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "%2e%2e/x", `..\x`, "a\x00", "é", "e\u0301", "C:x", "/x", "a//b",
		"\uff0e\uff0e/x", "\u2025", "a\uff0fb", "a\uff3cb", "a\u2215b", "a\u200bb", "CON", "nul.txt", "COM\u00b9", "a.", "a ",
		"１２３.pdf", "ﬁle", "a:b"} {
		f.Add(s)
	}
	cc, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	prefix, _ := objectstore.Prefix(cc)
	dir := memDir(f)
	files, err := fileobject.OpenBucket(dir, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { files.Close() })
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, name string) {
		key, kerr := objectstore.Key(cc, "docs", name)
		if verr := objectstore.ValidateName(name); verr != nil {
			if kerr == nil {
				t.Fatalf("Key accepted refused name %q", name)
			}
			return
		}
		if kerr != nil {
			t.Fatalf("Key refused accepted name %q: %v", name, kerr)
		}
		// The key is the clone's prefix, the kind and the name, nothing else, and
		// every driver accepts it as inside the clone's scope.
		if key != prefix+"docs/"+name || !strings.HasPrefix(key, prefix) {
			t.Fatalf("Key(%q) = %q, outside %q", name, key, prefix)
		}
		if err := driver.CheckKey("fuzz", prefix, key); err != nil {
			t.Fatalf("drivers refuse the key of accepted name %q: %v", name, err)
		}
		if !utf8.ValidString(name) || !norm.NFC.IsNormalString(name) {
			t.Fatalf("accepted non-UTF-8 or non-NFC name %q", name)
		}
		if len(name) == 0 || len(name) > objectstore.MaxNameLen {
			t.Fatalf("accepted name of length %d", len(name))
		}
		if path.Clean(name) != name || path.IsAbs(name) || !filepath.IsLocal(filepath.FromSlash(name)) {
			t.Fatalf("accepted unclean, absolute or non-local name %q", name)
		}
		// However a layer folds it, it keeps its segments and none of them becomes
		// a traversal, a separator, a device or a name Windows would alter.
		for _, form := range []string{name, norm.NFKC.String(name), norm.NFKD.String(name)} {
			if strings.Count(form, "/") != strings.Count(name, "/") {
				t.Fatalf("accepted name %q whose form %q has other segments", name, form)
			}
			for _, seg := range strings.Split(form, "/") {
				if seg == ".." || seg == "." || seg == "" || strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " ") {
					t.Fatalf("accepted name %q whose form %q has segment %q", name, form, seg)
				}
				base, _, _ := strings.Cut(strings.ToUpper(seg), ".")
				base = strings.TrimRight(base, " ")
				if slices.Contains(windowsDevices, base) {
					t.Fatalf("accepted name %q whose form %q has Windows device %q", name, form, seg)
				}
			}
			for _, r := range form {
				if r == '\\' || r == ':' || r == 0 || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
					t.Fatalf("accepted name %q whose form %q has %U", name, form, r)
				}
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
		// The filesystem driver stores it exactly at the key's path under its root,
		// and nowhere else.
		if _, err := files.Put(ctx, cc, "docs", name, strings.NewReader("x"), nil); err != nil {
			if errors.Is(err, clone.ErrConflict) {
				return // "a" and "a/b" cannot both exist; not a name problem
			}
			t.Fatalf("filesystem Put of accepted name %q: %v", name, err)
		}
		defer files.Delete(ctx, cc, "docs", name)
		if _, err := files.Head(ctx, cc, "docs", name); err != nil {
			t.Fatalf("filesystem Head of stored name %q: %v", name, err)
		}
		want := filepath.Join(dir, "objects", filepath.FromSlash(key))
		if rel, err := filepath.Rel(dir, want); err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("name %q resolves outside the store: %q", name, want)
		}
		if st, err := os.Lstat(want); err != nil || !st.Mode().IsRegular() {
			t.Fatalf("name %q was not stored at %q: %v", name, want, err)
		}
	})
}

// memDir returns a directory on a memory file system if there is one (the filesystem
// driver syncs every write, which on a disk limits the fuzzer to a few dozen runs per
// second), else a temporary directory.
func memDir(f *testing.F) string {
	if dir, err := os.MkdirTemp("/dev/shm", "cloneiso-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return f.TempDir()
}

var windowsDevices = []string{"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
	"COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
	"LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9"}
