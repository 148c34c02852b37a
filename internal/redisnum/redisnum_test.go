package redisnum

import (
	"math"
	"strconv"
	"testing"
)

func TestParseInt(t *testing.T) {
	for _, c := range []struct {
		in string
		v  int64
		ok bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"-42", -42, true},
		{"9223372036854775807", math.MaxInt64, true}, {"-9223372036854775808", math.MinInt64, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false}, {"99999999999999999999", 0, false},
		{"", 0, false}, {"-", 0, false}, {"-0", 0, false}, {"01", 0, false}, {"+1", 0, false}, {" 1", 0, false},
		{"1 ", 0, false}, {"1.5", 0, false}, {"abc", 0, false}, {"123456789012345678901", 0, false},
	} {
		if v, ok := ParseInt([]byte(c.in)); v != c.v || ok != c.ok {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, %v", c.in, v, ok, c.v, c.ok)
		}
	}
	if a := testing.AllocsPerRun(100, func() { ParseInt([]byte("-1234567")) }); a != 0 {
		t.Errorf("ParseInt allocates %v times", a)
	}
}

// TestFloat checks parsing, sums and printing against what redis-server
// 7.0 on x86-64 answers (its long double arithmetic).
func TestFloat(t *testing.T) {
	for _, c := range []struct{ a, b, want string }{
		{"10.5", "0.1", "10.6"},
		{"10.6", "-5", "5.6"},
		{"5.6", "5.0e3", "5005.60000000000000009"},
		{"5005.60000000000000009", "2e-3", "5005.60199999999999987"},
		{"3", "0", "3"},
		{"0", "1e-400", "0"},
		{"0", ".5", "0.5"},
		{"0", "5.", "5"},
		{"0", "+3", "3"},
		{"0", "0x10", "16"},
		{"-1", "1", "0"},
		{"-49", "1.5", "-47.5"},
	} {
		a, ok1 := ParseFloat([]byte(c.a))
		b, ok2 := ParseFloat([]byte(c.b))
		if !ok1 || !ok2 {
			t.Fatalf("ParseFloat(%q) %v, ParseFloat(%q) %v", c.a, ok1, c.b, ok2)
		}
		r, ok := AddFloat(a, b)
		if !ok || string(FormatFloat(r)) != c.want {
			t.Errorf("%s + %s = %s (%v), want %s", c.a, c.b, FormatFloat(r), ok, c.want)
		}
	}
	for _, bad := range []string{"", "abc", "nan", "NaN", " 1", "1 ", "1_0", "0x1_0", "1p3", "1e5000", ".", "--1", "1e", "\t1"} {
		if _, ok := ParseFloat([]byte(bad)); ok {
			t.Errorf("ParseFloat(%q) accepted", bad)
		}
	}
	for _, inf := range []string{"inf", "-inf", "Infinity", "+INF"} {
		f, ok := ParseFloat([]byte(inf))
		if !ok || !f.IsInf() {
			t.Fatalf("ParseFloat(%q) = %v, %v", inf, f, ok)
		}
		one, _ := ParseFloat([]byte("1"))
		if _, ok := AddFloat(one, f); ok {
			t.Errorf("1 + %s is finite", inf)
		}
	}
	big1, _ := ParseFloat([]byte("1e4932"))
	if _, ok := AddFloat(big1, big1); ok {
		t.Error("1e4932 + 1e4932 does not overflow a long double")
	}
}

// FuzzParse: no input panics the parsers, an accepted integer is the
// canonical form of its value, and a parsed float sums and prints.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "-1", "9223372036854775807", "1.5", "5.0e3", "0x1p4", "inf", "-0", "1e5000", "."} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, ok := ParseInt(b); ok && strconv.FormatInt(v, 10) != string(b) {
			t.Fatalf("ParseInt(%q) = %d, not its canonical form", b, v)
		}
		if x, ok := ParseFloat(b); ok {
			if r, ok := AddFloat(x, x); ok {
				if _, ok := ParseFloat(FormatFloat(r)); !ok {
					t.Fatalf("FormatFloat(%q + itself) = %q does not parse back", b, FormatFloat(r))
				}
			}
		}
	})
}
