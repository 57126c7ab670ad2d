package main

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/rag"
)

// uploadKind is the object kind of files clients upload through upload tickets before
// they are ingested (ingestion keeps the original under ingest.ObjectKind and deletes
// the upload).
const uploadKind = "uploads"

// maxJSONBytes bounds a JSON request body (an insight or training example holds at
// most records.MaxContentBytes of text per field).
const maxJSONBytes = 3 * records.MaxContentBytes

// routes returns the clone API. Every handler runs behind the clonehttp middleware and
// reads its clone from the request context, so no handler ever takes a tenant or clone
// ID from the request: an ID in a path names a record inside the caller's clone, and
// another clone's record is simply not found.
func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/me", a.handle(a.me))
	mux.HandleFunc("GET /v1/inventory", a.handle(a.inventory))
	mux.HandleFunc("POST /v1/repair", a.handle(a.repair))

	mux.HandleFunc("POST /v1/uploads", a.handle(a.createUpload))
	mux.HandleFunc("POST /v1/documents", a.handle(a.createDocument))
	mux.HandleFunc("GET /v1/documents", a.handle(a.listDocuments))
	mux.HandleFunc("GET /v1/documents/{id}", a.handle(a.getDocument))
	mux.HandleFunc("DELETE /v1/documents/{id}", a.handle(a.deleteDocument))
	mux.HandleFunc("GET /v1/documents/{id}/link", a.handle(a.documentLink))

	crud(mux, a, "/v1/insights", records.CreateInsight, records.ListInsights, records.GetInsight,
		records.UpdateInsight, records.DeleteInsight, func(in *records.Insight, id uuid.UUID) { in.ID = id })
	crud(mux, a, "/v1/training-examples", records.CreateTrainingExample, records.ListTrainingExamples,
		records.GetTrainingExample, records.UpdateTrainingExample, records.DeleteTrainingExample,
		func(ex *records.TrainingExample, id uuid.UUID) { ex.ID = id })

	mux.HandleFunc("POST /v1/chat", a.chat)
	mux.HandleFunc("GET /v1/conversations", a.handle(a.listConversations))
	mux.HandleFunc("GET /v1/conversations/{id}/messages", a.handle(a.listMessages))
	return clonehttp.Routes(mux) // problems, not net/http's plain text, for unknown routes
}

// handlerFunc is a handler of the clone API: it gets the request's clone and returns
// the status and value to send as JSON, or an error for clonehttp.WriteError.
type handlerFunc func(r *http.Request, cc clone.CloneContext) (int, any, error)

// handle adapts a handlerFunc to net/http: it reads the clone context the middleware
// set, writes the result as JSON and errors as RFC 9457 problems (400, 404, ... per
// error kind, never 500 for bad input).
func (a *App) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		status, v, err := h(r, cc)
		if err != nil {
			if clone.HTTPStatus(err) >= 500 {
				a.log.ErrorContext(r.Context(), "request failed", "err", err)
			}
			clonehttp.WriteError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if v == nil {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
}

// badRequest is an error of kind clone.ErrInvalidInput (HTTP 400) whose message is the
// problem's detail.
func badRequest(format string, args ...any) error {
	return clone.Errorf(clone.ErrInvalidInput, format, args...)
}

// decode reads a JSON body of at most maxJSONBytes into v.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxJSONBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return clone.Errorf(clone.ErrTooLarge, "body over %d bytes", maxJSONBytes)
		}
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

// pathID parses the {id} wildcard strictly (canonical lower-case UUID).
func pathID(r *http.Request) (uuid.UUID, error) {
	return clone.ParseID(r.PathValue("id"))
}

// listOptions reads ?limit=&cursor=&desc= into records.ListOptions.
func listOptions(r *http.Request) (*records.ListOptions, error) {
	q := r.URL.Query()
	o := &records.ListOptions{Cursor: q.Get("cursor"), Descending: q.Get("desc") == "true"}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, badRequest("limit must be a positive integer")
		}
		o.Limit = n
	}
	return o, nil
}

func (a *App) me(r *http.Request, cc clone.CloneContext) (int, any, error) {
	return http.StatusOK, map[string]string{
		"subject": cc.Principal().Subject, "tenant_id": cc.TenantID().String(), "clone_id": cc.CloneID().String()}, nil
}

// inventory counts what the clone stores in every store, without reading content. The
// tenant admin API authorizes the caller again: the owner of a solo clone may see it.
func (a *App) inventory(r *http.Request, cc clone.CloneContext) (int, any, error) {
	inv, err := a.admin.Inventory(r.Context(), cc.Principal(), cc.TenantID(), cc.CloneID())
	return http.StatusOK, inv, err
}

// uploadRequest asks for an upload ticket.
type uploadRequest struct {
	ContentType string `json:"content_type"`
}

// createUpload returns an upload ticket: the client POSTs the file straight to the
// object store (S3, or the embedded store's handler) and then creates the document
// from it with POST /v1/documents {"upload": name, ...}.
func (a *App) createUpload(r *http.Request, cc clone.CloneContext) (int, any, error) {
	var req uploadRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if _, _, err := mime.ParseMediaType(req.ContentType); err != nil {
		return 0, nil, badRequest("content_type must be a media type")
	}
	t, err := a.bucket.UploadTicket(r.Context(), cc, uploadKind,
		&objectstore.UploadTicketOptions{ContentType: req.ContentType, MinSize: 1, MaxSize: a.cfg.MaxUploadBytes})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]any{"upload": t.Name, "url": t.URL, "fields": t.Fields, "expires": t.Expires}, nil
}

// documentRequest creates a document from an uploaded file (the JSON form of POST
// /v1/documents; the multipart form carries the file itself).
type documentRequest struct {
	Upload      string `json:"upload"`
	ContentType string `json:"content_type"`
	Title       string `json:"title"`
}

// createDocument ingests a document, either a multipart/form-data file (fields "file"
// and optional "title") or a file uploaded with a ticket. The ticket is rebuilt here
// from its name with the server's own constraints; VerifyUpload then checks (and
// deletes, if it does not match) whatever the client uploaded into the caller's clone.
func (a *App) createDocument(r *http.Request, cc clone.CloneContext) (int, any, error) {
	var src ingest.Source
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		r.Body = http.MaxBytesReader(nil, r.Body, a.cfg.MaxUploadBytes+64<<10) // the file plus a small title part
		mr, err := r.MultipartReader()
		if err != nil {
			return 0, nil, badRequest("invalid multipart body")
		}
		for src.Reader == nil {
			part, err := mr.NextPart()
			if err == io.EOF {
				return 0, nil, badRequest(`multipart body without a "file" part`)
			}
			if err != nil {
				return 0, nil, badRequest("invalid multipart body")
			}
			switch part.FormName() {
			case "title":
				b, _ := io.ReadAll(io.LimitReader(part, records.MaxTitleBytes+1))
				src.Title = string(b)
			case "file":
				// Streamed: the "file" part must come last.
				src.SourceName, src.Reader = part.FileName(), part
				if ct := part.Header.Get("Content-Type"); ct != "application/octet-stream" {
					src.ContentType = ct
				}
			}
		}
	} else {
		var req documentRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		if err := objectstore.ValidateName(req.Upload); err != nil {
			return 0, nil, err
		}
		src = ingest.Source{Title: req.Title, SourceName: req.Upload, ContentType: req.ContentType,
			Upload: &objectstore.UploadTicket{Kind: uploadKind, Name: req.Upload, ContentType: req.ContentType,
				MinSize: 1, MaxSize: a.cfg.MaxUploadBytes}}
	}
	if src.Title == "" {
		src.Title = src.SourceName
	}
	res, err := a.pipeline.Ingest(r.Context(), cc, src)
	if err != nil {
		return 0, nil, err
	}
	if res.CleanupErr != nil {
		a.log.WarnContext(r.Context(), "leftovers of an earlier version remain; Reconcile removes them", "err", res.CleanupErr)
	}
	a.log.InfoContext(r.Context(), "document ingested", "document_id", res.Document.ID, "outcome", res.Outcome,
		"chunks", res.Document.ChunkCount)
	status := http.StatusOK
	if res.Outcome == ingest.Created {
		status = http.StatusCreated
	}
	return status, map[string]any{"document": res.Document, "outcome": res.Outcome}, nil
}

func (a *App) listDocuments(r *http.Request, cc clone.CloneContext) (int, any, error) {
	o, err := listOptions(r)
	if err != nil {
		return 0, nil, err
	}
	page, err := records.ListDocuments(r.Context(), a.db, cc, o)
	return http.StatusOK, page, err
}

func (a *App) getDocument(r *http.Request, cc clone.CloneContext) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	d, err := records.GetDocument(r.Context(), a.db, cc, id)
	return http.StatusOK, d, err
}

// deleteDocument deletes the document's row, chunks, vectors and original.
func (a *App) deleteDocument(r *http.Request, cc clone.CloneContext) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, a.pipeline.Delete(r.Context(), cc, id)
}

// documentLink returns a short-lived signed URL of the document's original.
func (a *App) documentLink(r *http.Request, cc clone.CloneContext) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	d, err := records.GetDocument(r.Context(), a.db, cc, id)
	if err != nil {
		return 0, nil, err
	}
	if d.Status != records.StatusReady || d.ObjectKey == "" {
		return 0, nil, clone.Errorf(clone.ErrNotFound, "the document has no stored original")
	}
	expiry := objectstore.DefaultURLExpiry
	url, err := a.bucket.SignedURL(r.Context(), cc, ingest.ObjectKind, ingest.ObjectName(d.ID, ingest.DocumentVersion(d)),
		&objectstore.SignedURLOptions{Expiry: expiry})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"url": url, "expires": time.Now().Add(expiry)}, nil
}

// chatRequest is one question; conversation_id continues a conversation.
type chatRequest struct {
	Question       string    `json:"question"`
	ConversationID uuid.UUID `json:"conversation_id"`
}

// chat answers a question as Server-Sent Events ("delta" events, then "done" with the
// conversation, message IDs and citations), storing both messages in the
// conversation's history.
func (a *App) chat(w http.ResponseWriter, r *http.Request) {
	cc, err := clone.FromContext(r.Context())
	if err != nil {
		clonehttp.WriteError(w, r, err)
		return
	}
	var req chatRequest
	if err := decode(r, &req); err != nil {
		clonehttp.WriteError(w, r, err)
		return
	}
	if err := a.processor.ServeSSE(w, r, cc, &rag.Request{Question: req.Question,
		ConversationID: req.ConversationID, Subject: cc.Principal().Subject}); err != nil {
		a.log.InfoContext(r.Context(), "chat ended early", "err", err)
	}
}

func (a *App) listConversations(r *http.Request, cc clone.CloneContext) (int, any, error) {
	o, err := listOptions(r)
	if err != nil {
		return 0, nil, err
	}
	page, err := records.ListConversations(r.Context(), a.db, cc, o)
	return http.StatusOK, page, err
}

func (a *App) listMessages(r *http.Request, cc clone.CloneContext) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	o, err := listOptions(r)
	if err != nil {
		return 0, nil, err
	}
	page, err := records.ListMessages(r.Context(), a.db, cc, id, o)
	return http.StatusOK, page, err
}
