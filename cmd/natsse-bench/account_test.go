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

// TestExpectationStreams: with streams=3 user j is events<j mod 3>.users.<j>,
// and a client's patterns within one stream expect exactly that stream's
// share of the round-robin, numbered in publish order.
func TestExpectationStreams(t *testing.T) {
	p, err := parsePlan("count=10,users=4,streams=3")
	if err != nil {
		t.Fatal(err)
	}
	// Messages 1..10 go to users 0,1,2,3,0,1,2,3,0,1, in streams 0,1,2,0,0,1,2,0,0,1.
	for j, want := range []string{"events0.users.0", "events1.users.1", "events2.users.2", "events0.users.3"} {
		if got := p.subject(j); got != want {
			t.Errorf("subject(%d) = %q, want %q", j, got, want)
		}
		if got := p.streamOf(want); got != j%3 {
			t.Errorf("streamOf(%q) = %d, want %d", want, got, j%3)
		}
	}
	for _, s := range []string{"events.users.0", "events3.users.0", "events01.users.1", "other.x", "events"} {
		if k := p.streamOf(s); k != -1 {
			t.Errorf("streamOf(%q) = %d, want -1", s, k)
		}
	}
	tests := []struct {
		patterns []string
		want     []int64
	}{
		{[]string{"events0.>"}, []int64{0, -1, -1, 1, 2, -1, -1, 3, 4, -1}},
		{[]string{"events0.users.*"}, []int64{0, -1, -1, 1, 2, -1, -1, 3, 4, -1}},
		{[]string{"events1.users.*"}, []int64{-1, 0, -1, -1, -1, 1, -1, -1, -1, 2}},
		{[]string{"events2.users.2"}, []int64{-1, -1, 0, -1, -1, -1, 1, -1, -1, -1}},
		{[]string{"events1.users.2"}, []int64{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1}}, // user 2 is in stream 2
		{[]string{"events.users.*"}, []int64{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1}},
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
	// The literal shortcut of the clients finds user subjects by name.
	x := newExpectations(&p)
	if e := x.get([]string{"events1.users.1"}); e.n != 3 {
		t.Errorf("events1.users.1: n = %d, want 3", e.n)
	}
	// With one stream nothing changes.
	one, _ := parsePlan("count=10,users=4")
	if one.subject(1) != "events.users.1" || one.streamOf("events0.users.0") != -1 {
		t.Errorf("one stream: subject(1) = %q", one.subject(1))
	}
}

// TestSummaryByStream: per-stream parts add up across client processes, and
// merging does not touch the summaries merged.
func TestSummaryByStream(t *testing.T) {
	part := func(lost uint64, lat uint64) *summary {
		var h histogram
		h.add(0, lat)
		st := &streamSummary{Clients: 2, Connected: 2, Complete: 1, accountReport: accountReport{Expected: 10, Received: 10 - lost, Lost: lost}, Hist: h.snapshot()}
		s := &summary{Clients: 2, Connected: 2, accountReport: st.accountReport, Hist: h.snapshot(), ByStream: map[string]*streamSummary{"S0": st}}
		s.finish()
		return s
	}
	a, b := part(1, 1e6), part(0, 3e6)
	m := mergeSummaries([]*summary{a, b})
	got := m.ByStream["S0"]
	if got.Clients != 4 || got.Complete != 2 || got.Expected != 20 || got.Lost != 1 || got.Received != 19 || got.Hist.Count != 2 || got.Latency.Max != 3 {
		t.Errorf("merged S0 = %+v", got)
	}
	if st := a.ByStream["S0"]; st.Clients != 2 || st.Hist.Count != 1 {
		t.Errorf("merging changed its input: %+v", st)
	}
}

func TestPlanString(t *testing.T) {
	for _, s := range []string{"count=2000,subjects=events.bench", "count=20000,users=10000,run=r1", "count=3,subjects=events.a+events.b", "count=4000,users=10000,streams=3,run=r1"} {
		p, err := parsePlan(s)
		if err != nil || p.String() != s {
			t.Errorf("parsePlan(%q) = %v, %v; String %q", s, p, err, p.String())
		}
	}
	for _, s := range []string{"count=0,subjects=a", "count=1", "count=1,users=2,subjects=a", "x", "count=1,subjects=a,streams=2", "count=1,users=2,streams=-1"} {
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
