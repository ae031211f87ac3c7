package fsm

import (
	"math"
	"strconv"
	"strings"
)

// Scores as Redis 7.0 reads and prints them. Redis reads a score with C's
// strtod (so "inf", "-Infinity", hex floats such as "0x1p-2" and leading
// blanks in range bounds are numbers to it) and prints one with "%.17g"
// (addReplyDouble), or, inside a small sorted set's encoding (ZSCAN), as
// an integer when the score is one. Go's strconv differs in each of these
// details, so they are spelled out here.

// strtod emulates glibc's strtod on s: the value and how many bytes it
// consumed (0: no number), and whether the value over- or underflowed
// (errno ERANGE).
func strtod(s string) (v float64, n int, erange bool) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	start := i
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	sign := 1.0
	if neg {
		sign = -1
	}
	rest := strings.ToLower(s[i:min(len(s), i+8)])
	switch {
	case strings.HasPrefix(rest, "infinity"):
		return math.Inf(int(sign)), i + 8, false
	case strings.HasPrefix(rest, "inf"):
		return math.Inf(int(sign)), i + 3, false
	case strings.HasPrefix(rest, "nan"):
		j := i + 3
		if j < len(s) && s[j] == '(' {
			k := j + 1
			for k < len(s) && (isAlnum(s[k]) || s[k] == '_') {
				k++
			}
			if k < len(s) && s[k] == ')' {
				j = k + 1
			}
		}
		return math.NaN(), j, false
	}
	if i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') {
		if v, n, er, ok := strtodHex(s, i+2, neg); ok {
			return v, n, er
		}
		// "0x" without hex digits: the "0" alone is the number.
		return 0 * sign, i + 1, false
	}
	j := i
	digits, nonzero := 0, false
	for j < len(s) && isDigit(s[j]) {
		digits++
		nonzero = nonzero || s[j] != '0'
		j++
	}
	if j < len(s) && s[j] == '.' {
		j++
		for j < len(s) && isDigit(s[j]) {
			digits++
			nonzero = nonzero || s[j] != '0'
			j++
		}
	}
	if digits == 0 {
		return 0, 0, false
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			j = k
		}
	}
	f, err := strconv.ParseFloat(s[start:j], 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, 0, false // not reached: the text is a well-formed number
	}
	return f, j, math.IsInf(f, 0) || f == 0 && nonzero
}

// strtodHex reads the hex mantissa at s[i:] (after "0x") and an optional
// binary exponent.
func strtodHex(s string, i int, neg bool) (float64, int, bool, bool) {
	j := i
	var mant strings.Builder
	digits, nonzero := 0, false
	for j < len(s) && isHex(s[j]) {
		mant.WriteByte(s[j])
		digits++
		nonzero = nonzero || s[j] != '0'
		j++
	}
	if j < len(s) && s[j] == '.' {
		mant.WriteByte('.')
		j++
		for j < len(s) && isHex(s[j]) {
			mant.WriteByte(s[j])
			digits++
			nonzero = nonzero || s[j] != '0'
			j++
		}
	}
	if digits == 0 {
		return 0, 0, false, false
	}
	exp := "p0"
	if j < len(s) && (s[j] == 'p' || s[j] == 'P') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			exp = "p" + s[j+1:k]
			j = k
		}
	}
	text := "0x" + mant.String() + exp
	if neg {
		text = "-" + text
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, 0, false, false
	}
	return f, j, math.IsInf(f, 0) || f == 0 && nonzero, true
}

func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }
func isAlnum(c byte) bool { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'z' }

// parseScore reads a score as Redis's string2d does (ZADD, ZINCRBY,
// WEIGHTS): the whole argument a number, no leading blank, no overflow or
// underflow to zero, not NaN.
func parseScore(b []byte) (float64, bool) {
	if len(b) == 0 || isSpace(b[0]) {
		return 0, false
	}
	v, n, erange := strtod(string(b))
	if n != len(b) || math.IsNaN(v) || erange && (math.IsInf(v, 0) || v == 0) {
		return 0, false
	}
	return v, true
}

// scoreRange is a ZRANGEBYSCORE interval; an exclusive end leaves its
// bound out.
type scoreRange struct {
	min, max     float64
	minex, maxex bool
}

// parseScoreRange reads min and max as Redis's zslParseRange does: '('
// makes an end exclusive, and the rest is strtod's, up to the first NUL
// byte (so blanks before the number, an empty bound, "1e999" are taken).
func parseScoreRange(lo, hi []byte) (scoreRange, bool) {
	var r scoreRange
	var ok1, ok2 bool
	r.min, r.minex, ok1 = parseBound(lo)
	r.max, r.maxex, ok2 = parseBound(hi)
	return r, ok1 && ok2
}

func parseBound(b []byte) (float64, bool, bool) {
	s := string(b)
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	ex := strings.HasPrefix(s, "(")
	if ex {
		s = s[1:]
	}
	v, n, _ := strtod(s)
	if n != len(s) || math.IsNaN(v) {
		return 0, false, false
	}
	return v, ex, true
}

func (r scoreRange) empty() bool {
	return r.min > r.max || r.min == r.max && (r.minex || r.maxex)
}
func (r scoreRange) gteMin(s float64) bool { return s > r.min || !r.minex && s == r.min }
func (r scoreRange) lteMax(s float64) bool { return s < r.max || !r.maxex && s == r.max }

// lexBound is one end of a ZRANGEBYLEX interval: "-" (inf -1), "+" (inf
// 1), "[m" or "(m" (exclusive).
type lexBound struct {
	s   string
	ex  bool
	inf int8
}

type lexRange struct{ min, max lexBound }

func parseLexBound(b []byte) (lexBound, bool) {
	if len(b) == 0 {
		return lexBound{}, false
	}
	switch b[0] {
	case '+', '-':
		if len(b) != 1 {
			return lexBound{}, false
		}
		if b[0] == '+' {
			return lexBound{inf: 1, ex: true}, true
		}
		return lexBound{inf: -1, ex: true}, true
	case '(', '[':
		return lexBound{s: string(b[1:]), ex: b[0] == '('}, true
	}
	return lexBound{}, false
}

func parseLexRange(lo, hi []byte) (lexRange, bool) {
	a, ok1 := parseLexBound(lo)
	b, ok2 := parseLexBound(hi)
	return lexRange{a, b}, ok1 && ok2
}

// cmpLex compares two bounds as Redis's sdscmplex: "-" below everything,
// "+" above.
func cmpLex(a, b lexBound) int {
	switch {
	case a.inf == b.inf && a.inf != 0:
		return 0
	case a.inf == -1 || b.inf == 1:
		return -1
	case a.inf == 1 || b.inf == -1:
		return 1
	}
	return strings.Compare(a.s, b.s)
}

func (r lexRange) empty() bool {
	c := cmpLex(r.min, r.max)
	return c > 0 || c == 0 && (r.min.ex || r.max.ex)
}

func (r lexRange) gteMin(m string) bool {
	switch r.min.inf {
	case -1:
		return true
	case 1:
		return false
	}
	return m > r.min.s || !r.min.ex && m == r.min.s
}

func (r lexRange) lteMax(m string) bool {
	switch r.max.inf {
	case 1:
		return true
	case -1:
		return false
	}
	return m < r.max.s || !r.max.ex && m == r.max.s
}

// FormatDouble prints a double as Redis 7.0's addReplyDouble does: "%.17g",
// and "inf" / "-inf". The fronts use it for RESP2 bulk strings and RESP3
// doubles.
func FormatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', 17, 64)
}

// formatScoreCompact prints a score as Redis 7.0's d2string (the form a
// small sorted set stores, which ZSCAN returns): an integer when it is
// one within ±2^62, "-0" for negative zero, else "%.17g".
func formatScoreCompact(f float64) string {
	const lim = float64(math.MaxInt64 / 2)
	if f == 0 && math.Signbit(f) {
		return "-0"
	}
	if f >= -lim && f <= lim && f == math.Trunc(f) {
		return strconv.FormatInt(int64(f), 10)
	}
	return FormatDouble(f)
}
