// Package generate defines the Generator interface that turns an assembled prompt into
// an answer, token by token, and Extractive, the deterministic generator that needs no
// model and no network and is the embedded default.
//
// The OpenAI-compatible adapter (streaming chat completions through the official
// openai-go client) lives in package generate/openaigen.
//
// A Generator sees only what the caller put in the Request: package rag assembles it
// from one clone's data and checks every part against the clone's context first, so a
// Generator has no clone context of its own and must not keep state between requests
// (no caches of prompts or answers shared across calls).
package generate

import (
	"context"
	"strconv"
)

// Role is who speaks a message of a chat prompt.
type Role string

// Message roles of a Request.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Message is one message of a chat prompt.
type Message struct {
	Role    Role // RoleSystem, RoleUser or RoleAssistant
	Content string
}

// Source is one retrieved passage the answer may quote, in the order the prompt lists
// it. Its marker in the prompt and in answers is Marker(i) for Sources[i].
type Source struct {
	Title string // the document's title, for display
	Text  string // the passage
	Page  int    // the page (from 1) where the passage begins; 0 if the document has no pages
}

// Marker returns the citation marker of Sources[i] in prompts and answers: "[i+1]".
func Marker(i int) string { return "[" + strconv.Itoa(i+1) + "]" }

// Cite returns the citation of Sources[i] on page (from 1) in answers: "[i+1, p. page]",
// or Marker(i) when page is 0 (a document without pages).
func Cite(i, page int) string {
	if page <= 0 {
		return Marker(i)
	}
	return "[" + strconv.Itoa(i+1) + ", p. " + strconv.Itoa(page) + "]"
}

// Request is what a Generator answers.
type Request struct {
	// Messages is the chat prompt: a system message, the conversation's history and,
	// last, the user's question. Model-backed generators send it as is.
	Messages []Message
	// Sources are the passages the system message lists with their markers; generators
	// that do not call a model (Extractive) answer from them directly.
	Sources []Source
	// Question is the user's question (also the content of the last message).
	Question string
	// MaxTokens bounds the answer; 0 means the generator's default.
	MaxTokens int
}

// Result describes a finished answer.
type Result struct {
	// Text is the whole answer: the concatenation of every delta passed to emit.
	Text string
	// Model names the model that answered.
	Model string
	// FinishReason is why generation stopped: "stop", "length", or what the model said.
	FinishReason string
	// PromptTokens and CompletionTokens are the usage the service reported, or estimates
	// (0 if unknown).
	PromptTokens, CompletionTokens int
}

// Generator produces an answer to a Request, streaming it.
//
// Generate calls emit with each piece of the answer as it is produced, in order, from
// the calling goroutine; the pieces concatenated are Result.Text. If emit returns an
// error, Generate stops at once and returns that error (unwrapped or wrapped, so that
// errors.Is finds it). When ctx is done, Generate returns promptly with an error
// wrapping ctx.Err(). Errors carry the kinds of package clone: clone.ErrInvalidInput or
// clone.ErrTooLarge for a prompt the model refuses, clone.ErrUnavailable for a service
// that is down, throttling or was cancelled.
//
// Implementations must be safe for concurrent use.
type Generator interface {
	Generate(ctx context.Context, req *Request, emit func(delta string) error) (*Result, error)
	// Model names the generator and its model, e.g. "extractive-v1" or "openai:gpt-4o-mini".
	Model() string
}
