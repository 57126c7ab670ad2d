package extract

import (
	"bytes"
	"context"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// HTML is the extractor of text/html and application/xhtml+xml: the visible text of
// the page with its structure as light Markdown (see the package documentation). It
// streams through golang.org/x/net/html's tokenizer, so deeply nested or unclosed
// markup costs no recursion; the document's <title> becomes a leading "# " heading
// when the body has no h1.
func HTML(ctx context.Context, data []byte, params map[string]string) (string, error) {
	const op = "extract.HTML"
	if cs := params["charset"]; cs == "" {
		params = map[string]string{"charset": "utf-8"}
	}
	src, err := decode(op, data, params)
	if err != nil {
		return "", err
	}
	z := html.NewTokenizer(strings.NewReader(src))
	var x htmlExtractor
	for n := 1; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return "", errs.Wrap(errs.Unavailable, op, ctx.Err(), "cancelled")
		}
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			return x.result(), nil
		case html.TextToken:
			x.text(z)
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			x.tag(name, tt)
		}
	}
}

// htmlExtractor is the state of HTML between tokens.
type htmlExtractor struct {
	w       htmlWriter
	skip    int // depth inside invisible elements
	pre     int // depth inside <pre>
	inTitle bool
	title   strings.Builder
	hasH1   bool
}

// result is the extracted text, with the title as a leading heading if the body has no
// h1.
func (x *htmlExtractor) result() string {
	text := x.w.String()
	if t := strings.Join(strings.Fields(x.title.String()), " "); t != "" && !x.hasH1 {
		if text == "" {
			return "# " + t
		}
		return "# " + t + "\n\n" + text
	}
	return text
}

// text handles the text token z is at.
func (x *htmlExtractor) text(z *html.Tokenizer) {
	switch {
	case x.inTitle:
		x.title.Write(z.Text())
	case x.skip > 0:
	case x.pre > 0:
		x.w.raw(z.Text())
	default:
		x.w.text(z.Text())
	}
}

// tag handles a start, self-closing or end tag.
func (x *htmlExtractor) tag(name []byte, tt html.TokenType) {
	a := atom.Lookup(name)
	start := tt != html.EndTagToken
	selfClosing := tt == html.SelfClosingTagToken
	switch a {
	case atom.Script, atom.Style, atom.Noscript, atom.Template, atom.Svg, atom.Math,
		atom.Iframe, atom.Object, atom.Canvas, atom.Head, atom.Select, atom.Button:
		if selfClosing {
			return
		}
		if start {
			x.skip++
		} else if x.skip > 0 {
			x.skip--
		}
		if a == atom.Head && !start {
			x.skip = 0
		}
		return
	case atom.Title:
		x.inTitle = start && !selfClosing
		return
	case atom.Body:
		x.skip = 0 // a <head> left open ends here
	}
	if x.skip > 0 {
		return
	}
	x.structure(a, name, start, selfClosing)
}

// structure writes the break, heading or list marker a visible tag stands for.
func (x *htmlExtractor) structure(a atom.Atom, name []byte, start, selfClosing bool) {
	w := &x.w
	switch a {
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		w.block()
		if start {
			level := int(name[1] - '0')
			if level == 1 {
				x.hasH1 = true
			}
			w.prefix(strings.Repeat("#", level) + " ")
		}
	case atom.Li, atom.Dt:
		if start {
			w.line()
			w.prefix("- ")
		} else {
			w.line()
		}
	case atom.Br:
		w.line()
	case atom.Tr, atom.Dd:
		w.line()
	case atom.Td, atom.Th:
		if start {
			w.sep()
		}
	case atom.Pre:
		w.block()
		if start && !selfClosing {
			x.pre++
		} else if !start && x.pre > 0 {
			x.pre--
		}
	case atom.P, atom.Div, atom.Section, atom.Article, atom.Header, atom.Footer,
		atom.Main, atom.Nav, atom.Aside, atom.Blockquote, atom.Ul, atom.Ol, atom.Dl,
		atom.Table, atom.Hr, atom.Figure, atom.Figcaption, atom.Address, atom.Details,
		atom.Summary, atom.Form, atom.Fieldset, atom.Body, atom.Html:
		w.block()
	}
}

// htmlWriter accumulates extracted text, collapsing white space and emitting at most
// one pending break between runs of text.
type htmlWriter struct {
	b       bytes.Buffer
	brk     int    // pending break: 0 none, 1 space, 2 newline, 3 blank line
	pending string // prefix to write before the next text ("## ", "- ")
}

func (w *htmlWriter) want(k int) {
	if w.b.Len() > 0 && k > w.brk {
		w.brk = k
	}
}

func (w *htmlWriter) block()          { w.want(3); w.pending = "" }
func (w *htmlWriter) line()           { w.want(2); w.pending = "" }
func (w *htmlWriter) sep()            { w.want(1) }
func (w *htmlWriter) prefix(p string) { w.pending = p }
func (w *htmlWriter) String() string  { return strings.TrimSpace(w.b.String()) }
func (w *htmlWriter) flushBreak(text bool) {
	switch w.brk {
	case 1:
		w.b.WriteByte(' ')
	case 2:
		w.b.WriteByte('\n')
	case 3:
		w.b.WriteString("\n\n")
	}
	w.brk = 0
	if text && w.pending != "" {
		w.b.WriteString(w.pending)
		w.pending = ""
	}
}

// text writes a run of ordinary text with its white space collapsed.
func (w *htmlWriter) text(t []byte) {
	lead := len(t) > 0 && isHTMLSpace(t[0])
	trail := len(t) > 0 && isHTMLSpace(t[len(t)-1])
	fields := bytes.Fields(t)
	if len(fields) == 0 {
		if lead {
			w.want(1)
		}
		return
	}
	if lead {
		w.want(1)
	}
	w.flushBreak(true)
	for i, f := range fields {
		if i > 0 {
			w.b.WriteByte(' ')
		}
		w.b.Write(f)
	}
	if trail {
		w.want(1)
	}
}

// raw writes preformatted text as is.
func (w *htmlWriter) raw(t []byte) {
	if len(t) == 0 {
		return
	}
	w.flushBreak(true)
	w.b.Write(t)
}

func isHTMLSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}
