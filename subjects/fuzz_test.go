package subjects

import (
	"strings"
	"testing"
)

func FuzzPathRoundTrip(f *testing.F) {
	for _, s := range []string{
		"/events/orders/eu/created", "/events/%2A/x", "/a/%3E", "/a/b%2Fc", "/a//b", "/a/b/",
		"/a/../b", "/a/%zz", "/caf%C3%A9", "/%25", "/a b", "/%00", "/a/>/b",
		"events.orders", "a.*.>", "a..b", "a/b", "%", "a.%2A", "*", ">", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if subj, err := FromPath(s); err == nil {
			if err := ValidatePattern(subj); err != nil {
				t.Fatalf("FromPath(%q) = %q, which ValidatePattern rejects: %v", s, subj, err)
			}
			if got, err := FromPath(ToPath(subj)); err != nil || got != subj {
				t.Fatalf("FromPath(ToPath(%q)) = %q, %v; want %q (ToPath = %q)", subj, got, err, subj, ToPath(subj))
			}
		}
		// A pattern round-trips exactly when it is valid.
		got, err := FromPath(ToPath(s))
		valid := ValidatePattern(s) == nil
		if valid && (err != nil || got != s) {
			t.Fatalf("FromPath(ToPath(%q)) = %q, %v; want %q (ToPath = %q)", s, got, err, s, ToPath(s))
		}
		if !valid && err == nil {
			t.Fatalf("FromPath(ToPath(%q)) = %q for an invalid pattern; want an error", s, got)
		}
	})
}

// alphabet is the small token set the brute-force fuzz targets draw from.
var alphabet = [...]string{"a", "b", "c", "*", ">"}

// fuzzPattern turns up to max bytes into a valid pattern over alphabet,
// ending it at the first ">"; it returns "" for no bytes.
func fuzzPattern(b []byte, max int) string {
	var toks []string
	for _, c := range b[:min(len(b), max)] {
		tok := alphabet[int(c)%len(alphabet)]
		toks = append(toks, tok)
		if tok == fwc {
			break
		}
	}
	return strings.Join(toks, ".")
}

// refMatch is Match written the obvious way, to check Match against.
func refMatch(p, s []string) bool {
	switch {
	case len(p) == 0:
		return len(s) == 0
	case p[0] == fwc:
		return len(s) > 0
	case len(s) == 0:
		return false
	}
	return (p[0] == pwc || p[0] == s[0]) && refMatch(p[1:], s[1:])
}

// literals returns every subject of 1 to n tokens over a, b, c and z, where z
// appears in no pattern: it stands for every token a pattern does not name
// (patterns treat all such tokens alike), so the alphabet is exact.
//
// The length bound is exact too, although ">" matches subjects of any
// length. "x inside y" fails only if some subject s matches x but not y.
// If s is longer than n = max(len x, len y) + 1, cut it to n tokens: x still
// matches (x must end in ">" to match s, and its tokens before ">" are a
// prefix of both), and y still does not: y's tokens, at most n-1, see the same
// prefix; a y ending in ">" still fails on that prefix, and a y without ">"
// has fewer than n tokens, so it still differs in length. The cut s is a
// witness of at most n tokens. (n = max length would not do: x = ">" against
// y = "*" needs a subject of 2 tokens.) The same cut keeps a subject that
// both match for Overlap.
func literals(n int) [][]string {
	var out [][]string
	cur := [][]string{{}}
	for range n {
		var next [][]string
		for _, s := range cur {
			for _, tok := range []string{"a", "b", "c", "z"} {
				next = append(next, append(append([]string(nil), s...), tok))
			}
		}
		out = append(out, next...)
		cur = next
	}
	return out
}

// TestInsideExhaustive checks Inside and AllInside against the brute-force
// definition for every pair of well-formed patterns of up to 3 tokens over
// a, b, "*" and ">", so that go test covers what FuzzInside samples.
func TestInsideExhaustive(t *testing.T) {
	var patterns [][]string
	var grow func(p []string)
	grow = func(p []string) {
		if len(p) > 0 {
			patterns = append(patterns, p)
		}
		if len(p) == 3 || (len(p) > 0 && p[len(p)-1] == fwc) {
			return
		}
		for _, tok := range []string{"a", "b", pwc, fwc} {
			grow(append(append([]string(nil), p...), tok))
		}
	}
	grow(nil)
	subjects := literals(4)
	inside, outside := 0, 0
	for _, xs := range patterns {
		for _, ys := range patterns {
			want := true
			for _, s := range subjects {
				if refMatch(xs, s) && !refMatch(ys, s) {
					want = false
					break
				}
			}
			x, y := strings.Join(xs, "."), strings.Join(ys, ".")
			if got := Inside(x, y); got != want {
				t.Errorf("Inside(%q, %q) = %v; brute force says %v", x, y, got, want)
			}
			if _, got := AllInside([]string{x}, []string{"c", y}); got != want {
				t.Errorf("AllInside([%q], [c %q]) = %v; brute force says %v", x, y, got, want)
			}
			if want {
				inside++
			} else {
				outside++
			}
		}
	}
	if len(patterns) != 52 || inside == 0 || outside == 0 {
		t.Fatalf("%d patterns, %d pairs inside, %d outside; want 52 patterns and both kinds of pairs", len(patterns), inside, outside)
	}
}

func FuzzInside(f *testing.F) {
	f.Add([]byte{0, 1}, []byte{0, 4})    // a.b in a.>
	f.Add([]byte{0, 3}, []byte{0, 4})    // a.* in a.>
	f.Add([]byte{0, 4}, []byte{0, 3})    // a.> not in a.*
	f.Add([]byte{3, 3, 4}, []byte{4})    // *.*.> in >
	f.Add([]byte{0}, []byte{0, 4})       // a not in a.>
	f.Add([]byte{4}, []byte{3})          // > not in *
	f.Add([]byte{0, 1, 2}, []byte{3, 1}) // length mismatch
	f.Fuzz(func(t *testing.T, xb, yb []byte) {
		x, y := fuzzPattern(xb, 4), fuzzPattern(yb, 4)
		if x == "" || y == "" {
			return
		}
		xs, ys := strings.Split(x, "."), strings.Split(y, ".")
		want := true
		for _, s := range literals(max(len(xs), len(ys)) + 1) {
			mx, my := refMatch(xs, s), refMatch(ys, s)
			if subj := strings.Join(s, "."); Match(x, subj) != mx || Match(y, subj) != my {
				t.Fatalf("Match disagrees with refMatch on %q or %q against %q", x, y, subj)
			}
			if mx && !my {
				want = false
				break
			}
		}
		if got := Inside(x, y); got != want {
			t.Fatalf("Inside(%q, %q) = %v; brute force says %v", x, y, got, want)
		}
	})
}

func FuzzOverlap(f *testing.F) {
	f.Add([]byte{0, 3, 2}, []byte{0, 1, 3}) // a.*.c and a.b.*
	f.Add([]byte{0, 1}, []byte{0, 2})       // a.b and a.c
	f.Add([]byte{0, 4}, []byte{0})          // a.> and a
	f.Add([]byte{4}, []byte{3, 3})          // > and *.*
	f.Fuzz(func(t *testing.T, ab, bb []byte) {
		a, b := fuzzPattern(ab, 4), fuzzPattern(bb, 4)
		if a == "" || b == "" {
			return
		}
		as, bs := strings.Split(a, "."), strings.Split(b, ".")
		want := false
		for _, s := range literals(max(len(as), len(bs)) + 1) {
			if refMatch(as, s) && refMatch(bs, s) {
				want = true
				break
			}
		}
		if got := Overlap(a, b); got != want {
			t.Fatalf("Overlap(%q, %q) = %v; brute force says %v", a, b, got, want)
		}
		if got := Overlap(b, a); got != want {
			t.Fatalf("Overlap(%q, %q) = %v; brute force says %v", b, a, got, want)
		}
	})
}

// FuzzIndexAgainstBruteForce runs a program of inserts, removes and matches,
// read from the input bytes, against an Index and a plain set of pairs.
func FuzzIndexAgainstBruteForce(f *testing.F) {
	f.Add([]byte{0, 2, 0, 1, 0, 0, 3, 4, 1, 2, 2, 0, 1})
	f.Add([]byte{0, 1, 4, 0, 0, 1, 4, 1, 2, 1, 0, 1, 1, 4, 0})
	f.Add([]byte{0, 3, 3, 3, 4, 2, 0, 2, 3, 0, 1, 2, 1, 3, 3, 3, 4, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		type pair struct {
			p string
			v int
		}
		ix := NewIndex[int]()
		model := map[pair]bool{}
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			c := int(data[0])
			data = data[1:]
			return c
		}
		for len(data) > 0 {
			op, n := next()%3, next()%4+1
			toks := data[:min(n, len(data))]
			data = data[len(toks):]
			switch op {
			case 0, 1:
				p, v := fuzzPattern(toks, 4), next()%3
				if p == "" {
					continue
				}
				k := pair{p, v}
				if op == 0 {
					ix.Insert(p, v)
					model[k] = true
				} else if got := ix.Remove(p, v); got != model[k] {
					t.Fatalf("Remove(%q, %d) = %v; want %v", p, v, got, model[k])
				} else {
					delete(model, k)
				}
			case 2:
				var s []string
				for _, c := range toks {
					s = append(s, alphabet[int(c)%3])
				}
				if len(s) == 0 {
					continue
				}
				subj := strings.Join(s, ".")
				want := map[int]int{}
				for k := range model {
					if Match(k.p, subj) {
						want[k.v]++
					}
				}
				got := map[int]int{}
				ix.Match(subj, func(v int) { got[v]++ })
				if len(got) != len(want) {
					t.Fatalf("Match(%q) = %v; want %v (patterns %v)", subj, got, want, model)
				}
				for v, c := range want {
					if got[v] != c {
						t.Fatalf("Match(%q) = %v; want %v (patterns %v)", subj, got, want, model)
					}
				}
			}
			if ix.Len() != len(model) {
				t.Fatalf("Len() = %d; want %d", ix.Len(), len(model))
			}
		}
		for k := range model {
			if !ix.Remove(k.p, k.v) {
				t.Fatalf("Remove(%q, %d) = false for a stored pair", k.p, k.v)
			}
		}
		if ix.Len() != 0 || ix.numNodes() != 0 {
			t.Fatalf("after removing all: Len() = %d, numNodes() = %d; want 0, 0", ix.Len(), ix.numNodes())
		}
	})
}
