package objectstore

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Limits on names and kinds. A full key is
// "tenants/{tenant_id}/clones/{clone_id}/{kind}/{name}", at most 8+36+8+36+1+32+1+512 =
// 634 bytes, well inside S3's 1024-byte key limit.
const (
	// MaxNameLen is the longest object name accepted, in bytes.
	MaxNameLen = 512
	// MaxSegmentLen is the longest "/"-separated segment of a name, in bytes (the
	// file name limit of common filesystems).
	MaxSegmentLen = 255
	// MaxKindLen is the longest kind accepted, in bytes.
	MaxKindLen = 32
)

// ValidateKind reports whether kind may name a kind of object ("documents", "uploads",
// "exports"...): 1 to [MaxKindLen] bytes of lower-case ASCII letters, digits, '-' and
// '_', starting with a letter or digit. Invalid kinds fail with [clone.ErrInvalidInput].
//
// [clone.ErrInvalidInput]: https://pkg.go.dev/github.com/cloneiso/cloneiso/clone#ErrInvalidInput
func ValidateKind(kind string) error {
	const op = "objectstore.ValidateKind"
	if kind == "" {
		return errs.New(errs.InvalidInput, op, "kind is empty")
	}
	if len(kind) > MaxKindLen {
		return errs.New(errs.InvalidInput, op, "kind is longer than %d bytes", MaxKindLen)
	}
	for i := 0; i < len(kind); i++ {
		c := kind[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return errs.New(errs.InvalidInput, op, "kind may only contain a-z, 0-9, '-' and '_', starting with a letter or digit")
		}
	}
	return nil
}

// ValidateName reports whether name may name an object inside a clone's kind. It is the
// only gate between a caller's string and an object key, so it is strict: a name is
// accepted only if it is
//
//   - 1 to [MaxNameLen] bytes of valid UTF-8 in Unicode normalization form C (so one
//     name has one spelling),
//   - relative: it does not start with "/" and does not look like a Windows drive
//     ("C:..."),
//   - made of non-empty "/"-separated segments of at most [MaxSegmentLen] bytes, none of
//     them "." or ".." (no traversal, no "a//b", no trailing "/"),
//   - free of backslashes, NUL and other control characters, and of invisible
//     bidirectional-override and byte-order-mark characters,
//   - free of percent-encoded sequences ("%" followed by two hex digits), because some
//     layer between the caller and the store may decode them ("%2e%2e%2f" is "../").
//     A "%" not followed by two hex digits ("100%") is fine.
//
// Invalid names fail with [clone.ErrInvalidInput]; the error does not echo the name.
//
// [clone.ErrInvalidInput]: https://pkg.go.dev/github.com/cloneiso/cloneiso/clone#ErrInvalidInput
func ValidateName(name string) error {
	if why := nameProblem(name); why != "" {
		return errs.New(errs.InvalidInput, "objectstore.ValidateName", "invalid object name: %s", why)
	}
	return nil
}

// nameProblem returns why name is refused, or "".
func nameProblem(name string) string {
	if name == "" {
		return "empty"
	}
	if len(name) > MaxNameLen {
		return "longer than the maximum length"
	}
	if !utf8.ValidString(name) {
		return "not valid UTF-8"
	}
	if name[0] == '/' {
		return "absolute path"
	}
	if len(name) >= 2 && name[1] == ':' && isASCIILetter(name[0]) {
		return "looks like a drive letter path"
	}
	for i, r := range name {
		switch {
		case r == '\\':
			return "contains a backslash"
		case r == 0:
			return "contains NUL"
		case unicode.IsControl(r):
			return "contains a control character"
		case isInvisibleTrap(r):
			return "contains an invisible formatting character"
		case r == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]):
			return "contains a percent-encoded sequence"
		}
	}
	if !norm.NFC.IsNormalString(name) {
		return "not in Unicode normalization form C"
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return "empty path segment"
		case seg == "." || seg == "..":
			return `"." or ".." path segment`
		case len(seg) > MaxSegmentLen:
			return "path segment longer than the maximum length"
		}
	}
	return ""
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isInvisibleTrap reports characters that make a name display differently from what it
// is: bidirectional embeddings, overrides and isolates, line/paragraph separators and
// the byte order mark.
func isInvisibleTrap(r rune) bool {
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x200E || r == 0x200F || r == 0x061C:
		return true
	case r == 0x2028 || r == 0x2029 || r == 0xFEFF:
		return true
	}
	return false
}
