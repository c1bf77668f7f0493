package subjects

import (
	"slices"
	"strings"
	"testing"
)

// matches returns the values Match reports for subject, sorted.
func matches(ix *Index[string], subject string) []string {
	var got []string
	ix.Match(subject, func(v string) { got = append(got, v) })
	slices.Sort(got)
	return got
}

func TestIndexMatch(t *testing.T) {
	ix := NewIndex[string]()
	for _, p := range []string{
		"events.users.42.inbox",
		"events.users.42.*",
		"events.users.42.>",
		"events.users.*.inbox",
		"events.*.*.inbox",
		"events.>",
		">",
		"*",
		"events",
		"events.users",
		"orders.*",
	} {
		ix.Insert(p, p)
	}
	tests := []struct {
		subject string
		want    []string
	}{
		{"events.users.42.inbox", []string{">", "events.*.*.inbox", "events.>", "events.users.*.inbox", "events.users.42.*", "events.users.42.>", "events.users.42.inbox"}},
		{"events.users.43.inbox", []string{">", "events.*.*.inbox", "events.>", "events.users.*.inbox"}},
		{"events.users.42.inbox.x", []string{">", "events.>", "events.users.42.>"}},
		{"events.users.42", []string{">", "events.>"}},
		{"events.users", []string{">", "events.>", "events.users"}},
		{"events", []string{"*", ">", "events"}},
		{"orders", []string{"*", ">"}},
		{"orders.x", []string{">", "orders.*"}},
		{"x.y.z", []string{">"}},
		// Malformed and wildcard subjects match nothing.
		{"", nil},
		{"events..x", nil},
		{"events.", nil},
		{"events.*", nil},
		{"events.>", nil},
	}
	for _, tt := range tests {
		if got := matches(ix, tt.subject); !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %q; want %q", tt.subject, got, tt.want)
		}
	}
}

func TestIndexDuplicateInsert(t *testing.T) {
	ix := NewIndex[int]()
	ix.Insert("a.b", 1)
	ix.Insert("a.b", 1)
	if got := ix.Len(); got != 1 {
		t.Fatalf("Len() = %d after the same insert twice; want 1", got)
	}
	n := 0
	ix.Match("a.b", func(int) { n++ })
	if n != 1 {
		t.Errorf("got %d callbacks; want 1", n)
	}
	if !ix.Remove("a.b", 1) {
		t.Errorf("Remove = false; want true")
	}
	if ix.Remove("a.b", 1) {
		t.Errorf("second Remove = true; want false")
	}
	if got := ix.Len(); got != 0 {
		t.Errorf("Len() = %d; want 0", got)
	}
}

func TestIndexValueUnderSeveralPatterns(t *testing.T) {
	ix := NewIndex[int]()
	for _, p := range []string{"a.b", "a.*", "a.>", ">", "x.y"} {
		ix.Insert(p, 7)
	}
	ix.Insert("a.b", 8)
	got := map[int]int{}
	ix.Match("a.b", func(v int) { got[v]++ })
	if got[7] != 4 || got[8] != 1 || len(got) != 2 {
		t.Errorf("callbacks per value = %v; want map[7:4 8:1]", got)
	}
	if ix.Len() != 6 {
		t.Errorf("Len() = %d; want 6", ix.Len())
	}
}

func TestIndexRemove(t *testing.T) {
	ix := NewIndex[string]()
	ix.Insert("a.b.c", "x")
	ix.Insert("a.*.c", "x")
	ix.Insert("a.>", "y")
	tests := []struct {
		pattern, v string
		want       bool
	}{
		{"a.b.c", "y", false}, // other value
		{"a.b", "x", false},   // prefix of a stored pattern
		{"a.b.c.d", "x", false},
		{"a.*", "x", false},
		{"a.>.c", "x", false}, // malformed
		{"", "x", false},
		{"a.b.c", "x", true},
		{"a.b.c", "x", false},
		{"a.*.c", "x", true},
		{"a.>", "y", true},
	}
	for _, tt := range tests {
		if got := ix.Remove(tt.pattern, tt.v); got != tt.want {
			t.Errorf("Remove(%q, %q) = %v; want %v", tt.pattern, tt.v, got, tt.want)
		}
	}
	if ix.Len() != 0 || ix.numNodes() != 0 {
		t.Errorf("Len() = %d, numNodes() = %d; want 0, 0", ix.Len(), ix.numNodes())
	}
}

func TestIndexPrune(t *testing.T) {
	patterns := []string{
		"a", "a.b", "a.b.c", "a.*", "a.*.c", "a.>", "*", ">", "*.*.>",
		"a.b.c.d.e.f", "x.y", strings.Repeat("t.", 40) + "t",
	}
	ix := NewIndex[int]()
	for i, p := range patterns {
		ix.Insert(p, i)
		ix.Insert(p, -1)
	}
	if got, want := ix.Len(), 2*len(patterns); got != want {
		t.Fatalf("Len() = %d; want %d", got, want)
	}
	// Remove in an order that empties leaves before and after their parents.
	for _, i := range []int{0, 2, 1, 5, 3, 4, 11, 8, 7, 6, 9, 10} {
		for _, v := range []int{-1, i} {
			if !ix.Remove(patterns[i], v) {
				t.Errorf("Remove(%q, %d) = false; want true", patterns[i], v)
			}
		}
		// Every pattern still stored must still match.
		for j, p := range patterns {
			if strings.Contains(p, "*") || strings.Contains(p, ">") {
				continue
			}
			found := false
			ix.Match(p, func(v int) { found = found || v == j })
			if stored := ix.has(p, j); found != stored {
				t.Errorf("after removing %q: Match(%q) found %d = %v; want %v", patterns[i], p, j, found, stored)
			}
		}
	}
	if ix.Len() != 0 || ix.numNodes() != 0 {
		t.Errorf("Len() = %d, numNodes() = %d; want 0, 0", ix.Len(), ix.numNodes())
	}
}

// has reports whether (pattern, v) is stored, by walking the trie.
func (ix *Index[T]) has(pattern string, v T) bool {
	l := &ix.root
	var n *node[T]
	for _, tok := range strings.Split(pattern, ".") {
		if l == nil {
			return false
		}
		if n = l.get(tok); n == nil {
			return false
		}
		l = n.next
	}
	_, ok := n.pos[v]
	return ok
}

func TestIndexLongSubject(t *testing.T) {
	long := strings.Repeat("t.", 99) + "t" // beyond the stack array
	ix := NewIndex[int]()
	ix.Insert(long, 1)
	ix.Insert("t.>", 2)
	ix.Insert(strings.Repeat("*.", 99)+"*", 3)
	got := map[int]bool{}
	ix.Match(long, func(v int) { got[v] = true })
	if len(got) != 3 {
		t.Errorf("Match(long) = %v; want 1, 2 and 3", got)
	}
	if !ix.Remove(long, 1) || !ix.Remove("t.>", 2) || !ix.Remove(strings.Repeat("*.", 99)+"*", 3) {
		t.Errorf("Remove of long patterns failed")
	}
	if ix.numNodes() != 0 {
		t.Errorf("numNodes() = %d; want 0", ix.numNodes())
	}
}

func TestIndexZeroValue(t *testing.T) {
	var ix Index[int]
	ix.Match("a", func(int) { t.Errorf("callback on an empty index") })
	if ix.Remove("a", 1) {
		t.Errorf("Remove on an empty index = true")
	}
	ix.Insert("a", 1)
	if ix.Len() != 1 {
		t.Errorf("Len() = %d; want 1", ix.Len())
	}
}

func TestIndexInsertPanicsOnMalformed(t *testing.T) {
	for _, p := range []string{"", "a..b", "a.", ".a", "a.>.b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Insert(%q) did not panic", p)
				}
			}()
			NewIndex[int]().Insert(p, 1)
		}()
	}
}

func TestIndexMatchAllocs(t *testing.T) {
	ix := NewIndex[int]()
	for i := range 100 {
		ix.Insert("events.users."+string(rune('a'+i%26))+".x", i)
	}
	ix.Insert("events.>", -1)
	ix.Insert("events.*.a.*", -2)
	n := 0
	fn := func(int) { n++ }
	allocs := testing.AllocsPerRun(100, func() { ix.Match("events.users.a.x", fn) })
	if allocs != 0 {
		t.Errorf("Match allocates %v times per call; want 0", allocs)
	}
}
