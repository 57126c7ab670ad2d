package chunk_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/ingest/token"
)

// check verifies the invariants every split must keep and returns the chunks.
func check(t testing.TB, c *chunk.Chunker, text string) []chunk.Chunk {
	t.Helper()
	chunks := c.Split(text)
	covered := make([]bool, len(text))
	prevStart, prevEnd := -1, -1
	for i, ch := range chunks {
		if ch.Start < 0 || ch.End > len(text) || ch.Start >= ch.End {
			t.Fatalf("chunk %d: bad offsets [%d,%d) of %d", i, ch.Start, ch.End, len(text))
		}
		if ch.Text != text[ch.Start:ch.End] {
			t.Fatalf("chunk %d: text is not text[%d:%d]", i, ch.Start, ch.End)
		}
		if ch.Tokens < token.Count(ch.Text) {
			// check is only used with the default counter.
			t.Fatalf("chunk %d: Tokens %d, less than the counter's %d", i, ch.Tokens, token.Count(ch.Text))
		}
		if ch.Tokens > c.TargetTokens() {
			t.Fatalf("chunk %d: %d tokens over the target %d", i, ch.Tokens, c.TargetTokens())
		}
		if strings.TrimSpace(ch.Text) != ch.Text && strings.TrimLeft(ch.Text, " \t\n\r\f\v") != ch.Text {
			t.Fatalf("chunk %d starts with white space: %q", i, ch.Text[:min(10, len(ch.Text))])
		}
		if ch.Start <= prevStart || ch.End <= prevEnd {
			t.Fatalf("chunk %d [%d,%d) does not advance past [%d,%d)", i, ch.Start, ch.End, prevStart, prevEnd)
		}
		if utf8.ValidString(text) && !utf8.ValidString(ch.Text) {
			t.Fatalf("chunk %d cuts a character", i)
		}
		prevStart, prevEnd = ch.Start, ch.End
		for j := ch.Start; j < ch.End; j++ {
			covered[j] = true
		}
	}
	for i := range text {
		if !covered[i] && !strings.ContainsRune(" \t\n\r\f\v", rune(text[i])) {
			t.Fatalf("byte %d (%q) is in no chunk", i, text[i])
		}
	}
	return chunks
}

func mustNew(t testing.TB, o *chunk.Options) *chunk.Chunker {
	t.Helper()
	c, err := chunk.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSmallTextIsOneChunk(t *testing.T) {
	c := mustNew(t, nil)
	got := check(t, c, "  Hello, world.\n\n")
	if len(got) != 1 || got[0].Text != "Hello, world." || got[0].Start != 2 {
		t.Fatalf("got %+v", got)
	}
	if got := c.Split(""); got != nil {
		t.Fatalf("empty text: %+v", got)
	}
	if got := c.Split(" \n\n\t "); len(got) != 0 {
		t.Fatalf("white space: %+v", got)
	}
}

func TestSplitsAtParagraphsFirst(t *testing.T) {
	c := mustNew(t, &chunk.Options{TargetTokens: 20, OverlapTokens: -1})
	para := func(w string) string { return strings.TrimSpace(strings.Repeat(w+" ", 12)) + "." }
	text := para("alpha") + "\n\n" + para("beta") + "\n\n" + para("gamma")
	got := check(t, c, text)
	if len(got) != 3 {
		t.Fatalf("got %d chunks, want one per paragraph: %+v", len(got), got)
	}
	for i, w := range []string{"alpha", "beta", "gamma"} {
		if !strings.HasPrefix(got[i].Text, w) || strings.Contains(got[i].Text, "\n") {
			t.Errorf("chunk %d = %q, want the %s paragraph", i, got[i].Text, w)
		}
	}
}

func TestSplitsLongParagraphAtSentences(t *testing.T) {
	c := mustNew(t, &chunk.Options{TargetTokens: 14, OverlapTokens: -1})
	text := "One two three four five six. Seven eight nine ten eleven twelve! Thirteen fourteen fifteen sixteen seventeen eighteen?"
	got := check(t, c, text)
	for _, ch := range got {
		if last := ch.Text[len(ch.Text)-1]; last != '.' && last != '!' && last != '?' {
			t.Errorf("chunk %q does not end at a sentence", ch.Text)
		}
	}
}

func TestHeadingStartsNewChunk(t *testing.T) {
	c := mustNew(t, &chunk.Options{TargetTokens: 40, OverlapTokens: 5})
	body := strings.Repeat("word ", 25)
	text := "# One\n\n" + body + "\n\n## Two\n\n" + body + "\n\n# Three\n" + body
	got := check(t, c, text)
	if len(got) != 3 {
		t.Fatalf("got %d chunks: %+v", len(got), got)
	}
	for i, h := range []string{"# One", "## Two", "# Three"} {
		if !strings.HasPrefix(got[i].Text, h) {
			t.Errorf("chunk %d starts %q, want %q", i, got[i].Text[:10], h)
		}
	}
	// "#hashtag" and "####### seven" are not headings: one chunk.
	got = check(t, c, "a\n#hashtag b\n####### seven")
	if len(got) != 1 {
		t.Fatalf("non-headings split: %+v", got)
	}
}

func TestOverlap(t *testing.T) {
	c := mustNew(t, &chunk.Options{TargetTokens: 30, OverlapTokens: 10})
	var sb strings.Builder
	for i := range 40 {
		fmt.Fprintf(&sb, "Sentence number %d is here. ", i)
	}
	got := check(t, c, sb.String())
	if len(got) < 3 {
		t.Fatalf("only %d chunks", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Start >= got[i-1].End {
			t.Fatalf("chunks %d and %d do not overlap: [%d,%d) [%d,%d)", i-1, i, got[i-1].Start, got[i-1].End, got[i].Start, got[i].End)
		}
		if shared := token.Count(sb.String()[got[i].Start:got[i-1].End]); shared > 10 {
			t.Fatalf("chunks %d and %d share %d tokens, more than the overlap", i-1, i, shared)
		}
	}
	// Without overlap, chunks are disjoint.
	c0 := mustNew(t, &chunk.Options{TargetTokens: 30, OverlapTokens: -1})
	got = check(t, c0, sb.String())
	for i := 1; i < len(got); i++ {
		if got[i].Start < got[i-1].End {
			t.Fatalf("chunks %d and %d overlap without overlap", i-1, i)
		}
	}
}

func TestLongWordAndCJK(t *testing.T) {
	c := mustNew(t, &chunk.Options{TargetTokens: 8, OverlapTokens: -1})
	check(t, c, strings.Repeat("x", 1000))
	got := check(t, c, strings.Repeat("日本語のテキスト。", 20))
	if len(got) < 10 {
		t.Fatalf("CJK text in %d chunks", len(got))
	}
	check(t, c, strings.Repeat("\xff\xfe", 100)+"é"+strings.Repeat("€", 50))
}

func TestCustomCounter(t *testing.T) {
	runes := func(s string) int { return utf8.RuneCountInString(strings.TrimSpace(s)) }
	c := mustNew(t, &chunk.Options{TargetTokens: 100, OverlapTokens: 10, Count: runes})
	text := strings.Repeat("Lorem ipsum dolor sit amet. ", 50)
	for _, ch := range c.Split(text) {
		if utf8.RuneCountInString(ch.Text) > 100 {
			t.Fatalf("chunk of %d runes", utf8.RuneCountInString(ch.Text))
		}
	}
}

func TestOptionsValidated(t *testing.T) {
	for _, o := range []chunk.Options{
		{TargetTokens: -1},
		{TargetTokens: chunk.MaxTargetTokens + 1},
		{TargetTokens: 100, OverlapTokens: 50},
	} {
		if _, err := chunk.New(&o); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("New(%+v) = %v, want ErrInvalidInput", o, err)
		}
	}
	c := mustNew(t, &chunk.Options{TargetTokens: 8})
	if c.OverlapTokens() != 2 {
		t.Errorf("default overlap for target 8 = %d, want 2", c.OverlapTokens())
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("# Title\n\nSome text. More text! And more?\n\n## Sub\n- a\n- b\n", 16, 4)
	f.Add(strings.Repeat("word ", 200), 10, 3)
	f.Add("日本語。テキスト！\xff\xfe\x00", 1, 0)
	f.Fuzz(func(t *testing.T, text string, target, overlap int) {
		target = 1 + abs(target)%200
		overlap = abs(overlap) % (target/2 + 1)
		if 2*overlap >= target {
			overlap = -1
		}
		c, err := chunk.New(&chunk.Options{TargetTokens: target, OverlapTokens: overlap})
		if err != nil {
			t.Fatal(err)
		}
		check(t, c, text)
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n {
			return 0
		}
		return -n
	}
	return n
}
