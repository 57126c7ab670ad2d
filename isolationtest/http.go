package isolationtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
)

// HTTPDo sends one request to h as actor a (with its Token as a bearer token, if any)
// and returns the status code and the response body. Use it to write Surfaces and
// Probes over a host's HTTP API.
func HTTPDo(ctx context.Context, h http.Handler, a Actor, method, target string, body io.Reader, header http.Header) (int, string) {
	req := httptest.NewRequestWithContext(ctx, method, target, body)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// HTTPProbe returns a Probe that, for each victim canary, sends a request to h as the
// attacker: method to path(victim), with body(victim) as a JSON body if body is not nil.
// It returns every status and response body; a 5xx answer is an error (bad input must
// never be a server error).
func HTTPProbe(name string, h http.Handler, method string, path func(victim string) string, body func(victim string) string) Probe {
	return Probe{Name: name, Run: func(ctx context.Context, a Actor, victims []string) (string, error) {
		var out strings.Builder
		for _, v := range victims {
			var r io.Reader
			hdr := http.Header{}
			if body != nil {
				r = strings.NewReader(body(v))
				hdr.Set("Content-Type", "application/json")
			}
			code, resp := HTTPDo(ctx, h, a, method, path(v), r, hdr)
			fmt.Fprintf(&out, "%d %s\n", code, resp)
			if code >= 500 {
				return out.String(), fmt.Errorf("%s %s answered %d", method, path(v), code)
			}
		}
		return out.String(), nil
	}}
}
