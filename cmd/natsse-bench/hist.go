package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Latencies go into a log-linear histogram (64 linear sub-buckets per power
// of two, so every bucket is within 1.6% of its values) rather than a list:
// it takes a few KiB however many events arrive, thousands of client
// goroutines add to it without locks, and the histograms of several client
// processes merge exactly, so percentiles over all processes are honest.

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = (64-histSubBits)*histSub + histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1
	return (e+1)*histSub + int(v>>e) - histSub
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return m<<e + (uint64(1)<<e)/2
}

// histogram is safe for concurrent add through its shards.
type histogram struct {
	shards [8]histShard
}

type histShard struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Uint64
	_      [64]byte
}

// add records value v (nanoseconds) from the caller with the given shard hint.
func (h *histogram) add(hint int, v uint64) {
	s := &h.shards[hint%len(h.shards)]
	s.counts[histIndex(v)].Add(1)
	for {
		m := s.max.Load()
		if v <= m || s.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// snapshot folds the shards into the serializable form.
func (h *histogram) snapshot() histData {
	var d histData
	for i := range histBuckets {
		var c uint64
		for s := range h.shards {
			c += h.shards[s].counts[i].Load()
		}
		if c > 0 {
			d.Buckets = append(d.Buckets, [2]uint64{uint64(i), c})
			d.Count += c
		}
	}
	for s := range h.shards {
		d.Max = max(d.Max, h.shards[s].max.Load())
	}
	return d
}

// histData is a histogram in JSON: sparse [bucket, count] pairs.
type histData struct {
	Count   uint64      `json:"count"`
	Max     uint64      `json:"max_ns"`
	Buckets [][2]uint64 `json:"buckets"`
}

func (d *histData) merge(o histData) {
	m := map[uint64]uint64{}
	for _, b := range d.Buckets {
		m[b[0]] += b[1]
	}
	for _, b := range o.Buckets {
		m[b[0]] += b[1]
	}
	d.Buckets = d.Buckets[:0]
	for i := range uint64(histBuckets) {
		if c := m[i]; c > 0 {
			d.Buckets = append(d.Buckets, [2]uint64{i, c})
		}
	}
	d.Count += o.Count
	d.Max = max(d.Max, o.Max)
}

// quantile returns the value at quantile q (0..1), never above the max.
func (d histData) quantile(q float64) uint64 {
	if d.Count == 0 {
		return 0
	}
	rank := uint64(q * float64(d.Count))
	if rank >= d.Count {
		rank = d.Count - 1
	}
	var seen uint64
	for _, b := range d.Buckets {
		seen += b[1]
		if seen > rank {
			return min(histValue(int(b[0])), d.Max)
		}
	}
	return d.Max
}

// latencySummary is what people read: durations as strings and milliseconds.
type latencySummary struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

func (d histData) summary() latencySummary {
	ms := func(ns uint64) float64 { return float64(ns) / float64(time.Millisecond) }
	return latencySummary{
		P50:  ms(d.quantile(0.50)),
		P90:  ms(d.quantile(0.90)),
		P99:  ms(d.quantile(0.99)),
		P999: ms(d.quantile(0.999)),
		Max:  ms(d.Max),
	}
}
