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
// only gate between a caller's string and an object key, and the filesystem driver may
// run on any operating system, so it is strict: a name is accepted only if it is
//
//   - 1 to [MaxNameLen] bytes of valid UTF-8 in Unicode normalization form C (so one
//     name has one spelling),
//   - relative: it does not start with "/" and contains no ":" (no Windows drive
//     "C:...", no NTFS alternate data stream "a.txt:x"),
//   - made of non-empty "/"-separated segments of at most [MaxSegmentLen] bytes, none of
//     them "." or ".." (no traversal, no "a//b", no trailing "/"),
//   - free of backslashes, NUL and other control characters, of format characters
//     (Unicode category Cf: zero-width spaces and joiners, bidirectional controls, the
//     byte order mark, soft hyphens...), of line and paragraph separators, and of
//     characters that look like a path separator (fullwidth solidus and reverse
//     solidus, division slash, fraction slash, set minus...),
//   - free of segments that Windows reads as something else: reserved device names
//     (CON, PRN, AUX, NUL, COM0-9, LPT0-9, CONIN$, CONOUT$, also with an extension,
//     as "nul.txt" or "com1.tar.gz", and whatever the case), and segments ending in a
//     dot or a space (Windows strips them, so "a." would be "a"),
//   - still all of the above after compatibility folding (NFKC), with the same number
//     of segments: a layer that folds names must not turn an accepted name into a
//     traversal ("．．/x" folds to "../x", "‥" to ".."), a separator ("a／b") or a
//     device name ("COM¹" folds to "COM1"). Names are refused, not normalised: a
//     normalised name would silently be another name than the caller's, and the
//     store would then hold keys that no caller spelled.
//   - free of percent-encoded sequences ("%" followed by two hex digits), because some
//     layer between the caller and the store may decode them ("%2e%2e%2f" is "../").
//     A "%" not followed by two hex digits ("100%") is fine.
//
// Compatibility characters that fold into harmless ones (fullwidth letters and digits,
// ligatures) are accepted.
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
	if why := shapeProblem(name); why != "" {
		return why
	}
	if !norm.NFC.IsNormalString(name) {
		return "not in Unicode normalization form C"
	}
	// The same rules must hold for the compatibility-folded name.
	if folded := norm.NFKC.String(name); folded != name {
		if why := shapeProblem(folded); why != "" {
			return "after compatibility folding (NFKC): " + why
		}
		if strings.Count(folded, "/") != strings.Count(name, "/") {
			return "compatibility folding (NFKC) changes its segments"
		}
	}
	return ""
}

// namePrefixProblem is nameProblem for a listing prefix: complete segments follow the
// name rules; the last piece may be the start of a segment ("v1." lists "v1.2",
// "con" lists "contract.pdf"), so the rules about how a segment ends do not apply to
// it, but its characters must still be acceptable in a name.
func namePrefixProblem(np string) string {
	if np == "" {
		return "empty"
	}
	if strings.HasSuffix(np, "/") {
		return nameProblem(np[:len(np)-1])
	}
	// "x" completes the piece into a segment that no end-of-segment rule refuses and
	// that neither composes nor folds with what precedes it.
	return nameProblem(np + "x")
}

// shapeProblem checks everything but normalization.
func shapeProblem(name string) string {
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
	for i, r := range name {
		switch {
		case r == '\\':
			return "contains a backslash"
		case r == 0:
			return "contains NUL"
		case r == ':':
			return "contains a colon (drive letter or alternate data stream)"
		case unicode.IsControl(r):
			return "contains a control character"
		case isInvisibleTrap(r):
			return "contains an invisible formatting character"
		case isSeparatorLookalike(r):
			return "contains a character that looks like a path separator"
		case r == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]):
			return "contains a percent-encoded sequence"
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return "empty path segment"
		case seg == "." || seg == "..":
			return `"." or ".." path segment`
		case len(seg) > MaxSegmentLen:
			return "path segment longer than the maximum length"
		case strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " "):
			return "path segment ends in a dot or a space"
		case isWindowsDevice(seg):
			return "path segment is a reserved Windows device name"
		}
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isInvisibleTrap reports characters that make a name display differently from what it
// is: every format character (category Cf: bidirectional embeddings, overrides and
// isolates, zero-width spaces and joiners, soft hyphen, byte order mark...) and the
// line and paragraph separators.
func isInvisibleTrap(r rune) bool {
	return unicode.Is(unicode.Cf, r) || r == 0x2028 || r == 0x2029
}

// isSeparatorLookalike reports characters that render like "/" or "\\" (or fold to
// them), which a person or a lenient layer may take for a path separator.
func isSeparatorLookalike(r rune) bool {
	switch r {
	case 0x2215, // DIVISION SLASH
		0x2044, // FRACTION SLASH
		0xFF0F, // FULLWIDTH SOLIDUS
		0x29F8, // BIG SOLIDUS
		0x2571, // BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT
		0x27CB, // MATHEMATICAL RISING DIAGONAL
		0x1735, // PHILIPPINE SINGLE PUNCTUATION
		0x2216, // SET MINUS
		0xFF3C, // FULLWIDTH REVERSE SOLIDUS
		0xFE68, // SMALL REVERSE SOLIDUS
		0x29F5, // REVERSE SOLIDUS OPERATOR
		0x29F9, // BIG REVERSE SOLIDUS
		0x2572, // BOX DRAWINGS LIGHT DIAGONAL UPPER LEFT TO LOWER RIGHT
		0x27CD: // MATHEMATICAL FALLING DIAGONAL
		return true
	}
	return false
}

// isWindowsDevice reports whether seg names a Windows device: the reserved names,
// case-insensitively, alone or followed by an extension, ignoring trailing spaces
// before the extension ("nul .txt"). Superscript digits (COM¹) are caught after NFKC
// folding.
func isWindowsDevice(seg string) bool {
	base, _, _ := strings.Cut(seg, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) && '0' <= base[3] && base[3] <= '9' {
		return true
	}
	return false
}
