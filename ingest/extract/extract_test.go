package extract_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest/extract"
)

func newRegistry(t testing.TB, o *extract.Options) *extract.Registry {
	t.Helper()
	r, err := extract.NewRegistry(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPlainAndMarkdown(t *testing.T) {
	r := newRegistry(t, nil)
	ctx := context.Background()
	for _, tc := range []struct{ ct, in, want string }{
		{"text/plain", "hello\r\nworld\rend", "hello\nworld\nend"},
		{"text/plain; charset=utf-8", "\xef\xbb\xbfBOM gone", "BOM gone"},
		{"text/markdown", "# Title\n\nBody *em*", "# Title\n\nBody *em*"},
		{"TEXT/X-MARKDOWN", "x", "x"},
		{"text/plain; charset=iso-8859-1", "caf\xe9", "café"},
		{"text/plain; charset=windows-1252", "\x93quoted\x94", "\u201cquoted\u201d"},
	} {
		got, err := r.Extract(ctx, tc.ct, []byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("Extract(%q, %q) = %q, %v; want %q", tc.ct, tc.in, got, err, tc.want)
		}
	}
}

func TestErrorsAreTyped(t *testing.T) {
	r := newRegistry(t, &extract.Options{MaxInputBytes: 10, MaxTextBytes: 8})
	ctx := context.Background()
	for _, tc := range []struct {
		ct, in string
		kind   error
	}{
		{"application/pdf", "not a pdf", clone.ErrInvalidInput},
		{"application/zip", "PK", clone.ErrUnsupported},
		{"image/png", "x", clone.ErrUnsupported},
		{"text/plain; charset=klingon", "x", clone.ErrUnsupported},
		{"not a type", "x", clone.ErrInvalidInput},
		{"text/plain", "bad \xff", clone.ErrInvalidInput},
		{"text/plain", "nul\x00", clone.ErrInvalidInput},
		{"text/html", "<p>\xc3</p>", clone.ErrInvalidInput},
		{"text/plain", "01234567890", clone.ErrTooLarge},
		{"text/plain", "012345678", clone.ErrTooLarge}, // text over MaxTextBytes
	} {
		_, err := r.Extract(ctx, tc.ct, []byte(tc.in))
		if !errors.Is(err, tc.kind) {
			t.Errorf("Extract(%q, %q) = %v, want %v", tc.ct, tc.in, err, tc.kind)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Extract(cctx, "text/plain", []byte("x")); !errors.Is(err, clone.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRegisterPDF(t *testing.T) {
	r := newRegistry(t, nil)
	if !r.Supports("application/pdf") || !r.Supports(extract.TypeDOCX) {
		t.Fatal("PDF or DOCX not supported out of the box")
	}
	// A host may replace a built-in extractor.
	err := r.Register("application/pdf", extract.Func(func(context.Context, []byte, map[string]string) (string, error) {
		return "pdf text", nil
	}))
	if err != nil || !r.Supports("application/pdf") {
		t.Fatal(err)
	}
	if got, err := r.Extract(context.Background(), "application/pdf", []byte("%PDF-1.7")); got != "pdf text" || err != nil {
		t.Fatalf("got %q, %v", got, err)
	}
	// An extractor's untyped error is malformed input; a bad result is refused.
	_ = r.Register("application/x-bad", extract.Func(func(context.Context, []byte, map[string]string) (string, error) {
		return "", errors.New("corrupt")
	}))
	if _, err := r.Extract(context.Background(), "application/x-bad", nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("got %v", err)
	}
	_ = r.Register("application/x-nul", extract.Func(func(context.Context, []byte, map[string]string) (string, error) {
		return "a\x00b", nil
	}))
	if _, err := r.Extract(context.Background(), "application/x-nul", nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("got %v", err)
	}
}

func TestHTML(t *testing.T) {
	r := newRegistry(t, nil)
	page := `<!DOCTYPE html><html><head><title> My   Page </title><style>p{color:red}</style>
<script>var secret = "do not index";</script></head>
<body><nav>Home</nav><h2>Intro &amp; more</h2><p>First   paragraph
with <b>bold</b> and <a href="#">a link</a>.</p>
<ul><li>one</li><li>two <i>items</i></li></ul>
<pre>  code
    indented</pre>
<table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>
<template><p>hidden</p></template><noscript>enable js</noscript>
<p>Last<br>line &#x1F600;</p></body></html>`
	got, err := r.Extract(context.Background(), "text/html", []byte(page))
	if err != nil {
		t.Fatal(err)
	}
	want := "# My Page\n\nHome\n\n## Intro & more\n\nFirst paragraph with bold and a link.\n\n- one\n- two items\n\n  code\n    indented\n\na b\nc d\n\nLast\nline 😀"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	for _, bad := range []string{"secret", "color", "hidden", "enable js"} {
		if strings.Contains(got, bad) {
			t.Errorf("invisible %q extracted", bad)
		}
	}
	// With an h1 the title is not repeated; an unclosed head still shows the body.
	got, _ = r.Extract(context.Background(), "text/html", []byte("<title>T</title><head><body><h1>Real</h1>x"))
	if got != "# Real\n\nx" {
		t.Fatalf("got %q", got)
	}
	// Deep nesting costs no recursion.
	deep := strings.Repeat("<div>", 200000) + "deep" + strings.Repeat("</div>", 200000)
	if got, err := r.Extract(context.Background(), "text/html", []byte(deep)); err != nil || got != "deep" {
		t.Fatalf("deep: %q, %v", got, err)
	}
}

func TestDetectContentType(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"a.md", "", "text/markdown; charset=utf-8"},
		{"A.HTM", "", "text/html; charset=utf-8"},
		{"notes.txt", "", "text/plain; charset=utf-8"},
		{"x.pdf", "", "application/pdf"},
		{"blob", "<html><body>x", "text/html; charset=utf-8"},
		{"blob", "plain words", "text/plain; charset=utf-8"},
	} {
		if got := extract.DetectContentType(tc.name, []byte(tc.data)); got != tc.want {
			t.Errorf("DetectContentType(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func FuzzHTML(f *testing.F) {
	f.Add([]byte("<p>a<b>b</p><script>x</script><h3>h</h3><li>l<pre> p </pre>"))
	f.Add([]byte("<title>t</title><head><table><td>&amp;&#0;&#xD800;</td>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := extract.HTML(context.Background(), data, nil)
		if err != nil {
			if !errors.Is(err, clone.ErrInvalidInput) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("invalid output %q", got)
		}
	})
}

func FuzzPlainText(f *testing.F) {
	f.Add([]byte("a\r\nb\rc"), "utf-8")
	f.Add([]byte("caf\xe9"), "latin1")
	f.Fuzz(func(t *testing.T, data []byte, charset string) {
		got, err := extract.PlainText(context.Background(), data, map[string]string{"charset": charset})
		if err != nil {
			if !errors.Is(err, clone.ErrInvalidInput) && !errors.Is(err, clone.ErrUnsupported) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !utf8.ValidString(got) || strings.ContainsAny(got, "\x00\r") {
			t.Fatalf("invalid output %q", got)
		}
	})
}
