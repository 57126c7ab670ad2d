package token_test

import (
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/ingest/token"
)

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"   \t ", 0},
		{"hello", 1},
		{"a cat sat", 3},
		{"Hello, world!", 4},
		{"12345", 2},
		{"1234567", 3},
		{"\n\n\n", 1},
		{"a\nb", 3},
		{"日本語", 3},
		{"é", 1},
		{"internationalization", 4},
	} {
		if got := token.Count(tc.in); got != tc.want {
			t.Errorf("Count(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// Splitting a text at any byte never lowers the total: the chunker relies on this
// to keep merged pieces under their target.
func TestCountSubadditive(t *testing.T) {
	s := "The quick brown fox, 12345 jumps over 日本 the lazy dog.\n\nNext paragraph!"
	whole := token.Count(s)
	for i := 0; i <= len(s); i++ {
		if !strings.HasPrefix(s[i:], "\x80") && token.Count(s[:i])+token.Count(s[i:]) < whole {
			t.Fatalf("split at %d: %d + %d < %d", i, token.Count(s[:i]), token.Count(s[i:]), whole)
		}
	}
}

func TestCountInvalidUTF8(t *testing.T) {
	if got := token.Count("\xff\xfe"); got != 2 {
		t.Fatalf("Count of invalid bytes = %d, want 2", got)
	}
}

func BenchmarkCount(b *testing.B) {
	s := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 1000)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		token.Count(s)
	}
}

func TestCountUpTo(t *testing.T) {
	s := strings.Repeat("The quick brown fox, 12345 jumps over 日本 the lazy dog.\n\n", 200)
	full := token.Count(s)
	for _, limit := range []int{0, 1, 10, 500, full - 1, full, full + 1, 1 << 30} {
		got := token.CountUpTo(s, limit)
		if full <= limit && got != full || full > limit && got <= limit {
			t.Errorf("CountUpTo(limit %d) = %d, Count = %d", limit, got, full)
		}
	}
}

// The four-lane Count of long strings agrees with counting piece by piece at spaces.
func TestCountLanes(t *testing.T) {
	s := strings.Repeat("Mixed 123456 text\r\n\n\twith 日本語, \xff\x80 bytes and longwordsthatkeepgoing ", 300)
	parts := strings.SplitAfter(s, " ")
	sum := 0
	for _, p := range parts {
		sum += token.Count(p)
	}
	if got := token.Count(s); got != sum || got != token.CountUpTo(s, 1<<30) {
		t.Fatalf("Count %d, sum of parts %d, CountUpTo %d", got, sum, token.CountUpTo(s, 1<<30))
	}
	if token.Count(strings.Repeat("x", 5000)) != 1000 {
		t.Fatal("a long string without spaces")
	}
}
