package subjects

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"a", "a", true},
		{"a", "b", false},
		{"a.b", "a.b", true},
		{"a.b", "a", false},
		{"a", "a.b", false},
		{"a.*", "a.b", true},
		{"a.*", "a", false},
		{"a.*", "a.b.c", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"*.b", "a.b", true},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c.d", true},
		{"a.>", "a", false},
		{">", "a", true},
		{">", "a.b.c", true},
		{"*.>", "a", false},
		{"*.>", "a.b", true},
		{"events.users.42.>", "events.users.42.inbox", true},
		{"events.users.42.>", "events.users.43.inbox", false},
		{"a.b*", "a.b*", true}, // malformed for FromPath, but a literal token to Match
		// Malformed patterns and non-literal subjects match nothing.
		{"a.>.b", "a.x.b", false},
		{"a..b", "a..b", false},
		{"", "", false},
		{"a.", "a.", false},
		{">", "a.*", false},
		{"*", "*", false},
		{">", ">", false},
		{">", "a..b", false},
		{"a.*", "a.", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("Match(%q, %q) = %v; want %v", tt.pattern, tt.subject, got, tt.want)
		}
	}
}

func TestInside(t *testing.T) {
	tests := []struct {
		inner, outer string
		want         bool
	}{
		{"events.users.42.x", "events.users.42.>", true},
		{"events.users.42.>", "events.users.42.>", true},
		{"events.users.42.*.y", "events.users.42.>", true},
		{"events.users.42.*", "events.users.42.>", true},
		{"events.users.*", "events.users.42.>", false},
		{"events.>", "events.users.42.>", false},
		{"events.users.42", "events.users.42.>", false},
		{"events.users.43.x", "events.users.42.>", false},
		{"events.users.>", "events.users.42.>", false},
		{"a", "a", true},
		{"a", "b", false},
		{"a.b", "a", false},
		{"a", "a.b", false},
		{"a.b", "a.*", true},
		{"a.*", "a.*", true},
		{"a.*", "a.b", false},
		{"a.*", "a.>", true},
		{"a.>", "a.*", false},
		{"a.*.*", "a.>", true},
		{"a.*.>", "a.>", true},
		{"a.>", "a.*.>", false},
		{"a.*.>", "a.*.>", true},
		{"a.b.>", "a.*.>", true},
		{"*", ">", true},
		{">", ">", true},
		{"a.>", ">", true},
		{">", "*", false},
		{">", "a.>", false},
		{"*", "a", false},
		{"a", "*", true},
		{"*.b", "*.*", true},
		{"*.*", "*.b", false},
		// Malformed on either side is never inside.
		{"a..b", "a.>", false},
		{"a.b", "a.>.b", false},
		{"", ">", false},
		{"a", "", false},
	}
	for _, tt := range tests {
		if got := Inside(tt.inner, tt.outer); got != tt.want {
			t.Errorf("Inside(%q, %q) = %v; want %v", tt.inner, tt.outer, got, tt.want)
		}
	}
}

func TestOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"a.*.c", "a.b.*", true},
		{"a.b", "a.c", false},
		{"a.>", "a", false},
		{"a.b", "a.b", true},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.>", "a.b.c", true},
		{"a.>", "*.b", true},
		{"a.>", "b.>", false},
		{">", "a.b.c", true},
		{">", "*", true},
		{"*", "a.b", false},
		{"*.*", "a.>", true},
		{"a.*.c", "a.b.d", false},
		{"events.>", "events.users.42.>", true},
		{"events.>", "orders.>", false},
		{"a..b", "a..b", false},
		{"a.>.b", "a.>", false},
	}
	for _, tt := range tests {
		if got := Overlap(tt.a, tt.b); got != tt.want {
			t.Errorf("Overlap(%q, %q) = %v; want %v", tt.a, tt.b, got, tt.want)
		}
		if got := Overlap(tt.b, tt.a); got != tt.want {
			t.Errorf("Overlap(%q, %q) = %v; want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestAllInside(t *testing.T) {
	user42 := []string{"events.users.42.>"}
	tests := []struct {
		requested, allowed []string
		outside            string // "" when every requested pattern is allowed
	}{
		{[]string{"events.users.42.x"}, user42, ""},
		{[]string{"events.users.42.>"}, user42, ""},
		{[]string{"events.users.42.*"}, user42, ""},
		{[]string{"events.users.42.*.y"}, user42, ""},
		{[]string{"events.users.*"}, user42, "events.users.*"},
		{[]string{"events.>"}, user42, "events.>"},
		{[]string{"events.users.42"}, user42, "events.users.42"},
		{[]string{">"}, user42, ">"},
		{[]string{"*.users.42.x"}, user42, "*.users.42.x"},
		{[]string{"events.users.42.x", "events.users.43.x"}, user42, "events.users.43.x"},
		{[]string{"events.users.42.x", "events.public.news"}, []string{"events.users.42.>", "events.public.*"}, ""},
		{[]string{"events.public.>"}, []string{"events.users.42.>", "events.public.*"}, "events.public.>"},
		// Each pattern must fit one allowed pattern, not their union.
		{[]string{"a.>"}, []string{"a.*", "a.*.>"}, "a.>"},
		{[]string{"a.x"}, nil, "a.x"},
		{nil, user42, ""},
		// A malformed allowed pattern allows nothing.
		{[]string{"events.x"}, []string{"events.>.x"}, "events.x"},
		{[]string{"events..x"}, []string{">"}, "events..x"},
	}
	for _, tt := range tests {
		outside, ok := AllInside(tt.requested, tt.allowed)
		if outside != tt.outside || ok != (tt.outside == "") {
			t.Errorf("AllInside(%q, %q) = %q, %v; want %q, %v", tt.requested, tt.allowed, outside, ok, tt.outside, tt.outside == "")
		}
	}
}
