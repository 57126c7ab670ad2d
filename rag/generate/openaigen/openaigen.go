// Package openaigen is the OpenAI-compatible Generator of package rag/generate: it
// streams chat completions through the official openai-go client, from OpenAI or any
// server that speaks the chat completions API (vLLM, Ollama, LiteLLM, Azure-compatible
// gateways, ...).
//
// # Retries
//
// The client's own retries are disabled; Generate retries a request that fails with
// HTTP 408, 409, 429 or 5xx, a network error, or an error event in the stream — but only
// before the first piece of the answer was passed to emit. After that a retry would
// repeat text the caller has already shown, so the error is returned and the caller
// keeps the partial answer (package rag stores it). Waits grow exponentially with full
// jitter from RetryBaseDelay up to RetryMaxDelay, honour a Retry-After header in
// seconds (capped by RetryMaxDelay), and end early when ctx is done.
//
// # Errors
//
// Errors carry the kinds of package clone: 400 and 422 are clone.ErrInvalidInput (413,
// and 400 with the code "context_length_exceeded", clone.ErrTooLarge); 401, 403 and 404
// are the host's misconfiguration (a bad key, a missing model) and map to
// clone.ErrUnavailable, as do throttling, server errors, network errors and a done
// context (which stays reachable with errors.Is(err, context.Canceled)). The client's
// *openai.Error stays reachable with errors.As. Messages never repeat the prompt.
package openaigen

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/internal/openairetry"
	"github.com/cloneiso/cloneiso/rag/generate"
)

// Defaults of Options.
const (
	DefaultMaxRetries     = 2
	DefaultRetryBaseDelay = 500 * time.Millisecond
	DefaultRetryMaxDelay  = 8 * time.Second
	MaxRetries            = 10
)

// Options configure New. Model is required.
type Options struct {
	// Model is the chat model, e.g. "gpt-4o-mini".
	Model string
	// BaseURL is the API's base URL, e.g. "https://api.openai.com/v1/" (default) or
	// "http://127.0.0.1:8000/v1/" for a compatible server.
	BaseURL string
	// APIKey is sent as a bearer token. "" means the client's default (the
	// OPENAI_API_KEY environment variable).
	APIKey string
	// HTTPClient replaces the client's HTTP client.
	HTTPClient *http.Client
	// MaxRetries is the number of retries before the first token: 0 means
	// DefaultMaxRetries, -1 none; at most MaxRetries.
	MaxRetries int
	// RetryBaseDelay and RetryMaxDelay bound the waits between attempts: 0 means
	// DefaultRetryBaseDelay / DefaultRetryMaxDelay.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// Temperature, if not nil, is sent with every request (0..2).
	Temperature *float64
	// MaxTokens is the default answer limit (max_completion_tokens) when the request sets
	// none; 0 sends none.
	MaxTokens int
	// NoUsage leaves out stream_options.include_usage, for servers that refuse it.
	NoUsage bool
	// RequestOptions are passed to the client after the ones above.
	RequestOptions []option.RequestOption
}

// Generator streams answers from a chat completions API. It is safe for concurrent use.
type Generator struct {
	client        openai.Client
	model         string
	retries       int
	base, maxWait time.Duration
	temperature   *float64
	maxTokens     int
	usage         bool
}

var _ generate.Generator = (*Generator)(nil)

// New returns a Generator.
func New(opts *Options) (*Generator, error) {
	const op = "openaigen.New"
	if opts == nil || strings.TrimSpace(opts.Model) == "" {
		return nil, errs.New(errs.InvalidInput, op, "a model is required")
	}
	o := *opts
	switch {
	case o.MaxRetries < -1 || o.MaxRetries > MaxRetries:
		return nil, errs.New(errs.InvalidInput, op, "max retries must be -1..%d", MaxRetries)
	case o.RetryBaseDelay < 0 || o.RetryMaxDelay < 0 || o.MaxTokens < 0:
		return nil, errs.New(errs.InvalidInput, op, "delays and max tokens must not be negative")
	case o.Temperature != nil && (*o.Temperature < 0 || *o.Temperature > 2):
		return nil, errs.New(errs.InvalidInput, op, "temperature must be 0..2")
	}
	g := &Generator{model: o.Model, retries: o.MaxRetries, base: o.RetryBaseDelay, maxWait: o.RetryMaxDelay,
		temperature: o.Temperature, maxTokens: o.MaxTokens, usage: !o.NoUsage}
	switch g.retries {
	case 0:
		g.retries = DefaultMaxRetries
	case -1:
		g.retries = 0
	}
	if g.base == 0 {
		g.base = DefaultRetryBaseDelay
	}
	if g.maxWait == 0 {
		g.maxWait = DefaultRetryMaxDelay
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
	g.client = openai.NewClient(ro...)
	return g, nil
}

// Model implements generate.Generator: "openai:<model>".
func (g *Generator) Model() string { return "openai:" + g.model }

func (g *Generator) params(req *generate.Request) openai.ChatCompletionNewParams {
	msgs := make([]openai.ChatCompletionMessageParamUnion, 0, len(req.Messages))
	for _, m := range req.Messages {
		switch m.Role {
		case generate.RoleSystem:
			msgs = append(msgs, openai.SystemMessage(m.Content))
		case generate.RoleAssistant:
			msgs = append(msgs, openai.AssistantMessage(m.Content))
		default:
			msgs = append(msgs, openai.UserMessage(m.Content))
		}
	}
	p := openai.ChatCompletionNewParams{Model: openai.ChatModel(g.model), Messages: msgs}
	if g.usage {
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	}
	if g.temperature != nil {
		p.Temperature = openai.Float(*g.temperature)
	}
	if n := req.MaxTokens; n > 0 {
		p.MaxCompletionTokens = openai.Int(int64(n))
	} else if g.maxTokens > 0 {
		p.MaxCompletionTokens = openai.Int(int64(g.maxTokens))
	}
	return p
}

// Generate implements generate.Generator with a streaming chat completion.
func (g *Generator) Generate(ctx context.Context, req *generate.Request, emit func(delta string) error) (*generate.Result, error) {
	const op = "openaigen.Generate"
	if req == nil || len(req.Messages) == 0 {
		return nil, errs.New(errs.InvalidInput, op, "no messages")
	}
	if req.MaxTokens < 0 {
		return nil, errs.New(errs.InvalidInput, op, "max tokens must not be negative")
	}
	params := g.params(req)
	for attempt := 0; ; attempt++ {
		res, started, err := g.once(ctx, params, emit)
		if err == nil {
			return res, nil
		}
		var emitErr emitError
		if errors.As(err, &emitErr) {
			return nil, emitErr.err
		}
		kind, retry := classify(ctx, err)
		if started || !retry || attempt >= g.retries {
			return nil, wrap(op, kind, err)
		}
		t := time.NewTimer(g.backoff(attempt, err))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, errs.Wrap(errs.Unavailable, op, errors.Join(ctx.Err(), err), "generation cancelled while waiting to retry")
		case <-t.C:
		}
	}
}

// emitError carries an error of the caller's emit function out of once untouched.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// once runs one streaming request; started reports whether emit was called.
func (g *Generator) once(ctx context.Context, params openai.ChatCompletionNewParams, emit func(string) error) (*generate.Result, bool, error) {
	stream := g.client.Chat.Completions.NewStreaming(ctx, params)
	defer stream.Close()
	res := &generate.Result{Model: g.model}
	var text strings.Builder
	started := false
	for stream.Next() {
		chunk := stream.Current()
		if chunk.Model != "" {
			res.Model = chunk.Model
		}
		if u := chunk.Usage; u.TotalTokens > 0 || u.PromptTokens > 0 {
			res.PromptTokens, res.CompletionTokens = int(u.PromptTokens), int(u.CompletionTokens)
		}
		for _, c := range chunk.Choices {
			if c.Index != 0 {
				continue
			}
			if c.FinishReason != "" {
				res.FinishReason = c.FinishReason
			}
			if d := c.Delta.Content; d != "" {
				started = true
				if emit != nil {
					if err := emit(d); err != nil {
						return nil, true, emitError{err}
					}
				}
				text.WriteString(d)
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, started, err
	}
	if err := ctx.Err(); err != nil {
		return nil, started, err
	}
	res.Text = text.String()
	return res, started, nil
}

// classify returns the kind of err and whether it may be retried.
func classify(ctx context.Context, err error) (errs.Kind, bool) {
	if k, ok := errs.ContextKind(err); ok {
		return k, false
	}
	if k, ok := errs.ContextKind(ctx.Err()); ok {
		return k, false
	}
	var ae *openai.Error
	if errors.As(err, &ae) {
		switch c := ae.StatusCode; {
		case c == http.StatusRequestEntityTooLarge, c == http.StatusBadRequest && ae.Code == "context_length_exceeded":
			return errs.TooLarge, false
		case c == http.StatusBadRequest, c == http.StatusUnprocessableEntity:
			return errs.InvalidInput, false
		case c == http.StatusRequestTimeout, c == http.StatusConflict, c == http.StatusTooManyRequests, c >= 500:
			return errs.Unavailable, true
		default:
			return errs.Unavailable, false
		}
	}
	var se *ssestream.StreamError
	if errors.As(err, &se) {
		return errs.Unavailable, true
	}
	// Network errors, truncated or malformed streams.
	return errs.Unavailable, true
}

func wrap(op string, kind errs.Kind, err error) error {
	var ae *openai.Error
	if errors.As(err, &ae) {
		msg := "chat completion failed with HTTP " + strconv.Itoa(ae.StatusCode)
		if ae.Code != "" {
			msg += " (" + ae.Code + ")"
		}
		return errs.Wrap(kind, op, err, "%s", msg)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errs.Wrap(kind, op, err, "generation cancelled")
	}
	return errs.Wrap(kind, op, err, "chat completion stream failed")
}

// backoff returns the wait before retry attempt+1 (see openairetry.Wait).
func (g *Generator) backoff(attempt int, err error) time.Duration {
	return max(openairetry.Wait(attempt, err, g.base, g.maxWait), 0)
}
