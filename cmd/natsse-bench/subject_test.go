package main

import (
	"slices"
	"testing"
)

func TestSubjectMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"events.a.b", "events.a.b", true},
		{"events.a.b", "events.a.c", false},
		{"events.a", "events.a.b", false},
		{"events.a.b", "events.a", false},
		{"events.*", "events.a", true},
		{"events.*", "events.a.b", false},
		{"events.*.b", "events.x.b", true},
		{"events.>", "events.a", true},
		{"events.>", "events.a.b.c", true},
		{"events.>", "events", false},
		{">", "a", true},
		{"events.users.*", "events.users.42", true},
		{"events.users.1", "events.users.10", false},
	}
	for _, tt := range tests {
		if got := subjectMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("subjectMatch(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

func TestRequestSubjects(t *testing.T) {
	tests := []struct {
		target string
		want   []string
	}{
		{"/events/bench", []string{"events.bench"}},
		{"/events/users/*", []string{"events.users.*"}},
		{"/events/%3E", []string{"events.>"}},
		{"/events/a?subject=events.b.*&subject=events.c", []string{"events.a", "events.b.*", "events.c"}},
		{"/sse?subject=events.x", []string{"events.x"}},
	}
	for _, tt := range tests {
		got, err := requestSubjects(tt.target)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("requestSubjects(%q) = %q, %v; want %q", tt.target, got, err, tt.want)
		}
	}
	for _, bad := range []string{"/sse", "/", "/events//a", "/events/a%2Eb"} {
		if got, err := requestSubjects(bad); err == nil {
			t.Errorf("requestSubjects(%q) = %q, want an error", bad, got)
		}
	}
}

func TestReadyField(t *testing.T) {
	line := "READY clients=9000 connected=8990 connect_seconds=1.25"
	if got := readyField(line, "connected"); got != 8990 {
		t.Errorf("connected = %d", got)
	}
	if got := readyField(line, "missing"); got != 0 {
		t.Errorf("missing = %d", got)
	}
}
