package fileobject

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/driver"
)

var errUnsigned = errors.New("fileobject: signed URLs need Options.SigningKey and Options.BaseURL")

// Query parameters of signed URLs and form fields of upload tickets.
const (
	qMethod      = "X-Cloneiso-Method"
	qExpires     = "X-Cloneiso-Expires"
	qContentType = "X-Cloneiso-Content-Type"
	qSignature   = "X-Cloneiso-Signature"

	fKey       = "key"
	fType      = "Content-Type"
	fMin       = "x-cloneiso-min-size"
	fMax       = "x-cloneiso-max-size"
	fExpires   = "x-cloneiso-expires"
	fSignature = "x-cloneiso-signature"
	fMetaPfx   = "x-cloneiso-meta-"
)

func (b *fsBucket) mac(parts ...string) string {
	m := hmac.New(sha256.New, b.opts.SigningKey)
	for _, p := range parts {
		io.WriteString(m, p)
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

func (b *fsBucket) urlSignature(method, key, expires, ct string) string {
	return b.mac("v1-url", method, key, expires, ct)
}

func (b *fsBucket) formSignature(fields map[string]string) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		if k != fSignature {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	parts := []string{"v1-post"}
	for _, k := range names {
		parts = append(parts, k, fields[k])
	}
	return b.mac(parts...)
}

func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// SignedURL returns BaseURL/key with the method, expiry, content type and an HMAC of
// all of them in the query. Uploads through it are stamped by the handler with the
// owner IDs of the key, which are the stamps the portable type asks for.
func (b *fsBucket) SignedURL(_ context.Context, scope, key string, opts *driver.SignedURLOptions) (*driver.SignedRequest, error) {
	if err := driver.CheckKey("fileobject.SignedURL", scope, key); err != nil {
		return nil, err
	}
	if b.opts.SigningKey == nil || b.opts.BaseURL == "" {
		return nil, errUnsigned
	}
	if _, err := b.path(key); err != nil {
		return nil, err
	}
	exp := strconv.FormatInt(b.opts.Now().Add(opts.Expiry).Unix(), 10)
	q := url.Values{}
	q.Set(qMethod, opts.Method)
	q.Set(qExpires, exp)
	if opts.ContentType != "" {
		q.Set(qContentType, opts.ContentType)
	}
	q.Set(qSignature, b.urlSignature(opts.Method, key, exp, opts.ContentType))
	h := http.Header{}
	if opts.ContentType != "" {
		h.Set("Content-Type", opts.ContentType)
	}
	return &driver.SignedRequest{URL: b.opts.BaseURL + "/" + escapeKey(key) + "?" + q.Encode(), Header: h}, nil
}

// UploadTicket returns a form that POSTs to BaseURL/ with every constraint as a
// signed field.
func (b *fsBucket) UploadTicket(_ context.Context, scope, key string, opts *driver.UploadTicketOptions) (*driver.UploadTicket, error) {
	if err := driver.CheckKey("fileobject.UploadTicket", scope, key); err != nil {
		return nil, err
	}
	if b.opts.SigningKey == nil || b.opts.BaseURL == "" {
		return nil, errUnsigned
	}
	if _, err := b.path(key); err != nil {
		return nil, err
	}
	f := map[string]string{
		fKey:     key,
		fType:    opts.ContentType,
		fMin:     strconv.FormatInt(opts.MinSize, 10),
		fMax:     strconv.FormatInt(opts.MaxSize, 10),
		fExpires: strconv.FormatInt(b.opts.Now().Add(opts.Expiry).Unix(), 10),
	}
	for k, v := range opts.Metadata {
		f[fMetaPfx+k] = v
	}
	f[fSignature] = b.formSignature(f)
	return &driver.UploadTicket{URL: b.opts.BaseURL + "/", Fields: f}, nil
}

// NewHandler returns the http.Handler that serves the signed URLs and upload tickets
// of the bucket in dir. Mount it so that it receives the requests for Options.BaseURL
// with their full path (it strips BaseURL's path itself). opts must carry the same
// SigningKey and BaseURL as the bucket's.
//
// The handler trusts nothing but the signature: it re-derives the key from the path,
// checks the HMAC over method, key, expiry and constraints, refuses expired links,
// and re-validates that the key is a well-formed object key of one clone
// (tenants/{tenant_id}/clones/{clone_id}/{kind}/{name}). Uploads are stamped with the
// owner IDs taken from that key. Failures answer 403 (bad signature, expired), 404,
// 400 or 413, never 500 for bad input.
//
// The handler holds the directory open; release it with [Handler.Close].
func NewHandler(dir string, opts *Options) (*Handler, error) {
	b, err := newFS(dir, opts)
	if err != nil {
		return nil, err
	}
	if b.opts.SigningKey == nil || b.opts.BaseURL == "" {
		return nil, errs.Wrap(errs.InvalidInput, "fileobject.NewHandler", errUnsigned, "missing options")
	}
	u, err := url.Parse(b.opts.BaseURL)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidInput, "fileobject.NewHandler", err, "BaseURL")
	}
	return &Handler{b: b, base: strings.TrimSuffix(u.Path, "/")}, nil
}

// A Handler serves the signed URLs and upload tickets of one embedded bucket (see
// [NewHandler]). It is safe for concurrent use.
type Handler struct {
	b    *fsBucket
	base string
}

// Close releases the directory the handler holds open. Requests served after Close
// fail.
func (h *Handler) Close() error { return h.b.Close() }

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if !strings.HasPrefix(p, h.base+"/") {
		fail(w, http.StatusNotFound, "not found")
		return
	}
	key := p[len(h.base)+1:]
	switch r.Method {
	case http.MethodPost:
		if key != "" {
			fail(w, http.StatusMethodNotAllowed, "POST goes to the base URL")
			return
		}
		h.post(w, r)
	case http.MethodGet, http.MethodHead, http.MethodPut:
		h.signed(w, r, key)
	default:
		fail(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// ownerOf checks that key is a well-formed clone object key and returns the owner.
// The handler then reads and writes key only within that owner's scope
// ("tenants/{tenant}/clones/{clone}/"), through the driver's scope-checked methods.
func ownerOf(key string) (tenant, cloneID string, ok bool) {
	parts := strings.SplitN(key, "/", 6)
	if len(parts) != 6 || parts[0] != "tenants" || parts[2] != "clones" {
		return "", "", false
	}
	if _, err := clone.ParseID(parts[1]); err != nil {
		return "", "", false
	}
	if _, err := clone.ParseID(parts[3]); err != nil {
		return "", "", false
	}
	if objectstore.ValidateKind(parts[4]) != nil || objectstore.ValidateName(parts[5]) != nil {
		return "", "", false
	}
	return parts[1], parts[3], true
}

func scopeOf(tenant, cloneID string) string {
	return "tenants/" + tenant + "/clones/" + cloneID + "/"
}

func (h *Handler) expired(unix string) bool {
	t, err := strconv.ParseInt(unix, 10, 64)
	return err != nil || h.b.opts.Now().After(time.Unix(t, 0))
}

func (h *Handler) signed(w http.ResponseWriter, r *http.Request, key string) {
	q := r.URL.Query()
	method := q.Get(qMethod)
	want := h.b.urlSignature(method, key, q.Get(qExpires), q.Get(qContentType))
	if !hmac.Equal([]byte(want), []byte(q.Get(qSignature))) {
		fail(w, http.StatusForbidden, "signature does not match")
		return
	}
	if method != r.Method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		fail(w, http.StatusForbidden, "URL was signed for another method")
		return
	}
	if h.expired(q.Get(qExpires)) {
		fail(w, http.StatusForbidden, "URL has expired")
		return
	}
	tenant, cloneID, ok := ownerOf(key)
	if !ok {
		fail(w, http.StatusForbidden, "URL does not name an object of a clone")
		return
	}
	ctx := r.Context()
	if r.Method == http.MethodPut {
		ct := r.Header.Get("Content-Type")
		if want := q.Get(qContentType); want != "" && ct != want {
			fail(w, http.StatusForbidden, "content type differs from the signed one")
			return
		}
		body := &limitReader{r: r.Body, left: h.b.opts.MaxPutSize}
		md := map[string]string{objectstore.MetaTenantID: tenant, objectstore.MetaCloneID: cloneID}
		if _, err := h.b.Put(ctx, scopeOf(tenant, cloneID), key, body, &driver.WriteOptions{ContentType: ct, Metadata: md, Size: r.ContentLength}); err != nil {
			h.storeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	rd, err := h.b.Get(ctx, scopeOf(tenant, cloneID), key, 0, -1)
	if err != nil {
		h.storeError(w, err)
		return
	}
	defer rd.Close()
	a, f := rd.Attributes(), rd.(*fileReader).f
	if a.Metadata[objectstore.MetaTenantID] != tenant || a.Metadata[objectstore.MetaCloneID] != cloneID {
		fail(w, http.StatusNotFound, "not found")
		return
	}
	if a.ContentType != "" {
		w.Header().Set("Content-Type", a.ContentType)
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	// The handler may share the host's origin: never let an uploaded HTML or SVG file
	// run script there.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.Header().Set("ETag", `"`+a.ETag+`"`)
	http.ServeContent(w, r, "", a.ModTime, io.NewSectionReader(f, 0, a.Size))
}

var errTooLarge = errors.New("fileobject: upload larger than allowed")

type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

func (h *Handler) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errTooLarge):
		fail(w, http.StatusRequestEntityTooLarge, "upload too large")
	case h.b.ErrorKind(err) == clone.ErrNotFound:
		fail(w, http.StatusNotFound, "not found")
	case h.b.ErrorKind(err) == clone.ErrConflict:
		fail(w, http.StatusConflict, "conflicts with another object")
	case h.b.ErrorKind(err) == clone.ErrInvalidInput:
		fail(w, http.StatusBadRequest, "invalid request")
	default:
		fail(w, http.StatusInternalServerError, "store error")
	}
}

// post serves an upload ticket: signed form fields first, then the "file" part.
func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		fail(w, http.StatusBadRequest, "want multipart/form-data")
		return
	}
	fields := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err != nil {
			fail(w, http.StatusBadRequest, "form ended before the file")
			return
		}
		name := part.FormName()
		if name == "file" {
			h.upload(w, r, fields, part)
			part.Close()
			return
		}
		if len(fields) >= 32 {
			fail(w, http.StatusBadRequest, "too many form fields")
			return
		}
		v, err := io.ReadAll(io.LimitReader(part, 4097))
		part.Close()
		if err != nil || len(v) > 4096 {
			fail(w, http.StatusBadRequest, "form field too long")
			return
		}
		if _, dup := fields[name]; dup {
			fail(w, http.StatusBadRequest, "duplicate form field")
			return
		}
		fields[name] = string(v)
	}
}

func (h *Handler) upload(w http.ResponseWriter, r *http.Request, fields map[string]string, file io.Reader) {
	want := h.b.formSignature(fields)
	if !hmac.Equal([]byte(want), []byte(fields[fSignature])) {
		fail(w, http.StatusForbidden, "policy signature does not match")
		return
	}
	if h.expired(fields[fExpires]) {
		fail(w, http.StatusForbidden, "upload ticket has expired")
		return
	}
	key := fields[fKey]
	tenant, cloneID, ok := ownerOf(key)
	if !ok {
		fail(w, http.StatusForbidden, "ticket does not name an object of a clone")
		return
	}
	md := map[string]string{}
	for k, v := range fields {
		if m, ok := strings.CutPrefix(k, fMetaPfx); ok {
			md[m] = v
		}
	}
	if md[objectstore.MetaTenantID] != tenant || md[objectstore.MetaCloneID] != cloneID {
		fail(w, http.StatusForbidden, "ticket owner does not match its key")
		return
	}
	minSize, err1 := strconv.ParseInt(fields[fMin], 10, 64)
	maxSize, err2 := strconv.ParseInt(fields[fMax], 10, 64)
	if err1 != nil || err2 != nil {
		fail(w, http.StatusBadRequest, "invalid size range")
		return
	}
	lr := &limitReader{r: file, left: maxSize}
	cr := &countingReader{r: lr}
	minCheck := &minReader{r: cr, count: cr, min: minSize}
	if _, err := h.b.Put(r.Context(), scopeOf(tenant, cloneID), key, minCheck, &driver.WriteOptions{ContentType: fields[fType], Metadata: md, Size: -1}); err != nil {
		if errors.Is(err, errTooSmall) {
			fail(w, http.StatusBadRequest, "upload smaller than allowed")
			return
		}
		h.storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var errTooSmall = errors.New("fileobject: upload smaller than allowed")

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// minReader turns EOF before min bytes into errTooSmall, so nothing is stored.
type minReader struct {
	r     io.Reader
	count *countingReader
	min   int64
}

func (m *minReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if err == io.EOF && m.count.n < m.min {
		return n, errTooSmall
	}
	return n, err
}
