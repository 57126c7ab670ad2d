package clonehttp

import (
	"net/http"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
)

// Routes returns a handler that serves mux and answers the requests mux has no route
// for with problem responses, as [WriteError] answers everything else: 404 with kind
// "not-found" for an unknown path, and 405 with kind "invalid-input" and the Allow
// header for a known path asked with another method. net/http's own answers to those
// are plain text, which a client of a JSON API cannot parse. Redirects to a canonical
// path are left to mux.
func Routes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Let mux's fallback decide 404 or 405 (and Allow); keep only its status and
		// headers, not its plain-text body.
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status != http.StatusMethodNotAllowed {
			WriteError(w, r, clone.Errorf(clone.ErrNotFound, "no endpoint %s", safeField(r.URL.Path, 128)))
			return
		}
		allow := rec.header.Get("Allow")
		p := ProblemFor(clone.Errorf(clone.ErrInvalidInput, "method %s is not allowed on %s; allowed: %s",
			safeField(r.Method, 16), safeField(r.URL.Path, 128), allow), audit.RequestIDFrom(r.Context()))
		p.Status, p.Title = http.StatusMethodNotAllowed, http.StatusText(http.StatusMethodNotAllowed)
		p.ClientRequestID = audit.ClientRequestIDFrom(r.Context())
		w.Header().Set("Allow", allow)
		writeProblem(w, p)
	})
}

// statusRecorder keeps the status and headers a fallback handler writes and drops
// its body.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }

func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(b), nil
}
