package main

import "testing"

// TestAccountGapDuplicateReorder is the "Done when" test: a stream
// with exactly one gap, one duplicate and one reordering is reported as
// exactly one lost, one duplicated and one out-of-order event.
func TestAccountGapDuplicateReorder(t *testing.T) {
	a := newAccount(10)
	// 0 1 3 2 (reordered) 4 4 (duplicate) 6 7 8 9, and 5 never comes (gap).
	for _, i := range []uint64{0, 1, 3, 2, 4, 4, 6, 7, 8, 9} {
		a.observe(i)
	}
	got := a.report()
	want := accountReport{Expected: 10, Received: 10, Lost: 1, Duplicates: 1, OutOfOrder: 1}
	if got != want {
		t.Fatalf("report = %+v, want %+v", got, want)
	}
	if a.complete() {
		t.Error("complete() with a gap")
	}
}

func TestAccountClean(t *testing.T) {
	a := newAccount(130)
	for i := range uint64(130) {
		a.observe(i)
	}
	a.observe(500)
	a.observeUnexpected()
	got := a.report()
	want := accountReport{Expected: 130, Received: 132, Unexpected: 2}
	if got != want || !a.complete() {
		t.Fatalf("report = %+v (complete %v), want %+v", got, a.complete(), want)
	}
}

// TestAccountTail: events missing at the end are lost too, and a late
// duplicate of an old event is a duplicate, not an out-of-order one.
func TestAccountTail(t *testing.T) {
	a := newAccount(5)
	for _, i := range []uint64{0, 1, 2, 0} {
		a.observe(i)
	}
	want := accountReport{Expected: 5, Received: 4, Lost: 2, Duplicates: 1}
	if got := a.report(); got != want {
		t.Fatalf("report = %+v, want %+v", got, want)
	}
}

func TestExpectation(t *testing.T) {
	p, err := parsePlan("count=10,users=4")
	if err != nil {
		t.Fatal(err)
	}
	// Messages 1..10 go to users 0,1,2,3,0,1,2,3,0,1.
	tests := []struct {
		patterns []string
		want     []int64 // expected index of message g=1..10, -1 if not expected
	}{
		{[]string{"events.users.1"}, []int64{-1, 0, -1, -1, -1, 1, -1, -1, -1, 2}},
		{[]string{"events.users.*"}, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{[]string{"events.users.0", "events.users.3"}, []int64{0, -1, -1, 1, 2, -1, -1, 3, 4, -1}},
		{[]string{"events.other"}, []int64{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1}},
	}
	for _, tt := range tests {
		e := newExpectation(p, tt.patterns)
		var n uint64
		for g := uint64(1); g <= 10; g++ {
			i, ok := e.index(g)
			got := int64(-1)
			if ok {
				got = int64(i)
				n++
			}
			if got != tt.want[g-1] {
				t.Errorf("%v: index(%d) = %d, want %d", tt.patterns, g, got, tt.want[g-1])
			}
		}
		if e.n != n {
			t.Errorf("%v: n = %d, want %d", tt.patterns, e.n, n)
		}
	}
}

func TestPlanString(t *testing.T) {
	for _, s := range []string{"count=2000,subjects=events.bench", "count=20000,users=10000,run=r1", "count=3,subjects=events.a+events.b"} {
		p, err := parsePlan(s)
		if err != nil || p.String() != s {
			t.Errorf("parsePlan(%q) = %v, %v; String %q", s, p, err, p.String())
		}
	}
	for _, s := range []string{"count=0,subjects=a", "count=1", "count=1,users=2,subjects=a", "x"} {
		if _, err := parsePlan(s); err == nil {
			t.Errorf("parsePlan(%q): no error", s)
		}
	}
}

func TestPayload(t *testing.T) {
	b := appendPayload(nil, "r1", 42, 7, 1700000000123456789, 100)
	if len(b) != 100 {
		t.Fatalf("len = %d, want 100", len(b))
	}
	p, ok := parsePayload(b)
	if !ok || string(p.run) != "r1" || p.global != 42 || p.subjCounter != 7 || p.nanos != 1700000000123456789 {
		t.Fatalf("parsePayload = %+v, %v", p, ok)
	}
	short := appendPayload(nil, "", 1, 1, 5, 0)
	if p, ok := parsePayload(short); !ok || string(p.run) != "-" || p.nanos != 5 {
		t.Fatalf("parsePayload(%q) = %+v, %v", short, p, ok)
	}
	if _, ok := parsePayload([]byte("hello world")); ok {
		t.Error("parsePayload accepted a foreign payload")
	}
	if n := testing.AllocsPerRun(100, func() { parsePayload(b) }); n != 0 {
		t.Errorf("parsePayload allocates %v times", n)
	}
}
