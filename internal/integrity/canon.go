package integrity

import (
	"bytes"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// AppendCanonicalJSON appends the canonical form of the JSON document src
// to dst and reports whether src was valid JSON.
//
// The form is RFC 8785 (JSON Canonicalization Scheme): no whitespace, object
// members sorted by their names' UTF-16 code units, strings with the minimal
// escaping, numbers in the ECMAScript form of the IEEE 754 double they
// denote (formatted by github.com/gowebpki/jcs). Two extensions make the
// form the same for a document as the Go side holds it and as PostgreSQL
// returns it from a jsonb column, which keeps the last of duplicated member
// names and stores numbers as exact decimals:
//
//   - a duplicated member name keeps its last value (RFC 8785 rejects the
//     document);
//   - a number that is not the shortest form of a double (one that a double
//     cannot hold exactly, such as 12345678901234567890123 or 1e400) is
//     written as its exact decimal value, d.ddd...e±x with no trailing zeros,
//     instead of being rounded to a double: editing it changes the hash.
//
// For every document RFC 8785 accepts whose numbers are the shortest form of
// their doubles the output is byte for byte jcs.Transform's (a test holds
// that). An invalid document is appended as a JSON string of its raw bytes
// after the marker "\u0000invalid-json:", so hashing never fails; PostgreSQL
// refuses such a document anyway.
func AppendCanonicalJSON(dst, src []byte) ([]byte, bool) {
	var p parser
	return p.appendCanonical(dst, src)
}

func (p *parser) appendCanonical(dst, src []byte) ([]byte, bool) {
	p.reset(src)
	p.skipSpace()
	mark := len(dst)
	out, ok := p.value(dst, 0)
	if ok {
		p.skipSpace()
		ok = p.i == len(p.src)
	}
	if !ok {
		return appendString(out[:mark], "\x00invalid-json:"+string(src)), false
	}
	return out, true
}

// maxDepth bounds the nesting the canonicaliser follows (PostgreSQL's own
// limit is its stack depth; the mapping cuts arguments far earlier).
const maxDepth = 10000

// parser canonicalises one document. Its buffers are kept per nesting depth
// and reused, so a [RowHasher] hashes rows without allocating.
type parser struct {
	src     []byte
	i       int
	scratch []byte
	levels  []level
}

// level holds the members of the object being read at one depth.
type level struct {
	members []member
	names   []byte // member names, back to back
	vals    []byte // canonical member values, back to back
}

func (p *parser) reset(src []byte) {
	p.src, p.i = src, 0
}

func (p *parser) skipSpace() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(dst []byte, depth int) ([]byte, bool) {
	if p.i >= len(p.src) || depth > maxDepth {
		return dst, false
	}
	switch c := p.src[p.i]; {
	case c == '{':
		return p.object(dst, depth)
	case c == '[':
		return p.array(dst, depth)
	case c == '"':
		s, ok := p.str()
		if !ok {
			return dst, false
		}
		return appendString(dst, s), true
	case c == 't':
		return p.literal(dst, "true")
	case c == 'f':
		return p.literal(dst, "false")
	case c == 'n':
		return p.literal(dst, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(dst)
	}
	return dst, false
}

func (p *parser) literal(dst []byte, lit string) ([]byte, bool) {
	if len(p.src)-p.i < len(lit) || string(p.src[p.i:p.i+len(lit)]) != lit {
		return dst, false
	}
	p.i += len(lit)
	return append(dst, lit...), true
}

func (p *parser) array(dst []byte, depth int) ([]byte, bool) {
	p.i++ // [
	dst = append(dst, '[')
	p.skipSpace()
	if p.i < len(p.src) && p.src[p.i] == ']' {
		p.i++
		return append(dst, ']'), true
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		p.skipSpace()
		var ok bool
		if dst, ok = p.value(dst, depth+1); !ok {
			return dst, false
		}
		p.skipSpace()
		if p.i >= len(p.src) {
			return dst, false
		}
		switch p.src[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return append(dst, ']'), true
		default:
			return dst, false
		}
	}
}

type member struct {
	nameStart, nameEnd int // in level.names
	valStart, valEnd   int // in level.vals
	ascii              bool
}

func (p *parser) object(dst []byte, depth int) ([]byte, bool) {
	p.i++ // {
	p.skipSpace()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		return append(dst, '{', '}'), true
	}
	for len(p.levels) <= depth {
		p.levels = append(p.levels, level{})
	}
	lv := &p.levels[depth]
	lv.members, lv.names, lv.vals = lv.members[:0], lv.names[:0], lv.vals[:0]
	for {
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			return dst, false
		}
		name, ok := p.str()
		if !ok {
			return dst, false
		}
		m := member{nameStart: len(lv.names), ascii: isASCII(name)}
		lv.names = append(lv.names, name...)
		m.nameEnd = len(lv.names)
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return dst, false
		}
		p.i++
		p.skipSpace()
		m.valStart = len(lv.vals)
		vals, ok := p.value(lv.vals, depth+1)
		lv = &p.levels[depth] // p.levels may have grown
		lv.vals = vals
		if !ok {
			return dst, false
		}
		m.valEnd = len(lv.vals)
		lv.members = append(lv.members, m)
		p.skipSpace()
		if p.i >= len(p.src) {
			return dst, false
		}
		if p.src[p.i] == ',' {
			p.i++
			continue
		}
		if p.src[p.i] != '}' {
			return dst, false
		}
		p.i++
		break
	}
	names := lv.names
	cmp := func(a, b member) int {
		return compareNames(names[a.nameStart:a.nameEnd], names[b.nameStart:b.nameEnd], a.ascii && b.ascii)
	}
	ms := lv.members
	// Stable insertion sort (objects are small and often sorted), then keep
	// the last of equal names (jsonb's rule).
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && cmp(ms[j], ms[j-1]) < 0; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
	dst = append(dst, '{')
	first := true
	for i := range ms {
		if i+1 < len(ms) && cmp(ms[i+1], ms[i]) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, names[ms[i].nameStart:ms[i].nameEnd])
		dst = append(dst, ':')
		dst = append(dst, lv.vals[ms[i].valStart:ms[i].valEnd]...)
	}
	return append(dst, '}'), true
}

func isASCII(s []byte) bool {
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// compareNames compares member names by their UTF-16 code units (RFC 8785
// section 3.2.3). ASCII names compare as bytes.
func compareNames(a, b []byte, ascii bool) int {
	if ascii {
		return bytes.Compare(a, b)
	}
	for len(a) > 0 && len(b) > 0 {
		ra, na := utf8.DecodeRune(a)
		rb, nb := utf8.DecodeRune(b)
		if ra != rb {
			return slices.Compare(utf16.AppendRune(nil, ra), utf16.AppendRune(nil, rb))
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// str parses a JSON string at p.i and returns its value, which is valid
// until the next call. Invalid UTF-8 and lone surrogates become U+FFFD, as
// encoding/json decodes them.
func (p *parser) str() ([]byte, bool) {
	p.i++ // "
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.src) {
		c := p.src[p.i]
		if c == '"' {
			s := p.src[start:p.i]
			p.i++
			if isASCII(s) || utf8.Valid(s) {
				return s, true
			}
			p.scratch = bytes.ToValidUTF8(s, []byte("\uFFFD"))
			return p.scratch, true
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.i++
	}
	b := append(p.scratch[:0], p.src[start:p.i]...)
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case c == '"':
			p.i++
			p.scratch = b
			if utf8.Valid(b) {
				return b, true
			}
			p.scratch = bytes.ToValidUTF8(b, []byte("\uFFFD"))
			return p.scratch, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		// escape
		if p.i+1 >= len(p.src) {
			return nil, false
		}
		e := p.src[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, false
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if p.i+1 < len(p.src) && p.src[p.i] == '\\' && p.src[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if x, ok := p.hex4(); ok {
						r2 = x
					} else {
						p.i = save
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						b = utf8.AppendRune(b, d)
						continue
					}
					p.i = save
				}
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
		default:
			return nil, false
		}
	}
	return nil, false
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.src) {
		return 0, false
	}
	var v rune
	for _, c := range p.src[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return v, true
}

// number parses a JSON number and appends its canonical form.
func (p *parser) number(dst []byte) ([]byte, bool) {
	start := p.i
	if p.src[p.i] == '-' {
		p.i++
	}
	intStart := p.i
	for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
		p.i++
	}
	if p.i == intStart || (p.src[intStart] == '0' && p.i-intStart > 1) {
		return dst, false
	}
	if p.i < len(p.src) && p.src[p.i] == '.' {
		p.i++
		fs := p.i
		for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
			p.i++
		}
		if p.i == fs {
			return dst, false
		}
	}
	if p.i < len(p.src) && (p.src[p.i] == 'e' || p.src[p.i] == 'E') {
		p.i++
		if p.i < len(p.src) && (p.src[p.i] == '+' || p.src[p.i] == '-') {
			p.i++
		}
		es := p.i
		for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
			p.i++
		}
		if p.i == es {
			return dst, false
		}
	}
	return AppendCanonicalNumber(dst, p.src[start:p.i]), true
}

// AppendCanonicalNumber appends the canonical form (see
// [AppendCanonicalJSON]) of the valid JSON number literal lit.
func AppendCanonicalNumber(dst, lit []byte) []byte {
	// Fast path: an integer of at most 15 digits is exactly a double, and
	// ECMAScript writes it as it is (minus a negative zero's sign).
	if n := len(lit); n <= 16 {
		digits := lit
		if n > 0 && lit[0] == '-' {
			digits = lit[1:]
		}
		plain := len(digits) > 0 && len(digits) <= 15 && (digits[0] != '0' || len(digits) == 1)
		for _, c := range digits {
			if c < '0' || c > '9' {
				plain = false
				break
			}
		}
		if plain {
			if len(digits) == 1 && digits[0] == '0' {
				return append(dst, '0')
			}
			return append(dst, lit...)
		}
	}
	neg, digits, exp, ok := decimal(lit)
	if !ok {
		// An exponent beyond int64: no database stores it; keep the text.
		return append(dst, lit...)
	}
	if len(digits) == 0 {
		return append(dst, '0') // zero of any sign or form
	}
	if f, err := strconv.ParseFloat(string(lit), 64); err == nil {
		short := strconv.AppendFloat(nil, f, 'e', -1, 64)
		if sn, sd, se, ok := decimal(short); ok && sn == neg && se == exp && bytes.Equal(sd, digits) {
			if s, err := jcs.NumberToJSON(f); err == nil {
				return append(dst, s...)
			}
		}
	}
	// Exact decimal: [-]d[.ddd]e±x.
	if neg {
		dst = append(dst, '-')
	}
	dst = append(dst, digits[0])
	if len(digits) > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	e := exp + int64(len(digits)) - 1
	dst = append(dst, 'e')
	if e >= 0 {
		dst = append(dst, '+')
	}
	return strconv.AppendInt(dst, e, 10)
}

// decimal splits a number literal into sign, significant digits without
// leading or trailing zeros, and the exponent of the last digit: the value
// is ±digits × 10^exp. Zero has no digits.
func decimal(lit []byte) (neg bool, digits []byte, exp int64, ok bool) {
	i := 0
	if i < len(lit) && lit[i] == '-' {
		neg = true
		i++
	} else if i < len(lit) && lit[i] == '+' {
		i++
	}
	var mant []byte
	frac := int64(0)
	for ; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
		mant = append(mant, lit[i])
	}
	if i < len(lit) && lit[i] == '.' {
		i++
		for ; i < len(lit) && lit[i] >= '0' && lit[i] <= '9'; i++ {
			mant = append(mant, lit[i])
			frac++
		}
	}
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		e, err := strconv.ParseInt(string(lit[i+1:]), 10, 64)
		if err != nil || e > 1<<53 || e < -(1<<53) {
			return false, nil, 0, false
		}
		exp = e
	}
	exp -= frac
	// strip leading zeros
	j := 0
	for j < len(mant) && mant[j] == '0' {
		j++
	}
	mant = mant[j:]
	// strip trailing zeros
	k := len(mant)
	for k > 0 && mant[k-1] == '0' {
		k--
	}
	exp += int64(len(mant) - k)
	mant = mant[:k]
	if len(mant) == 0 {
		return false, nil, 0, true
	}
	return neg, mant, exp, true
}

// appendString appends s as an RFC 8785 JSON string: '"' and '\\' escaped,
// control characters as \b \t \n \f \r or \u00xx, everything else as is.
func appendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			const hex = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
