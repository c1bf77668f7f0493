package main

import (
	"slices"
	"testing"
)

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
