package main

import (
	"math"
	"testing"
)

func TestHistIndexMonotonic(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<20 + 1, 1 << 40, math.MaxUint64} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d after %d (buckets %d)", v, i, prev, histBuckets)
		}
		prev = i
		if v > 0 && v < 1<<62 {
			if got := histValue(i); math.Abs(float64(got)-float64(v)) > float64(v)/60+1 {
				t.Errorf("histValue(histIndex(%d)) = %d, more than 1.7%% off", v, got)
			}
		}
	}
}

func TestHistQuantilesAndMerge(t *testing.T) {
	var a, b histogram
	for v := uint64(1); v <= 1000; v++ {
		a.add(int(v), v*1000)
	}
	b.add(0, 5_000_000)
	d := a.snapshot()
	if d.Count != 1000 || d.Max != 1_000_000 {
		t.Fatalf("count %d max %d", d.Count, d.Max)
	}
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 500_000}, {0.9, 900_000}, {0.99, 990_000}} {
		if got := float64(d.quantile(c.q)); math.Abs(got-c.want) > c.want*0.02 {
			t.Errorf("quantile(%v) = %v, want ~%v", c.q, got, c.want)
		}
	}
	d.merge(b.snapshot())
	if d.Count != 1001 || d.Max != 5_000_000 || d.quantile(1) != 5_000_000 {
		t.Errorf("merged: count %d max %d q1 %d", d.Count, d.Max, d.quantile(1))
	}
}
