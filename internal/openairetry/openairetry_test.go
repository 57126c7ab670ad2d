package openairetry

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

func apiError(h http.Header) error {
	return &openai.Error{StatusCode: 429, Response: &http.Response{StatusCode: 429, Header: h}}
}

func TestWait(t *testing.T) {
	const base, max = 100 * time.Millisecond, 2 * time.Second
	for _, c := range []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"Retry-After-Ms", http.Header{"Retry-After-Ms": {"250"}}, 250 * time.Millisecond},
		{"Retry-After seconds", http.Header{"Retry-After": {"1"}}, time.Second},
		{"Retry-After capped", http.Header{"Retry-After": {"3600"}}, max},
		{"Retry-After in the past", http.Header{"Retry-After": {time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}}, 0},
	} {
		if got := Wait(0, apiError(c.h), base, max); got > c.want || got < c.want-time.Second && c.want > 0 {
			t.Errorf("%s: %v; want %v", c.name, got, c.want)
		}
	}
	// Without a server hint: full jitter under an exponential ceiling, capped.
	for attempt := range 8 {
		ceiling := min(base<<attempt, max)
		for range 50 {
			if got := Wait(attempt, errors.New("network"), base, max); got < 0 || got > ceiling {
				t.Fatalf("attempt %d: %v outside [0, %v]", attempt, got, ceiling)
			}
		}
	}
}
