// Package openairetry computes the wait before retrying a request to an
// OpenAI-compatible API, shared by the embedding and the chat adapters.
package openairetry

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/openai/openai-go/v3"
)

// Wait returns the wait before retry number attempt+1 of a request that failed with
// err: what the server asked for (Retry-After-Ms, or Retry-After in seconds or as an
// HTTP date), else an exponential backoff from base with full jitter; never more than
// max.
func Wait(attempt int, err error, base, max time.Duration) time.Duration {
	var ae *openai.Error
	if errors.As(err, &ae) && ae.Response != nil {
		h := ae.Response.Header
		if ms, perr := strconv.ParseFloat(h.Get("Retry-After-Ms"), 64); perr == nil && ms >= 0 {
			return min(time.Duration(ms*float64(time.Millisecond)), max)
		}
		if v := h.Get("Retry-After"); v != "" {
			if s, perr := strconv.ParseFloat(v, 64); perr == nil && s >= 0 {
				return min(time.Duration(s*float64(time.Second)), max)
			}
			if t, perr := http.ParseTime(v); perr == nil {
				return min(time.Until(t), max) // negative for a past date: no wait
			}
		}
	}
	ceiling := base << min(attempt, 20)
	if ceiling <= 0 || ceiling > max {
		ceiling = max
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}
