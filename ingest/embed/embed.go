// Package embed defines the Embedder interface that turns chunks of text into
// vectors, and Local, the deterministic embedder that needs no network and is the
// embedded default.
//
// The OpenAI-compatible adapter lives in package embed/openaiembed.
package embed

import (
	"context"
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Embedder turns texts into vectors of a fixed dimension.
//
// Implementations must be safe for concurrent use, return exactly one vector of
// Dimension() finite values per text, in order, or an error (never a partial result),
// and classify their errors with the kinds of package clone: clone.ErrInvalidInput or
// clone.ErrTooLarge for input the model refuses, clone.ErrUnavailable for a service
// that is down, throttling or was cancelled.
type Embedder interface {
	// Embed returns the vectors of texts.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Dimension is the length of every vector Embed returns.
	Dimension() int
	// Model names the model and its configuration, e.g. "local-hash-v1/384" or
	// "text-embedding-3-small/1536"; vectors of different models must not be mixed in
	// one index, and ingestion records it with every document.
	Model() string
}

// Limits of LocalOptions.
const (
	DefaultLocalDimension = 384
	MaxLocalDimension     = 20000
)

// LocalOptions configure NewLocal. Nil means the defaults.
type LocalOptions struct {
	// Dimension of the vectors: 0 means DefaultLocalDimension; at most
	// MaxLocalDimension.
	Dimension int
	// NGram is the longest run of consecutive words hashed as one feature: 0 means 2
	// (words and pairs of words); at most 5.
	NGram int
}

// Local is a deterministic embedder: "feature hashing" of lower-cased words and word
// n-grams into a vector of the configured dimension, each feature adding +1 or -1 (by
// another bit of its hash) to one coordinate, then L2-normalized. Texts sharing words
// get similar vectors, which is enough for tests, examples and keyword-like retrieval
// without a model or a network. It is not a semantic model.
//
// The same text always gives the same vector, in every process and on every platform
// (the hash is seeded with a constant). A text without words (only punctuation or
// white space) is hashed as a whole, so its vector is never all zero.
type Local struct {
	dim, ngram int
}

// NewLocal returns a Local embedder.
func NewLocal(opts *LocalOptions) (*Local, error) {
	var o LocalOptions
	if opts != nil {
		o = *opts
	}
	if o.Dimension == 0 {
		o.Dimension = DefaultLocalDimension
	}
	if o.NGram == 0 {
		o.NGram = 2
	}
	if o.Dimension < 1 || o.Dimension > MaxLocalDimension || o.NGram < 1 || o.NGram > 5 {
		return nil, errs.New(errs.InvalidInput, "embed.NewLocal", "dimension must be 1..%d and n-gram 1..5", MaxLocalDimension)
	}
	return &Local{dim: o.Dimension, ngram: o.NGram}, nil
}

// Dimension implements Embedder.
func (l *Local) Dimension() int { return l.dim }

// Model implements Embedder: "local-hash-v1/<dimension>/<n-gram>".
func (l *Local) Model() string {
	return "local-hash-v1/" + strconv.Itoa(l.dim) + "/" + strconv.Itoa(l.ngram)
}

// Embed implements Embedder. It only fails if ctx is done.
func (l *Local) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	backing := make([]float32, len(texts)*l.dim)
	for i, t := range texts {
		if i%64 == 0 && ctx.Err() != nil {
			return nil, errs.Wrap(errs.Unavailable, "embed.Local", ctx.Err(), "cancelled")
		}
		v := backing[i*l.dim : (i+1)*l.dim : (i+1)*l.dim]
		l.embed(t, v)
		out[i] = v
	}
	return out, nil
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (l *Local) embed(t string, v []float32) {
	var window [5]uint64 // hashes of the last words
	n := 0
	add := func(h uint64) {
		h ^= h >> 33
		h *= 0xff51afd7ed558ccd
		h ^= h >> 33
		idx := int(h % uint64(l.dim))
		if h&(1<<63) != 0 {
			v[idx]--
		} else {
			v[idx]++
		}
	}
	for i := 0; i < len(t); {
		// Skip to the next word: a run of letters or digits.
		r, size := utf8.DecodeRuneInString(t[i:])
		if !isWord(r) {
			i += size
			continue
		}
		h := uint64(fnvOffset)
		for i < len(t) {
			r, size = utf8.DecodeRuneInString(t[i:])
			if !isWord(r) {
				break
			}
			r = unicode.ToLower(r)
			h = (h ^ uint64(r)) * fnvPrime
			i += size
		}
		copy(window[1:], window[:4])
		window[0] = h
		n++
		// Features: the word, and the n-grams ending at it.
		g := uint64(fnvOffset)
		for k := 0; k < l.ngram && k < n; k++ {
			g = (g ^ window[k]) * fnvPrime
			g = (g ^ uint64(k+1)) * fnvPrime
			add(g)
		}
	}
	if n == 0 {
		h := uint64(fnvOffset)
		for i := 0; i < len(t); i++ {
			h = (h ^ uint64(t[i])) * fnvPrime
		}
		add(h)
	}
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		// Features cancelled out exactly; fall back to one fixed coordinate.
		v[0], sum = 1, 1
	}
	inv := float32(1 / math.Sqrt(sum))
	for j := range v {
		v[j] *= inv
	}
}

func isWord(r rune) bool {
	if r < utf8.RuneSelf {
		return (r|0x20) >= 'a' && (r|0x20) <= 'z' || r >= '0' && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}
