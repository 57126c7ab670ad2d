package extract

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strconv"
	"strings"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Paths inside a DOCX archive.
const (
	docxMain   = "word/document.xml"
	docxStyles = "word/styles.xml"
	wordNS     = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
)

// Defaults of DOCXOptions.
const (
	DefaultDOCXMaxEntries    = 10000
	DefaultDOCXMaxEntryBytes = 256 << 20
	DefaultDOCXMaxTotalBytes = 512 << 20
	DefaultDOCXMaxRatio      = 200
	DefaultDOCXMaxDepth      = 256
)

// DOCXOptions bound the DOCX extractor; zero fields mean the defaults. Every size is
// counted on the bytes actually decompressed (read through io.LimitReader), never
// taken from the archive's headers, which an attacker writes.
type DOCXOptions struct {
	// MaxEntries bounds the entries of the archive's central directory: 0 means
	// DefaultDOCXMaxEntries.
	MaxEntries int
	// MaxEntryBytes bounds the decompressed size of one XML part read:
	// 0 means DefaultDOCXMaxEntryBytes.
	MaxEntryBytes int64
	// MaxTotalBytes bounds the decompressed bytes of all parts read together:
	// 0 means DefaultDOCXMaxTotalBytes.
	MaxTotalBytes int64
	// MaxRatio bounds decompressed/compressed bytes of a part once it is over 1 MiB
	// decompressed (a zip bomb compresses far better than any real document):
	// 0 means DefaultDOCXMaxRatio.
	MaxRatio int
	// MaxDepth bounds the nesting of XML elements: 0 means DefaultDOCXMaxDepth.
	MaxDepth int
	// MaxTextBytes bounds the text produced: 0 means DefaultMaxTextBytes.
	MaxTextBytes int
}

func (o *DOCXOptions) withDefaults() DOCXOptions {
	var d DOCXOptions
	if o != nil {
		d = *o
	}
	if d.MaxEntries <= 0 {
		d.MaxEntries = DefaultDOCXMaxEntries
	}
	if d.MaxEntryBytes <= 0 {
		d.MaxEntryBytes = DefaultDOCXMaxEntryBytes
	}
	if d.MaxTotalBytes <= 0 {
		d.MaxTotalBytes = DefaultDOCXMaxTotalBytes
	}
	if d.MaxRatio <= 0 {
		d.MaxRatio = DefaultDOCXMaxRatio
	}
	if d.MaxDepth <= 0 {
		d.MaxDepth = DefaultDOCXMaxDepth
	}
	if d.MaxTextBytes <= 0 {
		d.MaxTextBytes = DefaultMaxTextBytes
	}
	return d
}

// NewDOCX returns the extractor of Word documents (TypeDOCX), written with the
// standard library's archive/zip and encoding/xml only. It reads word/document.xml
// (and word/styles.xml for the names of heading styles) and returns the body's text
// as light Markdown: Title and Heading 1..6 paragraphs (by style, or by outline
// level) become "#".."######" headings, numbered or bulleted paragraphs "- " list
// items (indented by level), tables "| a | b |" rows, text boxes and nested tables
// their text. Deleted revisions and field codes are left out.
//
// Untrusted archives are bounded (see DOCXOptions): too many entries, a part or the
// whole over its decompressed size, or a compression ratio beyond MaxRatio is
// clone.ErrTooLarge; a document type declaration (DOCTYPE, the door to entity
// expansion), nesting deeper than MaxDepth, malformed ZIP or XML is
// clone.ErrInvalidInput. Nothing is returned on error.
func NewDOCX(opts *DOCXOptions) Extractor {
	o := opts.withDefaults()
	return Func(func(ctx context.Context, data []byte, _ map[string]string) (string, error) {
		return docx(ctx, data, &o)
	})
}

type docxReader struct {
	ctx   context.Context
	o     *DOCXOptions
	total int64
}

const docxOp = "extract.DOCX"

func docx(ctx context.Context, data []byte, o *DOCXOptions) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", errs.Wrap(errs.InvalidInput, docxOp, err, "malformed DOCX: not a ZIP archive")
	}
	if len(zr.File) > o.MaxEntries {
		return "", errs.New(errs.TooLarge, docxOp, "DOCX archive has %d entries; the limit is %d", len(zr.File), o.MaxEntries)
	}
	var main, styles *zip.File
	for _, f := range zr.File {
		switch f.Name {
		case docxMain:
			if main != nil {
				return "", errs.New(errs.InvalidInput, docxOp, "malformed DOCX: %s appears twice", docxMain)
			}
			main = f
		case docxStyles:
			styles = f
		}
	}
	if main == nil {
		return "", errs.New(errs.InvalidInput, docxOp, "malformed DOCX: no %s", docxMain)
	}
	r := &docxReader{ctx: ctx, o: o}
	headings := map[string]int{}
	if styles != nil {
		if err := r.parse(styles, (&styleParser{levels: headings}).token); err != nil {
			return "", err
		}
	}
	w := &docxWriter{headings: headings, max: o.MaxTextBytes}
	if err := r.parse(main, w.token); err != nil {
		return "", err
	}
	return w.finish()
}

// limitedPart reads one archive entry and fails past the per-entry, total and ratio
// limits, counting the bytes actually decompressed.
type limitedPart struct {
	r          io.Reader
	d          *docxReader
	n          int64
	compressed int64
}

func (p *limitedPart) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.d.total += int64(n)
	switch {
	case p.n > p.d.o.MaxEntryBytes:
		return n, errs.New(errs.TooLarge, docxOp, "a DOCX part is over %d bytes decompressed", p.d.o.MaxEntryBytes)
	case p.d.total > p.d.o.MaxTotalBytes:
		return n, errs.New(errs.TooLarge, docxOp, "the DOCX parts are over %d bytes decompressed", p.d.o.MaxTotalBytes)
	case p.n > 1<<20 && p.n > int64(p.d.o.MaxRatio)*max(p.compressed, 1):
		return n, errs.New(errs.TooLarge, docxOp, "a DOCX part decompresses more than %d times its size (a zip bomb?)", p.d.o.MaxRatio)
	}
	return n, err
}

// parse streams the XML of f through tok, with the limits of the reader.
func (r *docxReader) parse(f *zip.File, tok func(xml.Token) error) error {
	rc, err := f.Open()
	if err != nil {
		return errs.Wrap(errs.InvalidInput, docxOp, err, "malformed DOCX: cannot open %s", f.Name)
	}
	defer rc.Close()
	// The LimitReader is a second bound under the counting reader: even a reader that
	// ignored the counts could not pull more than MaxEntryBytes+1 bytes.
	part := &limitedPart{r: io.LimitReader(rc, r.o.MaxEntryBytes+1), d: r, compressed: int64(f.CompressedSize64)}
	dec := xml.NewDecoder(part)
	dec.Strict = true
	depth, n := 0, 0
	for {
		n++
		if n%4096 == 0 {
			if err := r.ctx.Err(); err != nil {
				return errs.Wrap(errs.Unavailable, docxOp, err, "cancelled")
			}
		}
		t, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errs.KindOf(err) != errs.Unknown {
				return err
			}
			return errs.Wrap(errs.InvalidInput, docxOp, err, "malformed DOCX: bad XML in %s", f.Name)
		}
		switch t.(type) {
		case xml.StartElement:
			depth++
			if depth > r.o.MaxDepth {
				return errs.New(errs.InvalidInput, docxOp, "malformed DOCX: XML nested deeper than %d in %s", r.o.MaxDepth, f.Name)
			}
		case xml.EndElement:
			depth--
		case xml.Directive:
			return errs.New(errs.InvalidInput, docxOp, "DOCX part %s has a document type declaration; refused (entity expansion)", f.Name)
		}
		if err := tok(t); err != nil {
			return err
		}
	}
}

func wAttr(e xml.StartElement, local string) string {
	for _, a := range e.Attr {
		if a.Name.Local == local && (a.Name.Space == wordNS || a.Name.Space == "") {
			return a.Value
		}
	}
	return ""
}

func isW(n xml.Name, local string) bool { return n.Local == local && n.Space == wordNS }

// headingLevel returns the heading level of a style name ("Title", "heading 2",
// "Heading2"), else 0.
func headingLevel(name string) int {
	s := strings.ToLower(strings.ReplaceAll(name, " ", ""))
	if s == "title" {
		return 1
	}
	if rest, ok := strings.CutPrefix(s, "heading"); ok && len(rest) == 1 && rest[0] >= '1' && rest[0] <= '6' {
		return int(rest[0] - '0')
	}
	return 0
}

// styleParser collects the heading level of every paragraph style of styles.xml, by
// name or outline level.
type styleParser struct {
	levels map[string]int
	id     string
	in     bool
}

func (s *styleParser) token(t xml.Token) error {
	switch t := t.(type) {
	case xml.StartElement:
		switch {
		case isW(t.Name, "style"):
			s.in = wAttr(t, "type") == "paragraph" || wAttr(t, "type") == ""
			s.id = wAttr(t, "styleId")
			if s.in && s.id != "" {
				if l := headingLevel(s.id); l > 0 {
					s.levels[s.id] = l
				}
			}
		case s.in && s.id != "" && isW(t.Name, "name"):
			if l := headingLevel(wAttr(t, "val")); l > 0 {
				s.levels[s.id] = l
			}
		case s.in && s.id != "" && isW(t.Name, "outlineLvl"):
			if l, err := strconv.Atoi(wAttr(t, "val")); err == nil && l >= 0 && l < 6 {
				if _, ok := s.levels[s.id]; !ok {
					s.levels[s.id] = l + 1
				}
			}
		}
	case xml.EndElement:
		if isW(t.Name, "style") {
			s.in, s.id = false, ""
		}
	}
	return nil
}

// docxPara is a paragraph being read.
type docxPara struct {
	text    strings.Builder
	heading int
	list    bool
	level   int
}

// docxTable is a table being read: its current row and cell.
type docxTable struct {
	row  []string
	cell strings.Builder
	rows int
}

// docxWriter turns document.xml's tokens into text.
type docxWriter struct {
	headings map[string]int
	max      int
	out      strings.Builder
	paras    []*docxPara
	tables   []*docxTable
	inText   int // depth inside w:t
	prevList bool
}

func (w *docxWriter) para() *docxPara {
	if len(w.paras) == 0 {
		return nil
	}
	return w.paras[len(w.paras)-1]
}

func (w *docxWriter) token(t xml.Token) error {
	switch t := t.(type) {
	case xml.StartElement:
		if t.Name.Space != wordNS {
			return nil
		}
		p := w.para()
		switch t.Name.Local {
		case "p":
			w.paras = append(w.paras, &docxPara{})
		case "pStyle":
			if p != nil {
				if l := w.headings[wAttr(t, "val")]; l > 0 {
					p.heading = l
				} else if l := headingLevel(wAttr(t, "val")); l > 0 {
					p.heading = l
				} else if strings.HasPrefix(strings.ToLower(wAttr(t, "val")), "list") {
					p.list = true
				}
			}
		case "outlineLvl":
			if l, err := strconv.Atoi(wAttr(t, "val")); err == nil && p != nil && l >= 0 && l < 6 && p.heading == 0 {
				p.heading = l + 1
			}
		case "numPr":
			if p != nil {
				p.list = true
			}
		case "ilvl":
			if l, err := strconv.Atoi(wAttr(t, "val")); err == nil && p != nil && l > 0 {
				p.level = min(l, 8)
			}
		case "t":
			w.inText++
		case "tab":
			if p != nil && w.inText == 0 {
				p.text.WriteByte('\t')
			}
		case "br", "cr":
			if p != nil {
				p.text.WriteByte('\n')
			}
		case "noBreakHyphen":
			if p != nil {
				p.text.WriteByte('-')
			}
		case "tbl":
			w.tables = append(w.tables, &docxTable{})
		case "tr":
			if tb := w.table(); tb != nil {
				tb.row = tb.row[:0]
			}
		case "tc":
			if tb := w.table(); tb != nil {
				tb.cell.Reset()
			}
		}
	case xml.CharData:
		if w.inText > 0 {
			if p := w.para(); p != nil {
				p.text.Write(t)
			}
		}
	case xml.EndElement:
		if t.Name.Space != wordNS {
			return nil
		}
		switch t.Name.Local {
		case "t":
			w.inText--
		case "p":
			if p := w.para(); p != nil {
				w.paras = w.paras[:len(w.paras)-1]
				w.endPara(p)
			}
		case "tc":
			if tb := w.table(); tb != nil {
				tb.row = append(tb.row, strings.TrimSpace(tb.cell.String()))
			}
		case "tr":
			if tb := w.table(); tb != nil {
				w.endRow(tb)
			}
		case "tbl":
			if len(w.tables) > 0 {
				w.tables = w.tables[:len(w.tables)-1]
				if len(w.tables) == 0 {
					w.prevList = false
				}
			}
		}
	}
	if w.out.Len() > w.max {
		return errs.New(errs.TooLarge, docxOp, "the DOCX text is over %d bytes", w.max)
	}
	return nil
}

func (w *docxWriter) table() *docxTable {
	if len(w.tables) == 0 {
		return nil
	}
	return w.tables[len(w.tables)-1]
}

// flatten flattens white space runs (line breaks, tabs) to single spaces.
func flatten(s string) string { return strings.Join(strings.Fields(s), " ") }

func (w *docxWriter) endPara(p *docxPara) {
	text := strings.TrimSpace(p.text.String())
	if text == "" {
		return
	}
	// Inside a table (and not in a text box nested in a cell's paragraph), the
	// paragraph is part of the current cell.
	if tb := w.table(); tb != nil && len(w.paras) == 0 {
		if tb.cell.Len() > 0 {
			tb.cell.WriteByte(' ')
		}
		tb.cell.WriteString(flatten(text))
		return
	}
	if outer := w.para(); outer != nil {
		// A text box inside a run: its paragraphs join the enclosing paragraph.
		if outer.text.Len() > 0 {
			outer.text.WriteByte(' ')
		}
		outer.text.WriteString(text)
		return
	}
	switch {
	case p.heading > 0:
		w.block(strings.Repeat("#", p.heading)+" "+flatten(text), false)
	case p.list:
		w.block(strings.Repeat("  ", p.level)+"- "+flatten(text), true)
	default:
		w.block(text, false)
	}
}

func (w *docxWriter) endRow(tb *docxTable) {
	row := tb.row
	tb.row = nil
	empty := true
	for _, c := range row {
		if c != "" {
			empty = false
		}
	}
	if empty {
		return
	}
	if len(w.tables) > 1 || len(w.paras) > 0 {
		// A nested table: its rows join the enclosing cell (or paragraph).
		line := strings.Join(row, " ")
		if len(w.tables) > 1 {
			outer := w.tables[len(w.tables)-2]
			if outer.cell.Len() > 0 {
				outer.cell.WriteString("; ")
			}
			outer.cell.WriteString(line)
		} else if p := w.para(); p != nil {
			p.text.WriteString(" " + line)
		}
		return
	}
	for i, c := range row {
		row[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	line := "| " + strings.Join(row, " | ") + " |"
	if tb.rows == 0 {
		w.block(line, false)
		w.out.WriteString("\n|" + strings.Repeat(" --- |", len(row)))
	} else {
		w.out.WriteString("\n" + line)
	}
	tb.rows++
}

// block appends a paragraph-level block: list items follow each other on single
// lines, other blocks are separated by blank lines.
func (w *docxWriter) block(s string, list bool) {
	if w.out.Len() > 0 {
		if list && w.prevList {
			w.out.WriteByte('\n')
		} else {
			w.out.WriteString("\n\n")
		}
	}
	w.out.WriteString(s)
	w.prevList = list
}

func (w *docxWriter) finish() (string, error) {
	if w.out.Len() > w.max {
		return "", errs.New(errs.TooLarge, docxOp, "the DOCX text is over %d bytes", w.max)
	}
	s := w.out.String()
	if strings.ContainsRune(s, '\r') {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	}
	return s, nil
}
