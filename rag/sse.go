package rag

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// SSE event names written by WriteSSE.
const (
	SSEDelta = "delta" // data: {"text": "..."}
	SSEDone  = "done"  // data: SSEDoneData
	SSEError = "error" // data: {"error": "...", "status": 503}
)

// SSEDoneData is the data of the final "done" event.
type SSEDoneData struct {
	ConversationID uuid.UUID  `json:"conversation_id"`
	QuestionID     uuid.UUID  `json:"question_id"`
	AnswerID       uuid.UUID  `json:"answer_id"`
	Answer         string     `json:"answer"`
	Citations      []Citation `json:"citations"`
}

// SSEErrorData is the data of an "error" event.
type SSEErrorData struct {
	Error  string `json:"error"`  // safe to show: the error's message, never another clone's data
	Status int    `json:"status"` // clone.HTTPStatus of the error
}

// WriteSSE streams events to w, the response to r, as Server-Sent Events
// (text/event-stream): one "delta" event per piece of the answer, then one "done"
// event, or one "error" event if the stream fails. Each event is flushed at once.
//
// The first event is read before anything is written, so a request that fails before
// generation starts (bad input, a foreign or missing conversation, retrieval failing)
// is answered like every other API error, by clonehttp.WriteError: an
// application/problem+json body with its HTTP status (clone.HTTPStatus: 400, 404, 503,
// ...), kind and detail, and r's request ID; no event stream starts. A stream that
// fails later keeps status 200 and ends with an "error" event. Error messages are the
// SDK's safe messages; internal errors and isolation violations are reported as
// "internal error".
//
// If writing fails (the client went away), WriteSSE stops the stream, which stops
// generation (see Processor.Stream: the pieces already yielded are stored as the
// answer, including the one whose write failed, which the client may have received in
// part), and returns the write error. After writing an "error" event it returns the
// stream's error.
func WriteSSE(w http.ResponseWriter, r *http.Request, events iter.Seq2[Event, error]) error {
	next, stop := iter.Pull2(events)
	defer stop()
	ev, err, ok := next()
	if ok && err != nil {
		clonehttp.WriteError(w, r, err)
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	rc := http.NewResponseController(w)
	send := func(name string, data any) error {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	w.WriteHeader(http.StatusOK)
	for ; ok; ev, err, ok = next() {
		if err != nil {
			msg := "internal error"
			var e *errs.Error
			if errors.As(err, &e) && e.Kind != errs.Unknown && e.Kind != errs.IsolationViolation {
				msg = e.Msg
			}
			if werr := send(SSEError, SSEErrorData{Error: msg, Status: clone.HTTPStatus(err)}); werr != nil {
				return errors.Join(err, werr)
			}
			return err
		}
		if ev.Response != nil {
			resp := ev.Response
			d := SSEDoneData{ConversationID: resp.Conversation.ID, QuestionID: resp.Question.ID, AnswerID: resp.Answer.ID,
				Answer: resp.Answer.Content, Citations: resp.Citations}
			if d.Citations == nil {
				d.Citations = []Citation{}
			}
			if err := send(SSEDone, d); err != nil {
				return err
			}
			continue
		}
		if err := send(SSEDelta, map[string]string{"text": ev.Delta}); err != nil {
			return err
		}
	}
	return nil
}

// ServeSSE answers req for clone cc on an HTTP response as Server-Sent Events (see
// WriteSSE), generating under the request's context so a client that disconnects
// cancels generation.
func (p *Processor) ServeSSE(w http.ResponseWriter, r *http.Request, cc clone.CloneContext, req *Request) error {
	return WriteSSE(w, r, p.Stream(r.Context(), cc, req))
}
