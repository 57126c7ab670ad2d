package clonesql

import (
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// compiled is a named statement turned into the dialect's positional form.
type compiled struct {
	query string   // with $1.. (PostgreSQL) or ? (SQLite)
	names []string // the parameter bound to each position
}

// Scope parameters: every statement must reference both; their values always come from
// the CloneContext.
const (
	ParamTenantID = "tenant_id"
	ParamCloneID  = "clone_id"
)

var compileCache sync.Map // key{dialect, query} -> *compiled or error

type compileKey struct {
	d Dialect
	q string
}

// maxCachedQuery bounds the statements kept compiled: statements are written by
// programmers, not built from input, so a small bound only guards memory against misuse.
const maxCachedQuery = 16 << 10

// compile turns the :name parameters of query into the dialect's positional form and
// refuses a statement that does not reference both :tenant_id and :clone_id.
//
// The scope check is only as good as the agreement between this lexer and the
// database's own: a parameter compile sees but the database reads as part of an
// identifier, a string or a comment, or a second statement compile does not see, would
// let a statement that looks scoped run unscoped. So compile accepts only text that
// both PostgreSQL and SQLite split into the same tokens, and refuses with
// ErrInvalidInput everything the two read differently or that has a second meaning in
// the statement's dialect:
//
//   - a NUL byte (the SQLite driver passes a C string: nothing after it is seen) and
//     text that is not valid UTF-8;
//   - a statement separator, unless it is the last thing in the text (only white space
//     after it);
//   - parameters in any form but :name: ? and $1 positional parameters, and SQLite's
//     @name, #name, $name and :name(...) or :a::b forms;
//   - SQLite [identifier] quoting (use "double quotes"), and backticks on PostgreSQL;
//   - block comments inside block comments (PostgreSQL nests them, SQLite does not),
//     unterminated comments, strings and quoted identifiers, and a line comment holding
//     a carriage return that does not end the line (PostgreSQL ends the comment there);
//   - on PostgreSQL, a backslash before a quote inside a string (with escape strings or
//     standard_conforming_strings off, PostgreSQL reads it as an escaped quote);
//   - control characters outside strings and comments, other than tab, newline,
//     carriage return and form feed, and characters neither dialect uses outside them.
//
// The differential fuzz target FuzzCompile holds this to SQLite's own
// tokenizer and parser.
func compile(d Dialect, query string) (*compiled, error) {
	k := compileKey{d, query}
	if v, ok := compileCache.Load(k); ok {
		if c, ok := v.(*compiled); ok {
			return c, nil
		}
		return nil, v.(error)
	}
	c, err := compileUncached(d, query)
	if len(query) <= maxCachedQuery {
		if err != nil {
			compileCache.Store(k, err)
		} else {
			compileCache.Store(k, c)
		}
	}
	return c, err
}

// compileUncached lexes q once, left to right. Outside strings, quoted identifiers and
// comments, every byte is classified: white space, an identifier or keyword (which
// consumes every identifier byte, so a ':' or '$' seen at the top level always starts a
// token), a number, a parameter, or an operator byte the dialect knows; anything else is
// refused.
func compileUncached(d Dialect, q string) (*compiled, error) {
	if i := strings.IndexByte(q, 0); i >= 0 {
		return nil, refuse("statement contains a NUL byte at offset %d", i)
	}
	if !utf8.ValidString(q) {
		return nil, refuse("statement is not valid UTF-8")
	}
	l := &lexer{pg: d == Postgres, q: q, pos: map[string]int{}}
	l.b.Grow(len(q) + 16)
	for l.i < len(q) {
		if err := l.token(); err != nil {
			return nil, err
		}
	}
	var hasTenant, hasClone bool
	for _, n := range l.names {
		hasTenant = hasTenant || n == ParamTenantID
		hasClone = hasClone || n == ParamCloneID
	}
	if !hasTenant || !hasClone {
		return nil, refuse("unscoped statement: it must reference both :%s and :%s", ParamTenantID, ParamCloneID)
	}
	return &compiled{query: l.b.String(), names: l.names}, nil
}

// refuse is compile's error: kind invalid input.
func refuse(format string, args ...any) error {
	return errs.New(errs.InvalidInput, "clonesql.compile", format, args...)
}

// lexer is compileUncached's state: the statement q, the offset i of the next byte,
// the statement written so far in the dialect's positional form and the parameter
// names bound to its positions.
type lexer struct {
	pg    bool // PostgreSQL (else SQLite)
	q     string
	i     int
	b     strings.Builder
	names []string
	pos   map[string]int // PostgreSQL reuses $n for a repeated name
}

// token classifies the byte at l.i and consumes the token it starts.
func (l *lexer) token() error {
	q, i, c, pg := l.q, l.i, l.q[l.i], l.pg
	switch {
	case isSpace(c):
		l.b.WriteByte(c)
		l.i++
	case c == '\'' || c == '"' || (c == '`' && !pg):
		return l.quoted(c)
	case c == '-' && i+1 < len(q) && q[i+1] == '-':
		return l.lineComment()
	case c == '/' && i+1 < len(q) && q[i+1] == '*':
		return l.blockComment()
	case c == ';':
		if rest := strings.TrimLeft(q[i+1:], spaceChars); rest != "" {
			return refuse("more than one statement: only white space may follow ';' (offset %d)", i)
		}
		l.b.WriteString(q[i:])
		l.i = len(q)
	case c == ':' && i+1 < len(q) && q[i+1] == ':':
		if !pg {
			// SQLite reads :a::b as one parameter name.
			return refuse("'::' at offset %d: SQLite has no casts of this form and reads ':a::b' as one parameter; use CAST", i)
		}
		l.b.WriteString("::")
		l.i += 2
	case c == ':' && !pg:
		return l.sqliteParam()
	case c == ':' && i+1 < len(q) && isIdentStart(q[i+1]) && (i == 0 || !isIdentCont(q[i-1])):
		// PostgreSQL: a ':' right after an identifier or number stays as it is
		// (array slices: a[1:n]).
		l.postgresParam()
	case c == '$':
		return l.dollar()
	case c == '?':
		if !pg {
			return refuse("positional parameters (?) are not accepted; use :name parameters")
		}
		l.b.WriteByte(c) // a jsonb operator
		l.i++
	case (c == '[' || c == ']') && !pg:
		return refuse("'%c' at offset %d: SQLite reads [...] as a quoted identifier; use \"double quotes\"", c, i)
	case (c == '@' || c == '#') && !pg:
		return refuse("'%c' at offset %d: SQLite reads %cname as a parameter; use :name parameters", c, i, c)
	case isIdentStart(c):
		return l.identifier()
	case isDigit(c) || c == '.' && i+1 < len(q) && isDigit(q[i+1]):
		return l.number()
	case strings.IndexByte(commonOperators, c) >= 0 || pg && strings.IndexByte(postgresOperators, c) >= 0:
		l.b.WriteByte(c)
		l.i++
	default:
		return refuse("unexpected character %q at offset %d", rune(c), i)
	}
	return nil
}

// quoted consumes a string or quoted identifier opened by quote.
func (l *lexer) quoted(quote byte) error {
	q, i := l.q, l.i
	j, ok := skipQuoted(q, i, quote)
	if !ok {
		return refuse("unterminated %s at offset %d", quotedKind(quote), i)
	}
	if l.pg && quote == '\'' && strings.Contains(q[i:j], `\'`) {
		return refuse(`a backslash before a quote in a string literal (offset %d) is read as an escaped quote by escape strings and with standard_conforming_strings off; bind the value as a parameter`, i)
	}
	l.b.WriteString(q[i:j])
	l.i = j
	return nil
}

// lineComment consumes a "--" comment up to its newline.
func (l *lexer) lineComment() error {
	q, i := l.q, l.i
	j := strings.IndexByte(q[i:], '\n')
	if j < 0 {
		j = len(q) - i
	}
	comment := q[i : i+j]
	// PostgreSQL also ends a line comment at a carriage return, SQLite only at a
	// newline: a lone CR would end the comment for one and not the other.
	if k := strings.IndexByte(comment, '\r'); k >= 0 && k != len(comment)-1 {
		return refuse("a carriage return inside a line comment (offset %d)", i+k)
	}
	l.b.WriteString(comment)
	l.i += j
	return nil
}

// blockComment consumes a "/* */" comment.
func (l *lexer) blockComment() error {
	q, i := l.q, l.i
	j := strings.Index(q[i+2:], "*/")
	if j < 0 {
		return refuse("unterminated block comment at offset %d", i)
	}
	// The body and the closing '*': a "/*" anywhere in it opens a nested
	// comment for PostgreSQL, which SQLite does not nest.
	if strings.Contains(q[i+2:i+2+j+1], "/*") {
		return refuse("nested block comment at offset %d (PostgreSQL nests comments, SQLite does not)", i)
	}
	l.b.WriteString(q[i : i+2+j+2])
	l.i += 2 + j + 2
	return nil
}

// sqliteParam consumes a SQLite :name parameter. SQLite reads ':' followed by
// identifier bytes as a parameter wherever it appears, so there is no ':' that is not
// one.
func (l *lexer) sqliteParam() error {
	q, i := l.q, l.i
	if i+1 >= len(q) || !isIdentStart(q[i+1]) {
		return refuse("':' at offset %d does not start a :name parameter (a name starts with a letter or '_')", i)
	}
	j := i + 1
	for j < len(q) && isIdentCont(q[j]) {
		j++
	}
	if j < len(q) && q[j] == '(' {
		return refuse("':%s(' at offset %d: SQLite reads ':name(...)' as one parameter; put a space before '('", q[i+1:j], i)
	}
	l.names = append(l.names, q[i+1:j])
	l.b.WriteByte('?')
	l.i = j
	return nil
}

// postgresParam consumes a PostgreSQL :name parameter, numbering each name once.
func (l *lexer) postgresParam() {
	q, i := l.q, l.i
	j := i + 1
	for j < len(q) && isIdentCont(q[j]) {
		j++
	}
	name := q[i+1 : j]
	n, ok := l.pos[name]
	if !ok {
		l.names = append(l.names, name)
		n = len(l.names)
		l.pos[name] = n
	}
	l.b.WriteString("$" + strconv.Itoa(n))
	l.i = j
}

// dollar consumes a PostgreSQL dollar-quoted string ($$...$$ or $tag$...$tag$) and
// refuses any other '$'.
func (l *lexer) dollar() error {
	q, i := l.q, l.i
	if !l.pg {
		return refuse("'$' at offset %d: SQLite reads $name and $1 as parameters; use :name parameters", i)
	}
	end := i + 1
	if end < len(q) && isIdentStart(q[end]) {
		for end < len(q) && isIdentStart(q[end]) || end < len(q) && isDigit(q[end]) {
			end++
		}
	}
	if end < len(q) && q[end] == '$' {
		tag := q[i : end+1]
		k := strings.Index(q[end+1:], tag)
		if k < 0 {
			return refuse("unterminated dollar-quoted string at offset %d", i)
		}
		stop := end + 1 + k + len(tag)
		l.b.WriteString(q[i:stop])
		l.i = stop
		return nil
	}
	if i+1 < len(q) && isDigit(q[i+1]) {
		return refuse("positional parameters ($1) are not accepted; use :name parameters")
	}
	return refuse("'$' at offset %d is neither a dollar-quoted string nor part of an identifier", i)
}

// identifier consumes an identifier or keyword (every identifier byte), or a SQLite
// blob literal x'0a1b'.
func (l *lexer) identifier() error {
	q, i := l.q, l.i
	c := q[i]
	j := i + 1
	for j < len(q) && isIdentCont(q[j]) {
		j++
	}
	if !l.pg && j == i+1 && (c == 'x' || c == 'X') && j < len(q) && q[j] == '\'' {
		// A SQLite blob x'0a1b' ends at the first quote: no doubled quotes.
		k := j + 1
		for k < len(q) && isHex(q[k]) {
			k++
		}
		if k >= len(q) || q[k] != '\'' || (k-j-1)%2 != 0 || k+1 < len(q) && q[k+1] == '\'' {
			return refuse("malformed blob literal at offset %d", i)
		}
		j = k + 1
	}
	l.b.WriteString(q[i:j])
	l.i = j
	return nil
}

// number consumes a number, including 1e5, 0x1f and 1_000. Where one ends is read
// differently by the dialects' versions (PostgreSQL before 15 ends 1a$x$ after the 1),
// so a number may not run into '$' or a non-ASCII identifier byte.
func (l *lexer) number() error {
	q, i := l.q, l.i
	j := i + 1
	for j < len(q) && (isDigit(q[j]) || isLetter(q[j]) || q[j] == '_' || q[j] == '.') {
		j++
	}
	if j < len(q) && (q[j] == '$' || q[j] >= utf8.RuneSelf) {
		return refuse("malformed number at offset %d", i)
	}
	l.b.WriteString(q[i:j])
	l.i = j
	return nil
}

const (
	// spaceChars is the white space both dialects skip between tokens.
	spaceChars = " \t\n\r\f"
	// commonOperators are the operator and punctuation bytes both dialects read alike.
	commonOperators = "(),.+-*/%<>=!|&~:"
	// postgresOperators are further PostgreSQL operator bytes (array subscripts, jsonb
	// and geometric operators); SQLite reads [ ] @ # as quoting or parameters.
	postgresOperators = "[]@#^"
)

// skipQuoted returns the index after the quoted run starting at q[i] (quote char c; a
// doubled quote is an escaped quote) and whether the run is terminated.
func skipQuoted(q string, i int, c byte) (int, bool) {
	for j := i + 1; j < len(q); j++ {
		if q[j] == c {
			if j+1 < len(q) && q[j+1] == c {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return len(q), false
}

func quotedKind(c byte) string {
	if c == '\'' {
		return "string literal"
	}
	return "quoted identifier"
}

func isSpace(c byte) bool  { return strings.IndexByte(spaceChars, c) >= 0 }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isHex(c byte) bool    { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// isIdentStart reports whether c starts an identifier in both dialects: a letter, '_',
// or any byte of a non-ASCII character.
func isIdentStart(c byte) bool { return c == '_' || isLetter(c) || c >= utf8.RuneSelf }

// isIdentCont reports whether c continues an identifier (or a SQLite parameter name) in
// both dialects: PostgreSQL and SQLite both accept '$' inside identifiers.
func isIdentCont(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }
