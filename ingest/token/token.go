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
//     accented Latin letters are often less, so such text is overestimated);
//   - whitespace is free except a run of newlines, which counts 1.
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

import "unicode/utf8"

// Count returns the estimated number of tokens in s; see the package documentation.
// Count("") is 0.
func Count(s string) int {
	n := 0
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case isLetter(c):
			j := i + 1
			for j < len(s) && isLetter(s[j]) {
				j++
			}
			n += (j - i + 4) / 5
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			n += (j - i + 2) / 3
			i = j
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '\n':
			j := i + 1
			for j < len(s) && (s[j] == '\n' || s[j] == '\r') {
				j++
			}
			n++
			i = j
		case c < utf8.RuneSelf:
			n++
			i++
		default:
			_, size := utf8.DecodeRuneInString(s[i:])
			n++
			i += size
		}
	}
	return n
}

func isLetter(c byte) bool {
	return (c|0x20) >= 'a' && (c|0x20) <= 'z'
}
