package file

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// parser is a strict JSON reader for the registry document: it accepts exactly the JSON that
// encoding/json accepts for the schema, except that it rejects invalid UTF-8 and lone
// surrogates in strings and never matches field names case-insensitively. Errors carry the
// byte offset, turned into a line and column.
type parser struct {
	s   string
	pos int
}

func (p *parser) errorf(format string, args ...any) *CorruptError {
	return p.errorAt(p.pos, format, args...)
}

func (p *parser) errorAt(off int, format string, args ...any) *CorruptError {
	line, col := position(p.s, off)
	return &CorruptError{Line: line, Column: col, Problem: fmt.Sprintf(format, args...)}
}

// position turns a byte offset into a 1-based line and column (in characters).
func position(s string, off int) (line, col int) {
	off = min(off, len(s))
	before := s[:off]
	lineStart := strings.LastIndexByte(before, '\n') + 1
	return strings.Count(before, "\n") + 1, utf8.RuneCountInString(before[lineStart:]) + 1
}

// found describes what is at the current position, for error messages.
func (p *parser) found() string {
	if p.pos >= len(p.s) {
		return "end of file"
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.pos:])
	return fmt.Sprintf("%q", r)
}

func (p *parser) ws() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) peek(c byte) bool {
	p.ws()
	return p.pos < len(p.s) && p.s[p.pos] == c
}

// null consumes a JSON null, which stands for the zero value as with encoding/json.
func (p *parser) null() bool {
	p.ws()
	if strings.HasPrefix(p.s[p.pos:], "null") {
		p.pos += 4
		return true
	}
	return false
}

// open consumes the opening bracket c of what and reports whether the container is empty
// (and already closed). With more, it drives loops over elements without closures:
//
//	for empty, err := p.open('[', x); err == nil && !empty; empty, err = p.more(']', x) {...}
func (p *parser) open(c byte, what string) (empty bool, err error) {
	if !p.peek(c) {
		kind := "an object"
		if c == '[' {
			kind = "a list"
		}
		return false, p.errorf("expected %s for %s, found %s", kind, what, p.found())
	}
	p.pos++
	if p.peek(c + 2) { // '{'+2 is '}', '['+2 is ']'
		p.pos++
		return true, nil
	}
	return false, nil
}

// more consumes the ',' between elements (true: another follows) or the closing bracket.
// The element after a ',' is never empty, so a trailing comma fails in the element's parser.
func (p *parser) more(closer byte, what string) (empty bool, err error) {
	p.ws()
	if p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ',':
			p.pos++
			return false, nil
		case closer:
			p.pos++
			return true, nil
		}
	}
	return false, p.errorf("expected ',' or '%c' in %s, found %s", closer, what, p.found())
}

// key reads an object's field name and the ':' after it, returning where the name started.
func (p *parser) key() (string, int, error) {
	p.ws()
	off := p.pos
	if p.pos >= len(p.s) || p.s[p.pos] != '"' {
		return "", off, p.errorf("expected a field name in double quotes, found %s", p.found())
	}
	k, err := p.str("a field name")
	if err != nil {
		return "", off, err
	}
	if !p.peek(':') {
		return "", off, p.errorf("expected ':' after field name %q, found %s", abbreviate(k), p.found())
	}
	p.pos++
	return k, off, nil
}

// str reads a JSON string (or null, meaning ""). Strings without escapes are returned as
// slices of the document, which is what makes reading a large file cheap.
func (p *parser) str(what string) (string, error) {
	if p.null() {
		return "", nil
	}
	if p.pos >= len(p.s) || p.s[p.pos] != '"' {
		return "", p.errorf("expected a string for %s, found %s", what, p.found())
	}
	start := p.pos + 1
	for i := start; i < len(p.s); {
		c := p.s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return p.s[start:i], nil
		case c == '\\':
			return p.strEscaped(start, i)
		case c < 0x20:
			return "", p.controlChar(i, c)
		case c < utf8.RuneSelf:
			i++
		default:
			size, err := p.runeSize(i)
			if err != nil {
				return "", err
			}
			i += size
		}
	}
	return "", p.unterminated()
}

// strEscaped continues str from the first backslash at i, building an unescaped copy.
func (p *parser) strEscaped(start, i int) (string, error) {
	var b strings.Builder
	b.WriteString(p.s[start:i])
	for i < len(p.s) {
		c := p.s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return b.String(), nil
		case c < 0x20:
			return "", p.controlChar(i, c)
		case c == '\\':
			p.pos = i
			if i+1 >= len(p.s) {
				return "", p.unterminated()
			}
			switch e := p.s[i+1]; e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, n, err := p.unicodeEscape(i)
				if err != nil {
					return "", err
				}
				b.WriteRune(r)
				i += n
				continue
			default:
				return "", p.errorf("invalid escape \\%c in a string", e)
			}
			i += 2
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			size, err := p.runeSize(i)
			if err != nil {
				return "", err
			}
			b.WriteString(p.s[i : i+size])
			i += size
		}
	}
	return "", p.unterminated()
}

// runeSize returns the length of the UTF-8 sequence at i, inside a string, failing on
// invalid UTF-8.
func (p *parser) runeSize(i int) (int, error) {
	r, size := utf8.DecodeRuneInString(p.s[i:])
	if r == utf8.RuneError && size == 1 {
		p.pos = i
		return 0, p.errorf("invalid UTF-8 in a string")
	}
	return size, nil
}

// controlChar fails on the control character c at i, inside a string.
func (p *parser) controlChar(i int, c byte) error {
	p.pos = i
	return p.errorf("control character %q in a string (write it as an escape such as \\n)", rune(c))
}

// unterminated fails on a document that ends inside a string.
func (p *parser) unterminated() error {
	p.pos = len(p.s)
	return p.errorf("the file ends inside a string (is it truncated?)")
}

// unicodeEscape decodes \uXXXX at i, joining a UTF-16 surrogate pair, and returns the rune and
// the number of bytes consumed.
func (p *parser) unicodeEscape(i int) (rune, int, error) {
	r1, ok := hex4(p.s, i+2)
	if !ok {
		return 0, 0, p.errorf("invalid \\u escape (want four hex digits)")
	}
	if r1 < 0xd800 || r1 > 0xdfff {
		return r1, 6, nil
	}
	if r1 < 0xdc00 && strings.HasPrefix(p.s[min(i+6, len(p.s)):], `\u`) {
		if r2, ok := hex4(p.s, i+8); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
			return 0x10000 + (r1-0xd800)<<10 + (r2 - 0xdc00), 12, nil
		}
	}
	return 0, 0, p.errorf("invalid \\u escape: lone UTF-16 surrogate \\u%04x", r1)
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// int reads a JSON number that must be a whole number fitting in an int (or null, meaning 0).
func (p *parser) int(what string) (int, error) {
	if p.null() {
		return 0, nil
	}
	i := p.pos
	neg := i < len(p.s) && p.s[i] == '-'
	if neg {
		i++
	}
	digits := i
	var n uint64
	for ; i < len(p.s) && p.s[i] >= '0' && p.s[i] <= '9'; i++ {
		if n > math.MaxInt/10 {
			return 0, p.errorf("%s is too large", what)
		}
		n = n*10 + uint64(p.s[i]-'0')
	}
	switch {
	case i == digits:
		return 0, p.errorf("expected a number for %s, found %s", what, p.found())
	case p.s[digits] == '0' && i-digits > 1:
		return 0, p.errorf("number for %s has a leading zero", what)
	case i < len(p.s) && (p.s[i] == '.' || p.s[i] == 'e' || p.s[i] == 'E'):
		return 0, p.errorf("%s must be a whole number", what)
	case n > math.MaxInt:
		return 0, p.errorf("%s is too large", what)
	}
	p.pos = i
	if neg {
		return -int(n), nil
	}
	return int(n), nil
}
