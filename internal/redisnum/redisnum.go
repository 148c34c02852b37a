// Package redisnum parses and formats numbers the way Redis' string
// commands do, so that INCR, INCRBYFLOAT and the commands taking integer
// arguments accept, refuse and print exactly what a redis-server does. It
// owns only the number rules, none of the commands.
//
// Integers are Redis' string2ll: an optional '-', no '+', no spaces, no
// leading zeros, at most 20 bytes, within int64. Floats are Redis'
// string2ld and ld2string on x86-64, where Redis computes INCRBYFLOAT in
// the 80-bit x87 long double: a 64-bit mantissa, an exponent up to 16383,
// results printed with 17 digits after the point and trailing zeros cut
// ("%.17Lf"). math/big emulates that precision exactly.
package redisnum

import (
	"math"
	"math/big"
	"strings"
)

// ParseInt parses b as Redis' string2ll does. It does not allocate.
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := false
	if b[0] == '-' {
		neg, b = true, b[1:]
		if len(b) == 0 || b[0] == '0' {
			return 0, false // "-" and "-0..." are not integers to Redis
		}
	}
	if len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	var n uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		d := uint64(ch - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// longDoublePrec is the x87 extended mantissa, in bits; maxExp bounds the
// exponent of a finite long double (|x| < 2^16384).
const (
	longDoublePrec = 64
	maxExp         = 16384
	maxFloatBytes  = 5000 // Redis' MAX_LONG_DOUBLE_CHARS
)

// ParseFloat parses b as Redis' string2ld does (strtold on the whole
// string): decimal or hexadecimal, with an exponent, "inf" and "infinity"
// in any case; no spaces around it, no NaN, nothing that overflows a long
// double. The value is rounded to a long double's precision.
func ParseFloat(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) > maxFloatBytes || isSpace(b[0]) || isSpace(b[len(b)-1]) {
		return nil, false
	}
	s := string(b)
	body, neg := s, false
	if body[0] == '+' || body[0] == '-' {
		neg, body = body[0] == '-', body[1:]
	}
	if l := strings.ToLower(body); l == "inf" || l == "infinity" {
		return new(big.Float).SetInf(neg), true
	}
	base := 10 // big.Float.Parse refuses '_' then, as strtold does
	if strings.HasPrefix(body, "0x") || strings.HasPrefix(body, "0X") {
		base = 0 // reads the prefix and a 'p' exponent; '_' must be refused by hand
		if strings.IndexByte(body, '_') >= 0 {
			return nil, false
		}
	} else if strings.IndexAny(body, "pP") >= 0 {
		return nil, false // a binary exponent needs the hexadecimal form
	}
	f, _, err := new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).Parse(s, base)
	if err != nil || f.IsInf() || f.MantExp(nil) > maxExp {
		return nil, false
	}
	return f, true
}

func isSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// AddFloat returns a + b in long double precision, and false when the sum
// is not finite (Redis: "increment would produce NaN or Infinity").
func AddFloat(a, b *big.Float) (*big.Float, bool) {
	if a.IsInf() || b.IsInf() {
		return nil, false
	}
	r := new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).Add(a, b)
	if r.MantExp(nil) > maxExp {
		return nil, false
	}
	return r, true
}

// FormatFloat prints f as Redis' ld2string in its human mode: 17 digits
// after the point, trailing zeros (and a bare point) removed, "-0" as "0".
func FormatFloat(f *big.Float) []byte {
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
