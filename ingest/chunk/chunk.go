// Package chunk splits a document's text into passages ("chunks") of a target size in
// tokens, with overlap, the unit that is embedded, stored and retrieved.
//
// Splitting is recursive on the text's structure. The text is cut into paragraphs
// (at blank lines); a paragraph larger than the target is cut into lines, a line into
// sentences (after ". ", "! ", "? " and the CJK full stops), a sentence into words,
// and a single word larger than the target between characters. A paragraph or line
// that starts with a Markdown heading ("# Title"; the HTML extractor writes headings
// this way too) starts a section. The resulting pieces are merged greedily, in order, into chunks
// of at most the target; consecutive chunks share up to the overlap's worth of
// trailing pieces, so a sentence cut at a chunk boundary is whole in one of them. A
// heading starts a new chunk (without overlap) once the current chunk holds at least
// half the target, so sections stay apart without producing a crowd of tiny chunks.
//
// Every chunk is a contiguous slice of the input: Text == text[Start:End], with byte
// offsets a citation can point back to; leading and trailing white space is trimmed
// and chunks of white space only are dropped. Sizes are measured with a token counter,
// package token's approximation by default (see there why it is not a real
// tokenizer); any subadditive counter can be plugged in through Options.Count.
//
// The chunker does not copy the text: chunks are substrings of it, and the only
// allocations per call are the slice of results and a slice of piece boundaries. Each
// byte is measured about once: a piece's count is computed when it is cut, and a
// chunk's count is the sum of its pieces'.
package chunk

import (
	"strings"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/ingest/token"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Defaults and limits of Options.
const (
	DefaultTargetTokens  = 512
	DefaultOverlapTokens = 64
	// MaxTargetTokens is the largest target: the input limit of OpenAI's embedding models.
	MaxTargetTokens = 8192
)

// Options configure a Chunker. Nil means the defaults.
type Options struct {
	// TargetTokens is the most tokens a chunk may hold: 0 means DefaultTargetTokens,
	// otherwise 1 to MaxTargetTokens.
	TargetTokens int
	// OverlapTokens is the most tokens two consecutive chunks share: 0 means
	// DefaultOverlapTokens (capped at a quarter of the target), a negative value means
	// none. It must be less than half of TargetTokens.
	OverlapTokens int
	// Count measures a text in tokens; nil means token.Count. It must be subadditive
	// (the count of a text is at most the sum of the counts of any split of it) and
	// return 0 only for text without content, or chunks may exceed the target.
	Count func(string) int
}

// Chunk is one passage of a text.
type Chunk struct {
	// Text is the passage: exactly text[Start:End] of the text given to Split.
	Text string
	// Start and End are byte offsets into that text.
	Start, End int
	// Tokens is the sum of the counts of the pieces the chunk was merged from: at
	// least the counter's count of Text (equal when the pieces were cut at white
	// space, as they almost always are) and at most the target.
	Tokens int
}

// Chunker splits texts into chunks. It is immutable and safe for concurrent use.
type Chunker struct {
	target, overlap int
	// count returns the size of a text if it is at most the limit, else any larger
	// value (token.CountUpTo, or Options.Count ignoring the limit).
	count func(s string, limit int) int
}

// New returns a Chunker configured by opts (nil means defaults). Invalid options are
// clone.ErrInvalidInput.
func New(opts *Options) (*Chunker, error) {
	const op = "chunk.New"
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.TargetTokens == 0 {
		o.TargetTokens = DefaultTargetTokens
	}
	if o.TargetTokens < 1 || o.TargetTokens > MaxTargetTokens {
		return nil, errs.New(errs.InvalidInput, op, "target of %d tokens is outside 1..%d", o.TargetTokens, MaxTargetTokens)
	}
	switch {
	case o.OverlapTokens == 0:
		o.OverlapTokens = min(DefaultOverlapTokens, o.TargetTokens/4)
	case o.OverlapTokens < 0:
		o.OverlapTokens = 0
	case 2*o.OverlapTokens >= o.TargetTokens:
		return nil, errs.New(errs.InvalidInput, op, "overlap of %d tokens is not less than half the target of %d", o.OverlapTokens, o.TargetTokens)
	}
	count := token.CountUpTo
	if f := o.Count; f != nil {
		count = func(s string, _ int) int { return f(s) }
	}
	return &Chunker{target: o.TargetTokens, overlap: o.OverlapTokens, count: count}, nil
}

// TargetTokens returns the chunker's target size.
func (c *Chunker) TargetTokens() int { return c.target }

// OverlapTokens returns the chunker's overlap.
func (c *Chunker) OverlapTokens() int { return c.overlap }

// piece is a contiguous span of the text of at most target tokens.
type piece struct {
	start, end, tokens int
	heading            bool // the piece starts a heading section (not the first)
}

// Split returns the chunks of text, in order. Text without content has none. Split
// accepts any string (invalid UTF-8 is measured byte by byte and never cut inside a
// valid character); it does not fail and does not panic.
func (c *Chunker) Split(text string) []Chunk {
	if len(text) == 0 {
		return nil
	}
	s := splitter{text: text, c: c}
	s.pieces = make([]piece, 0, len(text)/256+4)
	s.split(0, len(text), levelParagraph)
	return s.merge()
}

const (
	levelParagraph = iota
	levelLine
	levelSentence
	levelWord
	levelRune
)

type splitter struct {
	text   string
	c      *Chunker
	pieces []piece
}

// split appends the pieces of text[start:end], which holds more than the target, cut at
// level's separators (and finer ones where needed).
func (s *splitter) split(start, end, level int) {
	if level == levelRune {
		s.splitRunes(start, end)
		return
	}
	a := start
	emit := func(b int) {
		if b <= a {
			return
		}
		heading := level <= levelLine && a > 0 && isHeading(s.text[a:b])
		t := s.text[a:b]
		if n := s.c.count(t, s.c.target); n <= s.c.target {
			s.pieces = append(s.pieces, piece{a, b, n, heading})
		} else {
			first := len(s.pieces)
			s.split(a, b, level+1)
			if heading && first < len(s.pieces) {
				s.pieces[first].heading = true
			}
		}
		a = b
	}
	text := s.text[:end]
	switch level {
	case levelParagraph:
		for i := start; ; {
			j := strings.Index(text[i:], "\n\n")
			if j < 0 {
				break
			}
			b := i + j + 2
			for b < end && (text[b] == '\n' || text[b] == '\r') {
				b++
			}
			emit(b)
			i = b
		}
		emit(end)
	case levelLine:
		for i := start; ; {
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				break
			}
			b := i + j + 1
			emit(b)
			i = b
		}
		emit(end)
	case levelSentence:
		for i := start; i < end; {
			c := text[i]
			switch {
			case c == '.' || c == '!' || c == '?':
				b := i + 1
				if b < end && (text[b] == ' ' || text[b] == '\t') {
					for b < end && (text[b] == ' ' || text[b] == '\t') {
						b++
					}
					emit(b)
				}
				i = b
			case c == 0xE3 && i+2 < end && text[i+1] == 0x80 && text[i+2] == 0x82, // 。
				c == 0xEF && i+2 < end && text[i+1] == 0xBC && (text[i+2] == 0x81 || text[i+2] == 0x9F): // ！？
				i += 3
				emit(i)
			default:
				i++
			}
		}
		emit(end)
	case levelWord:
		for i := start; ; {
			j := strings.IndexByte(text[i:], ' ')
			if j < 0 {
				break
			}
			b := i + j + 1
			for b < end && text[b] == ' ' {
				b++
			}
			emit(b)
			i = b
		}
		emit(end)
	}
}

// splitRunes cuts text[start:end], which has no separator left, between characters
// into pieces of at most the target.
func (s *splitter) splitRunes(start, end int) {
	for start < end {
		rest := s.text[start:end]
		n := s.c.count(rest, s.c.target)
		if n <= s.c.target {
			s.pieces = append(s.pieces, piece{start, end, n, false})
			return
		}
		b, prev := len(rest)*s.c.target/n, -1
		for {
			b = runeStart(rest, max(b, 1))
			if m := s.c.count(rest[:b], s.c.target); m <= s.c.target || b <= 1 || b == prev {
				s.pieces = append(s.pieces, piece{start, start + b, m, false})
				break
			}
			prev, b = b, b*3/4
		}
		start += b
	}
}

// runeStart moves cut position b (0 < b) back to the start of the character it falls
// in, or forward past the first character when that one spans b, so that a cut never
// splits a valid character and always makes progress.
func runeStart(s string, b int) int {
	if b >= len(s) {
		return len(s)
	}
	for i := b; i > 0 && b-i < utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	if _, size := utf8.DecodeRuneInString(s); b < size {
		return size
	}
	return b
}

// isHeading reports whether s starts with a Markdown ATX heading: 1 to 6 '#' then a
// space, a tab or the end of the line.
func isHeading(s string) bool {
	n := 0
	for n < len(s) && s[n] == '#' {
		n++
	}
	if n == 0 || n > 6 {
		return false
	}
	return n == len(s) || s[n] == ' ' || s[n] == '\t' || s[n] == '\n' || s[n] == '\r'
}

// merge turns the pieces into chunks.
func (s *splitter) merge() []Chunk {
	p := s.pieces
	target, overlap := s.c.target, s.c.overlap
	out := make([]Chunk, 0, len(p)/2+1)
	for i := 0; i < len(p); {
		j, sum := i, 0
		for j < len(p) {
			if j > i && ((p[j].heading && 2*sum >= target) || sum+p[j].tokens > target) {
				break
			}
			sum += p[j].tokens
			j++
		}
		s.emit(&out, p[i].start, p[j-1].end, sum)
		if j == len(p) {
			break
		}
		next := j
		if !p[j].heading {
			ov := 0
			for next-1 > i && ov+p[next-1].tokens <= overlap && ov+p[next-1].tokens+p[j].tokens <= target {
				next--
				ov += p[next].tokens
			}
		}
		i = next
	}
	return out
}

func (s *splitter) emit(out *[]Chunk, start, end, tokens int) {
	s0, e0 := start, end
	for start < end && isSpace(s.text[start]) {
		start++
	}
	for end > start && isSpace(s.text[end-1]) {
		end--
	}
	// The trimmed white space may have been counted (a run of newlines is a token).
	if start > s0 {
		tokens -= s.c.count(s.text[s0:start], tokens)
	}
	if end < e0 {
		tokens -= s.c.count(s.text[end:e0], tokens)
	}
	if start == end {
		return
	}
	t := s.text[start:end]
	c := Chunk{Text: t, Start: start, End: end, Tokens: tokens}
	if o := *out; len(o) > 0 {
		last := &o[len(o)-1]
		switch {
		case last.Start <= start && last.End >= end:
			return // entirely inside the previous chunk (an overlap-only remainder)
		case start <= last.Start:
			// The previous chunk is entirely inside this one (its only content was the
			// overlap this one starts with): this one replaces it.
			*last = c
			return
		}
	}
	*out = append(*out, c)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
