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
//     the chunker sees the page's structure;
//   - TypeDOCX (Word): the body's text as light Markdown (headings, list items,
//     tables as "| a | b |" rows), with archive/zip and encoding/xml of the standard
//     library, bounded against zip bombs, entity expansion and deep nesting (see
//     NewDOCX and DOCXOptions);
//   - TypePDF: the text of every page, by PDFium compiled to WebAssembly and run by
//     wazero (github.com/klippa-app/go-pdfium/webassembly): no cgo, no system
//     library, and a malicious PDF runs inside a memory-safe sandbox with its own
//     bounded memory. The module is compiled once per process, lazily, on the first
//     PDF (about 3 s; far longer under the race detector), and its instances are
//     pooled and shared by every Registry (see NewPDF and PDFOptions). An
//     instance serves the documents of one clone only, the clone the context
//     names (clone.WithContext): it is reused for a few documents of that clone in
//     a row and discarded after any error or stop, and a context without a clone
//     gets a fresh instance per document; so nothing of one clone's document
//     survives into another clone's extraction. The time limit stops PDFium
//     mid-call through a stop flag every loop of the (rewritten) module checks.
//     Page boundaries are reported by ExtractDocument, so chunks and citations
//     carry page numbers.
//
// Detection is by content: DetectContentType recognises PDF ("%PDF-") and DOCX (a ZIP
// archive with word/document.xml) from their bytes before looking at the name, and
// Extract refuses, with clone.ErrInvalidInput, a document whose declared type and
// content disagree (a "PDF" without a PDF header, a PDF or ZIP archive declared as
// text or HTML, ...): the type is supported, the input is not what it claims to be.
//
// Every text extractor decodes the charset named in the content type's parameters
// ("text/plain; charset=iso-8859-1", any name the WHATWG Encoding Standard knows;
// UTF-8 by default), drops a leading byte order mark and turns CRLF and lone CR line
// ends into LF. Every extractor's output is valid UTF-8 without NUL bytes (the
// database cannot store NUL in text). The error contract is the same for every
// format: input that is malformed (invalid in its charset, NUL, a corrupt or
// truncated PDF or DOCX, content contradicting its type) is clone.ErrInvalidInput;
// a type without an extractor, or a feature refused by design (an encrypted PDF), is
// clone.ErrUnsupported; input or text over a size, page or decompression limit is
// clone.ErrTooLarge; a cancelled context or an exhausted deadline is
// clone.ErrUnavailable. Extractors return nothing partial on error.
package extract

import (
	"bytes"
	"context"
	"mime"
	"net/http"
	"path"
	"slices"
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

// Document is the text of a document with its page boundaries.
type Document struct {
	// Text is the extracted text (valid UTF-8, no NUL).
	Text string
	// Pages are the byte offsets in Text where each page begins, for formats with
	// pages (PDF): page n (from 1) is Text[Pages[n-1]:Pages[n]] (the last one runs to
	// the end). Nil for formats without pages.
	Pages []int
}

// PageAt returns the number (from 1) of the page that holds byte offset off of Text:
// the last page that begins at or before off. It is 0 for a document without pages.
func (d Document) PageAt(off int) int {
	if len(d.Pages) == 0 {
		return 0
	}
	n, _ := slices.BinarySearch(d.Pages, off+1)
	return max(n, 1)
}

// PagedExtractor is an Extractor that also reports page boundaries (the PDF
// extractor). Registry.ExtractDocument uses ExtractDocument when an extractor has it.
type PagedExtractor interface {
	Extractor
	// ExtractDocument is Extract with page boundaries.
	ExtractDocument(ctx context.Context, data []byte, params map[string]string) (Document, error)
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
	// DOCX bounds the built-in DOCX extractor; nil means the defaults of
	// DOCXOptions (with MaxTextBytes as its text limit).
	DOCX *DOCXOptions
	// PDF bounds the built-in PDF extractor; nil means the defaults of PDFOptions.
	PDF *PDFOptions
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
	do := DOCXOptions{}
	if o.DOCX != nil {
		do = *o.DOCX
	}
	if do.MaxTextBytes <= 0 {
		do.MaxTextBytes = o.MaxTextBytes
	}
	r.m[TypeDOCX] = NewDOCX(&do)
	pdf, err := NewPDF(o.PDF)
	if err != nil {
		return nil, err
	}
	r.m[TypePDF] = pdf
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
// a malformed content type or input, or content that contradicts the declared type,
// clone.ErrInvalidInput, input or text over the limits clone.ErrTooLarge (see the
// package documentation for the whole contract).
func (r *Registry) Extract(ctx context.Context, contentType string, data []byte) (string, error) {
	d, err := r.ExtractDocument(ctx, contentType, data)
	return d.Text, err
}

// Check reports, without extracting anything, the errors Extract would return before
// it runs an extractor: a malformed or unsupported content type, input over the size
// limit, content contradicting the declared type. Ingestion calls it before storing
// anything.
func (r *Registry) Check(contentType string, data []byte) error {
	_, _, _, err := r.check("extract.Check", contentType, data)
	return err
}

func (r *Registry) check(op, contentType string, data []byte) (Extractor, string, map[string]string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, "", nil, errs.New(errs.InvalidInput, op, "malformed content type")
	}
	e := r.m[mt]
	if e == nil {
		return nil, "", nil, errs.New(errs.Unsupported, op, "no extractor for content type %q", mt)
	}
	if int64(len(data)) > r.maxInput {
		return nil, "", nil, errs.New(errs.TooLarge, op, "document of %d bytes is over the limit of %d", len(data), r.maxInput)
	}
	if err := checkContent(op, mt, data); err != nil {
		return nil, "", nil, err
	}
	return e, mt, params, nil
}

// ExtractDocument is Extract with the page boundaries of formats that have pages
// (Document.Pages; nil for the others).
func (r *Registry) ExtractDocument(ctx context.Context, contentType string, data []byte) (Document, error) {
	const op = "extract.Extract"
	e, mt, params, err := r.check(op, contentType, data)
	if err != nil {
		return Document{}, err
	}
	if err := ctx.Err(); err != nil {
		return Document{}, errs.Wrap(errs.Unavailable, op, err, "cancelled")
	}
	var d Document
	if pe, ok := e.(PagedExtractor); ok {
		d, err = pe.ExtractDocument(ctx, data, params)
	} else {
		d.Text, err = e.Extract(ctx, data, params)
	}
	if err != nil {
		if errs.KindOf(err) == errs.Unknown {
			return Document{}, errs.Wrap(errs.InvalidInput, op, err, "cannot extract text from the %s document", mt)
		}
		return Document{}, err
	}
	if len(d.Text) > r.maxText {
		return Document{}, errs.New(errs.TooLarge, op, "extracted text of %d bytes is over the limit of %d", len(d.Text), r.maxText)
	}
	if !utf8.ValidString(d.Text) || strings.IndexByte(d.Text, 0) >= 0 {
		return Document{}, errs.New(errs.InvalidInput, op, "extractor for %q returned invalid UTF-8 or NUL", mt)
	}
	for i, p := range d.Pages {
		if p < 0 || p > len(d.Text) || (i > 0 && p < d.Pages[i-1]) {
			return Document{}, errs.New(errs.InvalidInput, op, "extractor for %q returned invalid page offsets", mt)
		}
	}
	return d, nil
}

// DetectContentType guesses the content type of a document: by content first for PDF
// and DOCX (see Sniff), then from its name's extension (.txt, .md, .markdown, .html,
// .htm, .xhtml, .pdf, .docx) and, failing that, from its first bytes, with net/http's
// sniffing rules. A name that claims PDF or DOCX for other content keeps its claimed
// type, which Extract then refuses as contradicting the content.
func DetectContentType(name string, data []byte) string {
	if t := detectByContent(data); t != "" {
		return t
	}
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
		return TypePDF
	case ".docx":
		return TypeDOCX
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
