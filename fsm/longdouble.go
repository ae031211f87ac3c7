package fsm

import (
	"math/big"
	"strconv"
	"strings"
)

// INCRBYFLOAT and HINCRBYFLOAT as Redis 7.0 computes them on x86-64: in
// the x87 80-bit long double (a 64-bit mantissa, round to nearest even),
// printed with "%.17Lf" and trailing zeros trimmed. math/big with a
// 64-bit precision rounds every step exactly as the x87 unit does, on
// every architecture, so replicas agree with each other and with Redis.
// (Exponents beyond long double's range, 1e±4932, are not emulated.)

const ldPrec = 64

// parseLongDouble reads a number as Redis's string2ld does (strtold
// over the whole argument): no leading space, no NaN; "inf" is a number.
func parseLongDouble(b []byte) (*big.Float, bool) {
	s := string(b)
	if len(s) == 0 || len(s) > 5*1024 || !ldSyntax(s) {
		return nil, false
	}
	switch strings.ToLower(strings.TrimLeft(s, "+-")) {
	case "inf", "infinity":
		return new(big.Float).SetInf(s[0] == '-'), true
	}
	if f, ok := parseHexFloat(s); ok {
		return f, true
	}
	if len(s) > 2 && (s[1] == 'x' || s[1] == 'X' || len(s) > 3 && (s[2] == 'x' || s[2] == 'X')) {
		return nil, false // a hexadecimal form parseHexFloat refused
	}
	f, _, err := big.ParseFloat(s, 10, ldPrec, big.ToNearestEven)
	if err != nil {
		return nil, false
	}
	return f, true
}

// parseHexFloat reads strtold's hexadecimal form: [+-] 0x hexdigits
// [. hexdigits] [p [+-] digits] (the exponent is optional, unlike Go's).
func parseHexFloat(s string) (*big.Float, bool) {
	neg := false
	if s[0] == '+' || s[0] == '-' {
		neg, s = s[0] == '-', s[1:]
	}
	if len(s) < 3 || s[0] != '0' || s[1] != 'x' && s[1] != 'X' {
		return nil, false
	}
	s = s[2:]
	mant := new(big.Int)
	exp, digits, i := 0, 0, 0
	point := false
	for ; i < len(s); i++ {
		c := s[i]
		var d int
		switch {
		case c >= '0' && c <= '9':
			d = int(c - '0')
		case c >= 'a' && c <= 'f':
			d = int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = int(c-'A') + 10
		case c == '.' && !point:
			point = true
			continue
		default:
			goto tail
		}
		mant.Lsh(mant, 4).Or(mant, big.NewInt(int64(d)))
		digits++
		if point {
			exp -= 4
		}
	}
tail:
	if digits == 0 {
		return nil, false
	}
	if i < len(s) {
		if s[i] != 'p' && s[i] != 'P' {
			return nil, false
		}
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || s[i+1] == '+' && len(s) == i+2 {
			return nil, false
		}
		if e > 1<<20 || e < -(1<<20) {
			return nil, false
		}
		exp += e
	}
	f := new(big.Float).SetPrec(ldPrec).SetMode(big.ToNearestEven).SetInt(mant)
	f.SetMantExp(f, exp)
	if neg {
		f.Neg(f)
	}
	return f, true
}

// ldSyntax accepts strtold's decimal forms: [+-] digits [. digits]
// [e [+-] digits], with digits on at least one side of the point, and
// inf/infinity. Hexadecimal forms are read by parseHexFloat.
func ldSyntax(s string) bool {
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	if len(s) > i+1 && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') {
		return true // parseHexFloat decides
	}
	switch strings.ToLower(s[i:]) {
	case "inf", "infinity":
		return true
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, exp = i+1, exp+1
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// addLongDouble adds in long double precision. ok is false when the sum
// is not finite (Redis: "increment would produce NaN or Infinity").
func addLongDouble(a, b *big.Float) (*big.Float, bool) {
	if a.IsInf() || b.IsInf() {
		return nil, false // inf + x is inf, inf - inf is NaN: both refused
	}
	z := new(big.Float).SetPrec(ldPrec).SetMode(big.ToNearestEven)
	z.Add(a, b)
	// long double's largest finite value is about 1.19e4932.
	if z.MantExp(nil) > 16384 {
		return nil, false
	}
	return z, true
}

// formatLongDouble prints as Redis's ld2string(LD_STR_HUMAN): "%.17Lf",
// trailing zeros and a trailing point removed, "-0" as "0".
func formatLongDouble(f *big.Float) []byte {
	s := f.Text('f', 17)
	if strings.IndexByte(s, '.') >= 0 {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return []byte(s)
}
