package ssetest

import (
	"strings"
	"testing"
)

func TestMetric(t *testing.T) {
	scrape := `# HELP natsse_upstream_events_total x
natsse_upstream_events_total{stream="A"} 2
natsse_upstream_events_total{stream="B"} 3
natsse_upstream_events_totals 100
natsse_streams_open 4
`
	for name, want := range map[string]float64{
		"natsse_upstream_events_total":             5,
		`natsse_upstream_events_total{stream="B"}`: 3,
		"natsse_streams_open":                      4,
	} {
		if got, ok := Metric(strings.NewReader(scrape), name); !ok || got != want {
			t.Errorf("%s: got %v %v, want %v", name, got, ok, want)
		}
	}
	if _, ok := Metric(strings.NewReader(scrape), "natsse_nothing"); ok {
		t.Error("a missing series was found")
	}
}
