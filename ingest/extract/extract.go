// Package extract turns a document's bytes into the plain text that is chunked and
// embedded, by content type.
//
// A Registry maps media types to Extractors. NewRegistry registers:
//
//   - text/plain: the text itself;
//   - text/markdown (and text/x-markdown): the Markdown source as is, whose headings
//     the chunker splits on;
//   - text/html and application/xhtml+xml: the visible text of the page, through the
//     tokenizer of golang.org/x/net/html: scripts, styles, templates and other
//     invisible elements are dropped, entities decoded, block elements become
//     paragraphs, list items "- " lines and h1..h6 Markdown headings ("## Title"), so
//     the chunker sees the page's structure.
//
// PDF is not built in: application/pdf (like every type without an extractor) fails
// with clone.ErrUnsupported. No maintained library written in Go extracts text from
// PDF reliably. The reliable cgo-free option is PDFium compiled to WebAssembly and run
// by wazero (github.com/klippa-app/go-pdfium/webassembly): it works, but embeds about
// 5 MB of WebAssembly and takes seconds to start (about a minute under the race
// detector), too heavy to impose on every user of the SDK. Hosts that want PDF
// register an extractor with Registry.Register, for example one that opens the
// document with go-pdfium's OpenDocument and joins GetPageText of every page.
//
// Every text extractor decodes the charset named in the content type's parameters
// ("text/plain; charset=iso-8859-1", any name the WHATWG Encoding Standard knows;
// UTF-8 by default), drops a leading byte order mark and turns CRLF and lone CR line
// ends into LF. Its output is valid UTF-8 without NUL bytes (the database cannot
// store NUL in text): input that is not valid in its charset, or contains NUL, is
// refused as malformed with clone.ErrInvalidInput, and input over the registry's size
// limits with clone.ErrTooLarge, before anything is stored.
package extract

import (
	"bytes"
	"context"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Limits of Options.
const (
	// DefaultMaxInputBytes bounds the bytes given to an extractor.
	DefaultMaxInputBytes = 32 << 20
	// DefaultMaxTextBytes bounds the text an extractor may return.
	DefaultMaxTextBytes = 16 << 20
)

// Extractor turns a document's bytes into text.
type Extractor interface {
	// Extract returns the text of data, whose media type parameters (e.g. charset) are
	// params. The result must be valid UTF-8 without NUL bytes; malformed input is an
	// error of kind clone.ErrInvalidInput. The registry has checked the input size.
	Extract(ctx context.Context, data []byte, params map[string]string) (string, error)
}

// Func adapts a function to the Extractor interface.
type Func func(ctx context.Context, data []byte, params map[string]string) (string, error)

// Extract calls f.
func (f Func) Extract(ctx context.Context, data []byte, params map[string]string) (string, error) {
	return f(ctx, data, params)
}

// Options configure a Registry. Nil means the defaults.
type Options struct {
	// MaxInputBytes is the largest input accepted: 0 means DefaultMaxInputBytes.
	MaxInputBytes int64
	// MaxTextBytes is the largest text an extractor may return: 0 means
	// DefaultMaxTextBytes.
	MaxTextBytes int
}

// Registry maps media types to extractors. Register everything before using it
// concurrently; Extract is safe for concurrent use.
type Registry struct {
	m        map[string]Extractor
	maxInput int64
	maxText  int
}

// NewRegistry returns a registry with the built-in extractors (see the package
// documentation).
func NewRegistry(opts *Options) (*Registry, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxInputBytes < 0 || o.MaxTextBytes < 0 {
		return nil, errs.New(errs.InvalidInput, "extract.NewRegistry", "negative size limit")
	}
	if o.MaxInputBytes == 0 {
		o.MaxInputBytes = DefaultMaxInputBytes
	}
	if o.MaxTextBytes == 0 {
		o.MaxTextBytes = DefaultMaxTextBytes
	}
	r := &Registry{m: map[string]Extractor{}, maxInput: o.MaxInputBytes, maxText: o.MaxTextBytes}
	for _, t := range []string{"text/plain", "text/markdown", "text/x-markdown"} {
		r.m[t] = Func(PlainText)
	}
	for _, t := range []string{"text/html", "application/xhtml+xml"} {
		r.m[t] = Func(HTML)
	}
	return r, nil
}

// Register sets the extractor of mediaType (e.g. "application/pdf"), replacing any.
func (r *Registry) Register(mediaType string, e Extractor) error {
	mt, _, err := mime.ParseMediaType(mediaType)
	if err != nil || e == nil {
		return errs.New(errs.InvalidInput, "extract.Register", "invalid media type or nil extractor")
	}
	r.m[mt] = e
	return nil
}

// Supports reports whether the media type of contentType has an extractor.
func (r *Registry) Supports(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && r.m[mt] != nil
}

// MaxInputBytes returns the largest input Extract accepts.
func (r *Registry) MaxInputBytes() int64 { return r.maxInput }

// Extract returns the text of data, a document of type contentType (a MIME type with
// optional parameters). A type without an extractor is clone.ErrUnsupported,
// a malformed content type or input clone.ErrInvalidInput, input or text over the
// limits clone.ErrTooLarge.
func (r *Registry) Extract(ctx context.Context, contentType string, data []byte) (string, error) {
	const op = "extract.Extract"
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", errs.New(errs.InvalidInput, op, "malformed content type")
	}
	e := r.m[mt]
	if e == nil {
		if mt == "application/pdf" {
			return "", errs.New(errs.Unsupported, op, "PDF text extraction is not supported; register an extractor for application/pdf")
		}
		return "", errs.New(errs.Unsupported, op, "no extractor for content type %q", mt)
	}
	if int64(len(data)) > r.maxInput {
		return "", errs.New(errs.TooLarge, op, "document of %d bytes is over the limit of %d", len(data), r.maxInput)
	}
	if err := ctx.Err(); err != nil {
		return "", errs.Wrap(errs.Unavailable, op, err, "cancelled")
	}
	text, err := e.Extract(ctx, data, params)
	if err != nil {
		if errs.KindOf(err) == errs.Unknown {
			return "", errs.Wrap(errs.InvalidInput, op, err, "cannot extract text from the %s document", mt)
		}
		return "", err
	}
	if len(text) > r.maxText {
		return "", errs.New(errs.TooLarge, op, "extracted text of %d bytes is over the limit of %d", len(text), r.maxText)
	}
	if !utf8.ValidString(text) || strings.IndexByte(text, 0) >= 0 {
		return "", errs.New(errs.InvalidInput, op, "extractor for %q returned invalid UTF-8 or NUL", mt)
	}
	return text, nil
}

// DetectContentType guesses the content type of a document from its name's extension
// (.txt, .md, .markdown, .html, .htm, .xhtml, .pdf) and, failing that, from its first
// bytes, with net/http's sniffing rules.
func DetectContentType(name string, data []byte) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".txt", ".text":
		return "text/plain; charset=utf-8"
	case ".md", ".markdown":
		return "text/markdown; charset=utf-8"
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".xhtml":
		return "application/xhtml+xml"
	case ".pdf":
		return "application/pdf"
	}
	return http.DetectContentType(data)
}

// decode returns data as UTF-8 text in the charset of params, normalized: no BOM, LF
// line ends. NUL and invalid sequences are errors.
func decode(op string, data []byte, params map[string]string) (string, error) {
	if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") && !strings.EqualFold(cs, "us-ascii") {
		enc, err := htmlindex.Get(cs)
		if err != nil {
			return "", errs.New(errs.Unsupported, op, "unknown charset %q", cs)
		}
		out, err := enc.NewDecoder().Bytes(data)
		if err != nil {
			return "", errs.Wrap(errs.InvalidInput, op, err, "malformed %s text", cs)
		}
		data = out
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return "", errs.New(errs.InvalidInput, op, "malformed text: not valid UTF-8")
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return "", errs.New(errs.InvalidInput, op, "malformed text: contains NUL bytes")
	}
	if bytes.IndexByte(data, '\r') < 0 {
		return string(data), nil
	}
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n"), nil
}

// PlainText is the extractor of text/plain and Markdown: the decoded, normalized text.
func PlainText(_ context.Context, data []byte, params map[string]string) (string, error) {
	return decode("extract.PlainText", data, params)
}
