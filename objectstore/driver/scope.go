package driver

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// ErrOutOfScope is the cause of the error every driver returns when it is asked to
// touch a key or prefix outside the scope of the call, or is given a malformed scope.
// The error's kind is [clone.ErrIsolationViolation]: the portable type never sends
// such a call, so receiving one means a layer above the driver is broken, and the
// driver fails closed instead of trusting it.
//
// [clone.ErrIsolationViolation]: https://pkg.go.dev/github.com/cloneiso/cloneiso/clone#ErrIsolationViolation
var ErrOutOfScope = errors.New("key outside the scope of the call")

// MaxKeyLen is the longest key (and scope) a driver accepts, in bytes (S3's limit).
const MaxKeyLen = 1024

func outOfScope(op, why string) error {
	return &errs.Error{Kind: errs.IsolationViolation, Op: op, Msg: why, Err: ErrOutOfScope}
}

// CheckKey returns nil if key is a well-formed object key strictly inside scope, and
// otherwise an error wrapping [ErrOutOfScope]. A scope is a non-empty, relative,
// "/"-terminated sequence of clean segments ("tenants/{t}/clones/{c}/"); a key inside
// it is scope followed by one or more clean segments. Clean segments are non-empty,
// not "." or "..", and free of backslashes and control characters, so no key that
// passes can resolve outside scope on any filesystem or be normalised into another
// clone's key by a server. Drivers call it first in every method that takes a key;
// package drivertest checks that they do.
func CheckKey(op, scope, key string) error {
	if why := scopeProblem(scope); why != "" {
		return outOfScope(op, why)
	}
	if len(key) > MaxKeyLen || !strings.HasPrefix(key, scope) {
		return outOfScope(op, "key outside the scope of the call")
	}
	if why := segmentsProblem(key[len(scope):], false); why != "" {
		return outOfScope(op, "key "+why)
	}
	return nil
}

// CheckPrefix is [CheckKey] for listing and deletion prefixes: prefix must start with
// scope (it may equal it, and may end in the middle of a segment), and its complete
// segments after scope must be clean.
func CheckPrefix(op, scope, prefix string) error {
	if why := scopeProblem(scope); why != "" {
		return outOfScope(op, why)
	}
	if len(prefix) > MaxKeyLen || !strings.HasPrefix(prefix, scope) {
		return outOfScope(op, "prefix outside the scope of the call")
	}
	rest := prefix[len(scope):]
	if rest == "" {
		return nil
	}
	if why := segmentsProblem(rest, true); why != "" {
		return outOfScope(op, "prefix "+why)
	}
	return nil
}

func scopeProblem(scope string) string {
	if scope == "" || len(scope) > MaxKeyLen || !strings.HasSuffix(scope, "/") {
		return "scope must be a non-empty prefix ending in \"/\""
	}
	if why := segmentsProblem(scope[:len(scope)-1], false); why != "" {
		return "scope " + why
	}
	return ""
}

// segmentsProblem checks the "/"-separated segments of s. If partial, s may end in
// "/" or in an incomplete segment (a listing prefix), which is then only checked for
// characters.
func segmentsProblem(s string, partial bool) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || unicode.IsControl(r) }) {
		return "contains a backslash or a control character"
	}
	segs := strings.Split(s, "/")
	if partial {
		segs = segs[:len(segs)-1] // the last piece may be incomplete, or "" after a final "/"
	}
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return "has an empty, \".\" or \"..\" segment"
		}
	}
	return ""
}
