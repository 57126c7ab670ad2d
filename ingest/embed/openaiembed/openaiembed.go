// Package openaiembed is an embed.Embedder for OpenAI's embeddings API and any
// server that speaks it (Azure OpenAI's compatible endpoint, vLLM, Ollama, LocalAI,
// text-embeddings-inference, ...), on the official github.com/openai/openai-go client.
//
// # Limits and batching
//
// Embed splits its input into requests within the API's limits: at most
// MaxInputsPerRequest (2048) inputs and a token budget per request (the API allows
// 300,000 tokens summed over the inputs of a request). An input over
// MaxTokensPerInput (8192 for OpenAI's embedding models) is refused with
// clone.ErrTooLarge before any request; an empty one with clone.ErrInvalidInput.
// Tokens are estimated with package ingest/token (an approximation, see there), so the
// default request budget keeps a 20% margin under the API's limit.
//
// # Retries
//
// The client's own retries are turned off; Embed retries a request itself when the
// server answers 408, 409, 429 or 5xx or the connection fails, up to
// Options.MaxRetries times, waiting with exponential backoff and full jitter, or as
// long as the server's Retry-After (or retry-after-ms) header asks, capped at
// Options.MaxBackoff. Waiting stops at once when the context is done. Requests are
// idempotent, so a retry after an ambiguous failure is safe.
//
// # Errors
//
// Errors carry the kinds of package clone: 429, 5xx, 408, 409, a failed connection and
// a cancelled context are clone.ErrUnavailable; 400, 404 and 422 (a refused input or
// an unknown model) clone.ErrInvalidInput; 413 clone.ErrTooLarge; 401 and 403 (a bad
// or unauthorized API key) clone.ErrForbidden; a response that does not match the
// request (wrong count, index or dimension, non-finite values) clone.ErrUnavailable.
// The client's *openai.Error stays reachable with errors.As. Messages never contain
// the input text, the server's message or the API key (read those from the
// *openai.Error).
package openaiembed

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/cloneiso/cloneiso/ingest/token"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/internal/openairetry"
)

// The API's limits and the defaults derived from them.
const (
	MaxInputsPerRequest        = 2048
	APITokensPerRequest        = 300000
	DefaultTokensPerRequest    = APITokensPerRequest * 8 / 10
	DefaultMaxTokensPerInput   = 8192
	DefaultModel               = "text-embedding-3-small"
	DefaultMaxRetries          = 5
	DefaultMinBackoff          = 500 * time.Millisecond
	DefaultMaxBackoff          = 30 * time.Second
	defaultDimensionOfSmall    = 1536
	defaultDimensionOfLarge    = 3072
	defaultDimensionOfAda002   = 1536
	maxDimension               = 20000
	textEmbedding3ModelsPrefix = "text-embedding-3"
)

// Options configure New. Nil means the defaults.
type Options struct {
	// BaseURL is the API's base URL, e.g. "http://127.0.0.1:8080/v1/"; "" means the
	// client's default (OPENAI_BASE_URL, else OpenAI's).
	BaseURL string
	// APIKey is sent as a bearer token; "" means the client's default (OPENAI_API_KEY).
	APIKey string
	// Model is the embedding model: "" means DefaultModel.
	Model string
	// Dimension is the length of the vectors. 0 means the model's native size for
	// OpenAI's models (1536 for text-embedding-3-small and text-embedding-ada-002,
	// 3072 for text-embedding-3-large) and is required for other models.
	Dimension int
	// SendDimensions sends Dimension as the request's "dimensions" parameter, which
	// shortens text-embedding-3 vectors. It is always sent for text-embedding-3 models;
	// other servers may refuse it.
	SendDimensions bool
	// MaxTokensPerRequest is the estimated-token budget of one request: 0 means
	// DefaultTokensPerRequest; at most APITokensPerRequest.
	MaxTokensPerRequest int
	// MaxInputsPerRequest bounds the inputs of one request: 0 means MaxInputsPerRequest
	// (the API's limit), which is also the largest value accepted.
	MaxInputsPerRequest int
	// MaxTokensPerInput is the largest estimated size of one input: 0 means
	// DefaultMaxTokensPerInput.
	MaxTokensPerInput int
	// MaxRetries is how many times a failed request is retried: 0 means
	// DefaultMaxRetries, a negative value none.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the wait before a retry: 0 means
	// DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient sends the requests; nil means the client's default.
	HTTPClient *http.Client
	// RequestOptions are passed to the openai-go client after the ones above (headers,
	// organization, middleware, ...).
	RequestOptions []option.RequestOption
}

// Embedder is an embed.Embedder over an OpenAI-compatible embeddings API. It is safe
// for concurrent use.
type Embedder struct {
	client                            openai.Client
	model                             string
	dim                               int
	sendDim                           bool
	maxInputs, maxTokens, maxPerInput int
	retries                           int
	minBackoff, maxBackoff            time.Duration
}

// New returns an Embedder configured by opts. Invalid options are
// clone.ErrInvalidInput. New makes no request.
func New(opts *Options) (*Embedder, error) {
	const op = "openaiembed.New"
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	if o.Dimension == 0 {
		switch o.Model {
		case "text-embedding-3-small":
			o.Dimension = defaultDimensionOfSmall
		case "text-embedding-3-large":
			o.Dimension = defaultDimensionOfLarge
		case "text-embedding-ada-002":
			o.Dimension = defaultDimensionOfAda002
		default:
			return nil, errs.New(errs.InvalidInput, op, "Dimension is required for model %q", o.Model)
		}
	}
	if o.MaxTokensPerRequest == 0 {
		o.MaxTokensPerRequest = DefaultTokensPerRequest
	}
	if o.MaxInputsPerRequest == 0 {
		o.MaxInputsPerRequest = MaxInputsPerRequest
	}
	if o.MaxTokensPerInput == 0 {
		o.MaxTokensPerInput = DefaultMaxTokensPerInput
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	} else if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	switch {
	case o.Dimension < 1 || o.Dimension > maxDimension:
		return nil, errs.New(errs.InvalidInput, op, "dimension %d outside 1..%d", o.Dimension, maxDimension)
	case o.MaxTokensPerRequest < 1 || o.MaxTokensPerRequest > APITokensPerRequest:
		return nil, errs.New(errs.InvalidInput, op, "MaxTokensPerRequest outside 1..%d", APITokensPerRequest)
	case o.MaxInputsPerRequest < 1 || o.MaxInputsPerRequest > MaxInputsPerRequest:
		return nil, errs.New(errs.InvalidInput, op, "MaxInputsPerRequest outside 1..%d", MaxInputsPerRequest)
	case o.MaxTokensPerInput < 1 || o.MaxTokensPerInput > o.MaxTokensPerRequest:
		return nil, errs.New(errs.InvalidInput, op, "MaxTokensPerInput outside 1..MaxTokensPerRequest")
	case o.MinBackoff < 0 || o.MaxBackoff < o.MinBackoff:
		return nil, errs.New(errs.InvalidInput, op, "invalid backoff bounds")
	}
	ro := []option.RequestOption{option.WithMaxRetries(0)}
	if o.BaseURL != "" {
		ro = append(ro, option.WithBaseURL(o.BaseURL))
	}
	if o.APIKey != "" {
		ro = append(ro, option.WithAPIKey(o.APIKey))
	}
	if o.HTTPClient != nil {
		ro = append(ro, option.WithHTTPClient(o.HTTPClient))
	}
	ro = append(ro, o.RequestOptions...)
	return &Embedder{
		client:      openai.NewClient(ro...),
		model:       o.Model,
		dim:         o.Dimension,
		sendDim:     o.SendDimensions || strings.HasPrefix(o.Model, textEmbedding3ModelsPrefix),
		maxInputs:   o.MaxInputsPerRequest,
		maxTokens:   o.MaxTokensPerRequest,
		maxPerInput: o.MaxTokensPerInput,
		retries:     o.MaxRetries,
		minBackoff:  o.MinBackoff,
		maxBackoff:  o.MaxBackoff,
	}, nil
}

// Dimension implements embed.Embedder.
func (e *Embedder) Dimension() int { return e.dim }

// Model implements embed.Embedder: "openai:<model>/<dimension>".
func (e *Embedder) Model() string { return "openai:" + e.model + "/" + strconv.Itoa(e.dim) }

// Embed implements embed.Embedder: it validates every input, then sends them in as
// few requests as the limits allow, one after the other, and returns one vector per
// text, in order.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	const op = "openaiembed.Embed"
	if len(texts) == 0 {
		return nil, nil
	}
	tokens := make([]int, len(texts))
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			return nil, errs.New(errs.InvalidInput, op, "input %d is empty", i)
		}
		tokens[i] = max(token.Count(t), 1)
		if tokens[i] > e.maxPerInput {
			return nil, errs.New(errs.TooLarge, op, "input %d has about %d tokens; the limit is %d", i, tokens[i], e.maxPerInput)
		}
	}
	out := make([][]float32, len(texts))
	start := 0
	for _, n := range e.split(tokens) {
		vs, err := e.request(ctx, texts[start:start+n])
		if err != nil {
			return nil, err
		}
		copy(out[start:start+n], vs)
		start += n
	}
	return out, nil
}

// split returns the sizes of the requests for inputs of the given token counts.
func (e *Embedder) split(tokens []int) []int {
	var sizes []int
	for start := 0; start < len(tokens); {
		end, sum := start, 0
		for end < len(tokens) && end-start < e.maxInputs && (end == start || sum+tokens[end] <= e.maxTokens) {
			sum += tokens[end]
			end++
		}
		sizes = append(sizes, end-start)
		start = end
	}
	return sizes
}

// Batches returns how Embed would split texts into requests: the number of inputs of
// each request, for tests and capacity planning.
func (e *Embedder) Batches(texts []string) []int {
	tokens := make([]int, len(texts))
	for i, t := range texts {
		tokens[i] = max(token.Count(t), 1)
	}
	return e.split(tokens)
}

// request embeds one batch, retrying as documented.
func (e *Embedder) request(ctx context.Context, batch []string) ([][]float32, error) {
	const op = "openaiembed.Embed"
	params := openai.EmbeddingNewParams{
		Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: batch},
		Model:          openai.EmbeddingModel(e.model),
		EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat,
	}
	if e.sendDim {
		params.Dimensions = openai.Int(int64(e.dim))
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, errs.Wrap(errs.Unavailable, op, err, "cancelled")
		}
		res, err := e.client.Embeddings.New(ctx, params)
		if err == nil {
			return e.decode(res, len(batch))
		}
		if ctx.Err() != nil {
			return nil, errs.Wrap(errs.Unavailable, op, errors.Join(ctx.Err(), err), "cancelled")
		}
		kind, retry := classify(err)
		if !retry || attempt >= e.retries {
			var ae *openai.Error
			if errors.As(err, &ae) {
				return nil, errs.Wrap(kind, op, err, "embedding service answered %d", ae.StatusCode)
			}
			return nil, errs.Wrap(kind, op, err, "embedding service unreachable")
		}
		t := time.NewTimer(e.backoff(attempt, err))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, errs.Wrap(errs.Unavailable, op, errors.Join(ctx.Err(), err), "cancelled while waiting to retry")
		case <-t.C:
		}
	}
}

func (e *Embedder) decode(res *openai.CreateEmbeddingResponse, n int) ([][]float32, error) {
	const op = "openaiembed.Embed"
	if res == nil || len(res.Data) != n {
		return nil, errs.New(errs.Unavailable, op, "embedding service returned a wrong number of vectors")
	}
	out := make([][]float32, n)
	backing := make([]float32, n*e.dim)
	for _, d := range res.Data {
		i := int(d.Index)
		if d.Index < 0 || i >= n || out[i] != nil {
			return nil, errs.New(errs.Unavailable, op, "embedding service returned a wrong or repeated index")
		}
		if len(d.Embedding) != e.dim {
			return nil, errs.New(errs.Unavailable, op, "embedding service returned %d values, want %d", len(d.Embedding), e.dim)
		}
		v := backing[i*e.dim : (i+1)*e.dim : (i+1)*e.dim]
		for j, x := range d.Embedding {
			f := float32(x)
			if math.IsNaN(x) || math.IsInf(float64(f), 0) {
				return nil, errs.New(errs.Unavailable, op, "embedding service returned a non-finite value")
			}
			v[j] = f
		}
		out[i] = v
	}
	return out, nil
}

// classify returns the kind of a request error and whether it is worth retrying.
func classify(err error) (errs.Kind, bool) {
	var ae *openai.Error
	if !errors.As(err, &ae) {
		return errs.Unavailable, true // connection refused, reset, timeout
	}
	switch c := ae.StatusCode; {
	case c == http.StatusTooManyRequests, c == http.StatusRequestTimeout, c == http.StatusConflict, c >= 500:
		return errs.Unavailable, true
	case c == http.StatusRequestEntityTooLarge:
		return errs.TooLarge, false
	case c == http.StatusUnauthorized, c == http.StatusForbidden:
		return errs.Forbidden, false
	case c == http.StatusBadRequest, c == http.StatusNotFound, c == http.StatusUnprocessableEntity:
		return errs.InvalidInput, false
	default:
		return errs.Unavailable, false
	}
}

// backoff is the wait before retry number attempt+1 (see openairetry.Wait).
func (e *Embedder) backoff(attempt int, err error) time.Duration {
	return max(openairetry.Wait(attempt, err, e.minBackoff, e.maxBackoff), 0)
}
