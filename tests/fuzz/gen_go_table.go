// SPDX-License-Identifier: MIT
//
// gen_go_table writes tests/parse_go_table.h: what Go's own
// time.ParseDuration and Duration.String say for a few hundred inputs,
// which tests/t_parse.c holds ctx_parse_duration and ctx_format_duration
// to. Go is the reference; two independent checks stand beside it:
//
//   - a strict grammar (a regular expression) sorts Go's errors into
//     EINVAL (malformed) and ERANGE (well-formed but too large), and must
//     agree with Go on every input it accepts;
//   - exact rational arithmetic (math/big) must agree with Go's value to
//     within a nanosecond per component; where it does not, Go's uint64
//     sum wrapped, and the entry expects ERANGE with go_wraps set.
//
// Run from the top of the tree, offline (standard library only):
//
//	GO111MODULE=off GOFLAGS= go run tests/fuzz/gen_go_table.go \
//	    > tests/parse_go_table.h
package main

import (
	"bufio"
	"fmt"
	"math"
	"math/big"
	"math/rand"
	"os"
	"regexp"
	"runtime"
	"strings"
	"time"
)

var grammar = regexp.MustCompile(
	`^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`)

var component = regexp.MustCompile(
	`([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)`)

var unitNs = map[string]int64{
	"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6,
	"s": 1e9, "m": 60e9, "h": 3600e9,
}

// The exact value of a well-formed duration and its number of components.
func exact(s string) (*big.Rat, int) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	sum := new(big.Rat)
	comps := component.FindAllStringSubmatch(s, -1)
	for _, c := range comps {
		num := c[1]
		if strings.HasPrefix(num, ".") {
			num = "0" + num
		}
		num = strings.TrimSuffix(num, ".")
		r, ok := new(big.Rat).SetString(num)
		if !ok {
			panic("exact: " + s)
		}
		sum.Add(sum, r.Mul(r, big.NewRat(unitNs[c[2]], 1)))
	}
	if neg {
		sum.Neg(sum)
	}
	return sum, len(comps)
}

// C string literal, octal escapes for everything but plain ASCII.
func cstr(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\' || c == '?':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "\\%03o", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func cint(v int64) string {
	if v == math.MinInt64 {
		return "INT64_MIN"
	}
	return fmt.Sprintf("%dLL", v)
}

var handPicked = []string{
	// valid
	"0", "+0", "-0", "0s", "1ns", "1us", "1µs", "1μs", "1ms", "1s", "1m",
	"1h", "300ms", "-1.5h", "2h45m", "1.5us", "1h2m3.5s", "250ms",
	"1.s", ".5s", "+5s", "-.5s", "0.5m", "1.5h", "10h", "1h1h", "1s1s",
	"1m60s", "0ns", "0.0s", "00s", "000000000000000000000000000001ns",
	"1.0000000000000000000000000001h", "0.12960430000000m",
	"1.000000001s", "1.0000000001s", "1.9999999999s", "0.999999999ns",
	"3.5ns", "1.5µs", "1.001ms", "2562047h", "2562047h47m",
	"2562047h47m16.854775807s", "-2562047h47m16.854775808s",
	"9223372036854775807ns", "-9223372036854775808ns",
	"9223372036854775us", "9223372036854ms", "9223372036s",
	"153722867m", "0.9223372036854775807s", "1h0m0s", "5m0.001s",
	"1.5m1.5s1.5ms1.5us1.5ns", "3µs4μs5us",
	// fractions where Go stops keeping precision, at each of its bounds
	"0.9223372036854775807s", "0.9223372036854775808s",
	"0.9223372036854775809s", "0.92233720368547758099h",
	"1.9999999999999999999999h",
	"0.00000000000000000000000000000000000000001h",
	// malformed
	"", "+", "-", "s", "1", "12", "00", "01", ".", ".s", "-.s", "1.2.3s",
	"1d", "1w", "1y", "1S", "1H", "1Ms", "1sec", "1 s", " 1s", "1s ",
	"1s\t", "\t1s", "1e3s", "1e3", "0x10s", "inf", "infs", "nan", "NaN",
	"1ss", "1hm", "1mm", "s1", "1s1", "1s.", "1s-1s", "--1s", "+-1s",
	"-+1s", "1..5s", "1.5.s", "1,5s", "µs", "1µ", "1\265s", "1\302s",
	"1\316s", "1\316\274", "1us\302\265", "1\357\274\221s", "١s",
	"0 ", " 0", "+ 0", "0s0", "0.", "-0.", "1s ", "\x01", "1\x7fs",
	"99999999999999999999x", "1.0.0", "ns", "h", "1hh", "1.h.",
	// overflow (well-formed)
	"9223372036854775808ns", "-9223372036854775809ns",
	"2562047h47m16.854775808s", "2562048h", "-2562048h",
	"99999999999999999999s", "99999999999999999999ns",
	"18446744073709551616ns", "18446744073709551615ns",
	"9223372036854775807ns1ns", "-9223372036854775808ns1ns",
	"9223372036854775808ns9223372036854775808ns",
	"-9223372036854775808ns9223372036854775808ns",
	"9223372036854775807ns9223372036854775807ns",
	"4611686018427387904ns4611686018427387904ns",
	"4611686018427387904ns4611686018427387903ns",
	"-4611686018427387904ns4611686018427387904ns",
	"9223372036854776us", "9223372036855ms", "9223372037s", "153722868m",
	"2562047.8h", "2562047.7h", "2562047.79h", "2562047.788h",
	"1000000000000000000000.5s", "1.5h99999999999999999999x",
}

// Random inputs around the grammar: well-formed strings and mutations.
func generated(rng *rand.Rand) []string {
	units := []string{"ns", "us", "µs", "μs", "ms", "s", "m", "h"}
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.Intn(10))
		}
		return string(b)
	}
	// Mostly short numbers (valid), now and then long ones (overflow).
	length := func() int {
		if rng.Intn(5) == 0 {
			return rng.Intn(22)
		}
		return rng.Intn(8)
	}
	wellFormed := func() string {
		var b strings.Builder
		switch rng.Intn(4) {
		case 0:
			b.WriteByte('-')
		case 1:
			b.WriteByte('+')
		}
		for n := 1 + rng.Intn(4); n > 0; n-- {
			b.WriteString(digits(length()))
			if rng.Intn(2) == 0 {
				b.WriteByte('.')
				b.WriteString(digits(length()))
			}
			b.WriteString(units[rng.Intn(len(units))])
		}
		return b.String()
	}
	alphabet := []string{" ", "e", "+", "-", ".", "x", "0", "9", "s",
		"m", "\xb5", "\xc2", "\xce", "\xff", "\t", "d"}
	mutate := func(s string) string {
		if s == "" {
			return alphabet[rng.Intn(len(alphabet))]
		}
		i := rng.Intn(len(s))
		a := alphabet[rng.Intn(len(alphabet))]
		switch rng.Intn(3) {
		case 0:
			return s[:i] + a + s[i:]
		case 1:
			return s[:i] + s[i+1:]
		default:
			return s[:i] + a + s[i+1:]
		}
	}
	var out []string
	for i := 0; i < 300; i++ {
		out = append(out, wellFormed())
	}
	for i := 0; i < 150; i++ {
		out = append(out, mutate(wellFormed()))
	}
	// Near the bounds: hours, minutes, seconds, ns around 2^63.
	for i := 0; i < 50; i++ {
		ns := uint64(1<<63) - 50 + uint64(rng.Intn(100))
		sign := []string{"", "-"}[rng.Intn(2)]
		out = append(out, fmt.Sprintf("%s%dns", sign, ns))
		h := ns / 3600e9
		rest := float64(ns%3600e9) / 1e9
		out = append(out, fmt.Sprintf("%s%dh%.9fs", sign, h, rest))
	}
	return out
}

func formatCases(rng *rand.Rand) []int64 {
	v := []int64{0, 1, -1, 999, -999, 1000, -1000, 1001, 1500, 999999,
		1000000, -1000000, 1000001, 999999999, 1000000000, -1000000000,
		1000000001, 59999999999, 60000000000, 3599999999999,
		3600000000000, 3600000000001, 86400000000000,
		math.MaxInt64, math.MinInt64, math.MinInt64 + 1,
		math.MaxInt64 - 1, 1<<62, -(1 << 62)}
	for i := 0; i < 200; i++ {
		x := int64(rng.Uint64()) >> uint(rng.Intn(63))
		v = append(v, x)
	}
	return v
}

func main() {
	rng := rand.New(rand.NewSource(20240601))
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	inputs := append(append([]string{}, handPicked...), generated(rng)...)
	seen := map[string]bool{}
	wraps := 0

	fmt.Fprintf(w, `/* SPDX-License-Identifier: MIT */
/*
 * Generated by tests/fuzz/gen_go_table.go with %s: do not edit.
 * Go's time.ParseDuration and Duration.String on each input; rc is Go's
 * verdict with its errors sorted by a strict grammar into EINVAL
 * (malformed) and ERANGE (well-formed, too large). go_wraps marks the
 * inputs where Go's uint64 sum wraps and Go returns a value: ERANGE here.
 */
#ifndef CTX_TEST_PARSE_GO_TABLE_H
#define CTX_TEST_PARSE_GO_TABLE_H

#include <errno.h>
#include <stdint.h>

struct go_parse_case {
    const char *in;
    int rc;
    int64_t ns;
    int go_wraps;
};

struct go_format_case {
    int64_t ns;
    const char *text;
};

/* clang-format off */
static const struct go_parse_case go_parse_cases[] = {
`, runtime.Version())
	n := 0
	for _, s := range inputs {
		if seen[s] {
			continue
		}
		seen[s] = true
		d, err := time.ParseDuration(s)
		wellFormed := grammar.MatchString(s)
		rc, ns, wrap := "0", int64(d), 0
		switch {
		case err != nil && wellFormed:
			if strings.Contains(err.Error(), "unit") {
				panic("grammar accepts what Go calls a unit error: " + s)
			}
			rc, ns = "ERANGE", 0
		case err != nil:
			rc, ns = "EINVAL", 0
		case !wellFormed:
			panic("Go accepts what the grammar refuses: " + s)
		default:
			ex, comps := exact(s)
			diff := new(big.Rat).Sub(ex, new(big.Rat).SetInt64(int64(d)))
			if diff.Abs(diff).Cmp(big.NewRat(int64(comps), 1)) > 0 {
				rc, ns, wrap = "ERANGE", 0, 1
				wraps++
			}
		}
		fmt.Fprintf(w, "    {%s, %s, %s, %d},\n", cstr(s), rc, cint(ns), wrap)
		n++
	}
	if wraps == 0 {
		panic("no wrapping input: the check above proves nothing")
	}
	fmt.Fprintf(w, "};\n\nstatic const struct go_format_case go_format_cases[] = {\n")
	for _, v := range formatCases(rng) {
		fmt.Fprintf(w, "    {%s, %s},\n", cint(v), cstr(time.Duration(v).String()))
	}
	fmt.Fprintf(w, "};\n/* clang-format on */\n\n#endif /* CTX_TEST_PARSE_GO_TABLE_H */\n")
	fmt.Fprintf(os.Stderr, "gen_go_table: %d parse cases (%d wrap in Go)\n", n, wraps)
}
