package subjects

import (
	"strconv"
	"testing"
)

func BenchmarkIndexMatch(b *testing.B) {
	ix := NewIndex[int]()
	for i := range 10_000 {
		ix.Insert("events.users."+strconv.Itoa(i), i)
	}
	for i, p := range []string{"events.>", "events.users.*", "events.*.42", ">", "events.users.42.>", "orders.*"} {
		ix.Insert(p, -1-i)
	}
	n := 0
	fn := func(int) { n++ }
	b.ReportAllocs()
	for b.Loop() {
		ix.Match("events.users.4242", fn)
	}
	if n == 0 {
		b.Fatal("no matches")
	}
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !Match("events.users.*.inbox.>", "events.users.4242.inbox.new.x") {
			b.Fatal("no match")
		}
	}
}

func BenchmarkInside(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !Inside("events.users.42.*.y", "events.users.42.>") {
			b.Fatal("not inside")
		}
	}
}

func BenchmarkFromPath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromPath("/events/orders/eu%2Dwest/created"); err != nil {
			b.Fatal(err)
		}
	}
}
