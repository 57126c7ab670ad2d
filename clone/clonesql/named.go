package clonesql

import (
	"strconv"
	"strings"
	"sync"

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

// compile parses the :name parameters of query, skipping string literals, quoted
// identifiers, comments, dollar-quoted strings and :: casts, and refuses a statement that
// does not reference both :tenant_id and :clone_id.
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

func compileUncached(d Dialect, q string) (*compiled, error) {
	const op = "clonesql.compile"
	var (
		b     strings.Builder
		names []string
		pos   = map[string]int{} // PostgreSQL reuses $n for a repeated name
	)
	b.Grow(len(q) + 16)
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := skipQuoted(q, i, c)
			b.WriteString(q[i:j])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return nil, errs.New(errs.InvalidInput, op, "unterminated comment in statement")
			}
			b.WriteString(q[i : i+2+j+2])
			i += 2 + j + 2
		case c == '$' && d == Postgres && (i == 0 || !isIdent(q[i-1])):
			// Dollar quoting: $$...$$ or $tag$...$tag$. ($1 positional parameters are
			// refused below: statements use named parameters only.)
			end := i + 1
			for end < len(q) && isIdent(q[end]) && !(end == i+1 && isDigit(q[end])) {
				end++
			}
			if end < len(q) && q[end] == '$' {
				tag := q[i : end+1]
				k := strings.Index(q[end+1:], tag)
				if k < 0 {
					return nil, errs.New(errs.InvalidInput, op, "unterminated dollar-quoted string in statement")
				}
				stop := end + 1 + k + len(tag)
				b.WriteString(q[i:stop])
				i = stop
				continue
			}
			if i+1 < len(q) && isDigit(q[i+1]) {
				return nil, errs.New(errs.InvalidInput, op, "positional parameters ($1) are not accepted; use :name parameters")
			}
			b.WriteByte(c)
			i++
		case c == '?' && d == SQLite:
			return nil, errs.New(errs.InvalidInput, op, "positional parameters (?) are not accepted; use :name parameters")
		case c == ':' && i+1 < len(q) && q[i+1] == ':':
			b.WriteString("::")
			i += 2
		case c == ':' && i+1 < len(q) && isIdentStart(q[i+1]) && (i == 0 || !isIdent(q[i-1])):
			j := i + 1
			for j < len(q) && isIdent(q[j]) {
				j++
			}
			name := q[i+1 : j]
			if d == Postgres {
				n, ok := pos[name]
				if !ok {
					names = append(names, name)
					n = len(names)
					pos[name] = n
				}
				b.WriteString("$" + strconv.Itoa(n))
			} else {
				names = append(names, name)
				b.WriteByte('?')
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	var hasTenant, hasClone bool
	for _, n := range names {
		hasTenant = hasTenant || n == ParamTenantID
		hasClone = hasClone || n == ParamCloneID
	}
	if !hasTenant || !hasClone {
		return nil, errs.New(errs.InvalidInput, op, "unscoped statement: it must reference both :%s and :%s", ParamTenantID, ParamCloneID)
	}
	return &compiled{query: b.String(), names: names}, nil
}

// skipQuoted returns the index after the quoted run starting at q[i] (quote char c;
// a doubled quote is an escaped quote). An unterminated run extends to the end.
func skipQuoted(q string, i int, c byte) int {
	for j := i + 1; j < len(q); j++ {
		if q[j] == c {
			if j+1 < len(q) && q[j+1] == c {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(q)
}

func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }
