// Package token estimates how many tokens a text costs in the tokenizers of
// embedding models (OpenAI's cl100k_base and o200k_base byte-pair encodings and
// similar), without a vocabulary and without a network.
//
// No well-kept, offline, pure-Go implementation of those tokenizers was available to
// this module, so Count is a documented approximation, built to be fast (one pass, no
// allocation) and to err on the high side for ordinary text, so that a chunk measured
// with it stays within a model's limit:
//
//   - a run of ASCII letters (a word, with the space before it) counts ceil(n/5)
//     tokens, at least 1: common English words are one token, long or rare words
//     several;
//   - a run of ASCII digits counts ceil(n/3): the encodings split numbers into groups
//     of at most three digits;
//   - every other ASCII character except spaces, tabs and newlines (punctuation,
//     symbols) counts 1;
//   - every non-ASCII character counts 1 (CJK characters are about one token each;
//     accented Latin letters are often less, so such text is overestimated); bytes
//     that are not valid UTF-8 count 1 each, except stray continuation bytes (0);
//   - white space and other control characters are free, except a run of newlines,
//     which counts 1.
//
// The rules are modelled on how those encodings split text; the estimate has not been
// measured against the real vocabularies here (none is available offline). It is meant
// to be at or somewhat above the real count for prose; on source code, long numbers
// mixed with letters or random identifiers it can be below, so callers enforcing a
// hard server limit keep a margin (package openaiembed does).
//
// Count is subadditive: counting two adjacent pieces separately never gives less than
// counting them together, so pieces measured one by one and merged stay within the
// sum of their counts.
package token

import "math"

// The estimate is computed by a small state machine, one table lookup per byte:
// tab[state][byte] holds the next state in its low 4 bits and the tokens the byte adds
// in bit 4. States: 0 neutral; 1..5 inside a run of letters (letters seen, mod 5,
// where a letter in state 0 or 5 starts a new token); 6..8 inside a run of digits
// (likewise mod 3); 9 inside a run of newlines.
const (
	stNeutral = 0
	stLetter  = 1
	stDigit   = 6
	stNewline = 9
	numStates = 16 // 10 used; 16 lets the compiler drop bounds checks on st & stateMask
	incToken  = 1 << 4
	stateMask = 15
)

var tab = func() (t [numStates][256]uint8) {
	for st := 0; st < 10; st++ {
		for c := 0; c < 256; c++ {
			var next, inc int
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
				if st >= stLetter && st < stLetter+4 {
					next = st + 1
				} else {
					next, inc = stLetter, 1
				}
			case c >= '0' && c <= '9':
				if st >= stDigit && st < stDigit+2 {
					next = st + 1
				} else {
					next, inc = stDigit, 1
				}
			case c == '\n':
				next = stNewline
				if st != stNewline {
					inc = 1
				}
			case c == '\r':
				if st == stNewline {
					next = stNewline
				}
			case c < ' ' || c == ' ' || c == 0x7f: // white space and controls: free
			case c < 0x80: // punctuation and symbols
				inc = 1
			case c < 0xC0: // UTF-8 continuation byte: part of the previous character
			default: // a byte that starts a non-ASCII character (or an invalid one)
				inc = 1
			}
			v := next
			if inc == 1 {
				v |= incToken
			}
			t[st][c] = uint8(v)
		}
	}
	return t
}()

// The machine only distinguishes six classes of bytes; quad[state][q] applies four
// bytes at once, q being their classes in base 6, so that the lookups that depend on
// the previous state are one per four bytes.
const (
	clsLetter = iota
	clsDigit
	clsNewline
	clsCR
	clsFree  // white space, controls, UTF-8 continuation bytes
	clsToken // punctuation, symbols, non-ASCII leading bytes: one token each
	numClasses
	quadSize = numClasses * numClasses * numClasses * numClasses
	quadCap  = 2048 // quadSize rounded up to a power of two, so q needs no bounds check
)

// representative is a byte of each class.
var representative = [numClasses]byte{'a', '0', '\n', '\r', ' ', '.'}

var cls = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[c] = clsLetter
		case c >= '0' && c <= '9':
			t[c] = clsDigit
		case c == '\n':
			t[c] = clsNewline
		case c == '\r':
			t[c] = clsCR
		case c <= ' ' || c == 0x7f || c >= 0x80 && c < 0xC0:
			t[c] = clsFree
		default:
			t[c] = clsToken
		}
	}
	return t
}()

var quad = func() (t [numStates][quadCap]uint8) {
	for st := 0; st < 10; st++ {
		for q := 0; q < quadSize; q++ {
			s, n := uint8(st), 0
			for k := 0; k < 4; k++ {
				c := representative[(q/pow6[3-k])%numClasses]
				v := tab[s][c]
				n += int(v >> 4)
				s = v & stateMask
			}
			t[st][q] = s | uint8(n)<<4
		}
	}
	return t
}()

var pow6 = [4]int{1, 6, 36, 216}

// Count returns the estimated number of tokens in s; see the package documentation.
// Count("") is 0. It runs in one pass over s without allocating.
func Count(s string) int {
	n, _ := count(s, stNeutral, math.MaxInt)
	return n
}

// CountUpTo is Count for callers that only need the exact count when it is at most
// limit: it returns Count(s) if that is at most limit, and otherwise some value above
// limit, having stopped reading s soon after the count passed it. The chunker uses it
// to find out cheaply that a passage is too large and must be cut.
func CountUpTo(s string, limit int) int {
	n, _ := count(s, stNeutral, limit)
	return n
}

// count runs the machine over s from state st, stopping early (every 256 bytes) once
// the count is above limit.
func count(s string, st uint8, limit int) (int, uint8) {
	n := 0
	for len(s) >= 4 {
		k := min(len(s), 256) &^ 3
		part := s[:k]
		for ; len(part) >= 4; part = part[4:] {
			q := int(cls[part[0]])*216 + int(cls[part[1]])*36 + int(cls[part[2]])*6 + int(cls[part[3]])
			v := quad[st&stateMask][q&(quadCap-1)]
			n += int(v >> 4)
			st = v
		}
		s = s[k:]
		if n > limit {
			return n, st & stateMask
		}
	}
	for i := 0; i < len(s); i++ {
		v := tab[st&stateMask][s[i]]
		n += int(v >> 4)
		st = v
	}
	return n, st & stateMask
}
