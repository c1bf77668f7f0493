package service

import (
	"testing"
	"time"
)

// BenchmarkLatencyObserve is what natsse_delivery_latency_seconds costs a
// live batch: one clock read and one histogram observation.
func BenchmarkLatencyObserve(b *testing.B) {
	m := newMetrics()
	stored := time.Now()
	for b.Loop() {
		m.latency.Observe(time.Since(stored).Seconds())
	}
}
