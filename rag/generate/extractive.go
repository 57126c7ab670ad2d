package generate

import (
	"context"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// ExtractiveModel is the model name of Extractive.
const ExtractiveModel = "extractive-v1"

// DefaultNoAnswer is what Extractive answers when the request has no sources.
const DefaultNoAnswer = "I could not find anything about that in my documents."

// Limits of ExtractiveOptions.
const (
	DefaultExtractiveSentences = 2
	MaxExtractiveSentences     = 20
	DefaultSentenceBytes       = 600
)

// ExtractiveOptions configure NewExtractive. Nil means the defaults.
type ExtractiveOptions struct {
	// Sentences is the most sentences an answer quotes: 0 means
	// DefaultExtractiveSentences; at most MaxExtractiveSentences.
	Sentences int
	// SentenceBytes bounds each quoted sentence (cut at a word boundary with "…"):
	// 0 means DefaultSentenceBytes.
	SentenceBytes int
	// NoAnswer is the answer when there are no sources: "" means DefaultNoAnswer.
	NoAnswer string
}

// Extractive is a Generator that answers by quoting the sentences of the request's
// sources that share the most words with the question, each followed by its source's
// citation marker (see Marker). It calls no model and no network, and it is
// deterministic: the same request always gives the same answer, streamed in the same
// pieces (one word, with the space before it, per emit).
//
// How sentences are chosen: the question's words (lower-cased letters and digits, minus
// a short list of English stop words) are the terms; every sentence of every source is
// scored by the number of distinct terms it contains; the best-scoring sentences are
// quoted, ties going to the better-ranked source and then to the earlier sentence,
// at most one sentence per source. If no sentence shares a term with the question,
// the answer quotes the first sentence of the first source.
type Extractive struct {
	sentences, sentenceBytes int
	noAnswer                 string
}

// NewExtractive returns an Extractive generator.
func NewExtractive(opts *ExtractiveOptions) (*Extractive, error) {
	const op = "generate.NewExtractive"
	var o ExtractiveOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case o.Sentences < 0 || o.Sentences > MaxExtractiveSentences:
		return nil, errs.New(errs.InvalidInput, op, "sentences must be 0..%d", MaxExtractiveSentences)
	case o.SentenceBytes < 0:
		return nil, errs.New(errs.InvalidInput, op, "sentence bytes must not be negative")
	}
	if o.Sentences == 0 {
		o.Sentences = DefaultExtractiveSentences
	}
	if o.SentenceBytes == 0 {
		o.SentenceBytes = DefaultSentenceBytes
	}
	if o.NoAnswer == "" {
		o.NoAnswer = DefaultNoAnswer
	}
	return &Extractive{sentences: o.Sentences, sentenceBytes: o.SentenceBytes, noAnswer: o.NoAnswer}, nil
}

// Model implements Generator.
func (e *Extractive) Model() string { return ExtractiveModel }

// Answer returns the answer Generate would stream for req, without streaming it.
func (e *Extractive) Answer(req *Request) string {
	if req == nil || len(req.Sources) == 0 {
		return e.noAnswer
	}
	terms := Terms(req.Question)
	type cand struct {
		src, pos, score int
		text            string
	}
	var best []cand
	for i, s := range req.Sources {
		var top cand
		top.score = -1
		for j, sent := range Sentences(s.Text) {
			sc := 0
			sw := Terms(sent)
			for t := range terms {
				if _, ok := sw[t]; ok {
					sc++
				}
			}
			if sc > top.score {
				top = cand{src: i, pos: j, score: sc, text: sent}
			}
		}
		if top.score > 0 || (i == 0 && top.text != "") {
			best = append(best, top)
		}
	}
	sort.SliceStable(best, func(a, b int) bool {
		if best[a].score != best[b].score {
			return best[a].score > best[b].score
		}
		return best[a].src < best[b].src
	})
	if len(best) > 0 && best[0].score > 0 {
		// Drop the zero-score fallback when something matched.
		n := 0
		for _, c := range best {
			if c.score > 0 {
				best[n] = c
				n++
			}
		}
		best = best[:n]
	}
	if len(best) > e.sentences {
		best = best[:e.sentences]
	}
	if len(best) == 0 {
		return e.noAnswer
	}
	var b strings.Builder
	for i, c := range best {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(cut(c.text, e.sentenceBytes))
		b.WriteByte(' ')
		b.WriteString(Cite(c.src, req.Sources[c.src].Page))
	}
	return b.String()
}

// Generate implements Generator.
func (e *Extractive) Generate(ctx context.Context, req *Request, emit func(delta string) error) (*Result, error) {
	const op = "generate.Extractive"
	if req == nil {
		return nil, errs.New(errs.InvalidInput, op, "no request")
	}
	if err := ctx.Err(); err != nil {
		return nil, errs.Wrap(ctxKind(err), op, err, "generation cancelled")
	}
	answer := e.Answer(req)
	var sent strings.Builder
	for _, piece := range Pieces(answer) {
		if err := ctx.Err(); err != nil {
			return nil, errs.Wrap(ctxKind(err), op, err, "generation cancelled")
		}
		if emit != nil {
			if err := emit(piece); err != nil {
				return nil, err
			}
		}
		sent.WriteString(piece)
	}
	return &Result{Text: sent.String(), Model: ExtractiveModel, FinishReason: "stop"}, nil
}

// Pieces splits s into the pieces Extractive streams: each word with the white space
// before it. The pieces concatenated are s.
func Pieces(s string) []string {
	var out []string
	start := 0
	inWord := false
	for i, r := range s {
		sp := unicode.IsSpace(r)
		if sp && inWord {
			out = append(out, s[start:i])
			start = i
			inWord = false
		} else if !sp {
			inWord = true
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// Sentences splits text into trimmed sentences: at '.', '!' or '?' followed by white
// space, and at line breaks.
func Sentences(text string) []string {
	var out []string
	start := 0
	add := func(end int) {
		if s := strings.TrimSpace(text[start:end]); s != "" {
			out = append(out, strings.Join(strings.Fields(s), " "))
		}
		start = end
	}
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '\n':
			add(i + 1)
		case '.', '!', '?':
			if i+1 == len(text) || text[i+1] == ' ' || text[i+1] == '\t' || text[i+1] == '\n' || text[i+1] == '\r' {
				add(i + 1)
			}
		}
	}
	add(len(text))
	return out
}

// stop words are left out of Terms: they match everything.
var stop = map[string]struct{}{}

func init() {
	for _, w := range strings.Fields(`a an and are as at be by can could did do does for from had has have
		how i in is it its me my of on or our should so than that the their them then there these
		they this to was we were what when where which who whom whose why will with would you your`) {
		stop[w] = struct{}{}
	}
}

// Terms returns the distinct lower-cased words (runs of letters and digits) of s,
// without English stop words.
func Terms(s string) map[string]struct{} {
	out := map[string]struct{}{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-'
	}) {
		w = strings.Trim(w, "-")
		if w == "" {
			continue
		}
		if _, ok := stop[w]; !ok {
			out[w] = struct{}{}
		}
	}
	return out
}

// cut shortens s to at most n bytes at a word boundary, adding "…".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := strings.LastIndexByte(s[:n], ' ')
	if i <= 0 {
		i = n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
	}
	return s[:i] + "…"
}

// ctxKind is the kind of a context's error: Canceled, or Unavailable for a deadline.
func ctxKind(err error) errs.Kind {
	k, _ := errs.ContextKind(err)
	return k
}
