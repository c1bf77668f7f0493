package service

import (
	"bytes"
	"testing"
)

// BenchmarkEncodeFrame encodes one event with a 100-byte payload into a
// reused buffer: the per-message cost of the hub, which must not allocate.
func BenchmarkEncodeFrame(b *testing.B) {
	data := bytes.Repeat([]byte("x"), 100)
	buf := make([]byte, 0, 256)
	if allocs := testing.AllocsPerRun(10, func() { buf = appendEvent(buf[:0], 1234567, "order.created", data) }); allocs != 0 {
		b.Fatalf("got %v allocations per event, want 0", allocs)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf = appendEvent(buf[:0], 1234567, "order.created", data)
	}
}
