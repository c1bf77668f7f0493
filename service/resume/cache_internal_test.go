package resume

import (
	"testing"
	"time"

	"github.com/natsse/natsse/service/fanout"
)

// TestReplayCacheDropsIdleRuns: a run nobody used for replayIdle is dropped
// at the next lookup, so memory held after a resume storm is given back.
func TestReplayCacheDropsIdleRuns(t *testing.T) {
	c := newCache(1 << 20)
	_, _, _, r := c.Lookup("k", 10, nil, 10, 1<<20)
	c.Extend(r, []*fanout.Frame{fanout.NewFrame(12, "k", time.Time{}, nil, []byte("x"))}, 20)
	c.Release(r)
	if frames, next, _, _ := c.Lookup("k", 10, nil, 10, 1<<20); len(frames) != 1 || next != 20 {
		t.Fatalf("lookup in the run: %d frames, next %d; want 1 frame, next 20", len(frames), next)
	}
	r.usedAt = time.Now().Add(-2 * replayIdle)
	c.swept = time.Time{}
	if _, _, _, read := c.Lookup("other", 0, nil, 10, 1<<20); read == nil {
		t.Fatal("a lookup on another key should be told to read")
	}
	if c.bytes != 0 || len(c.runs["k"]) != 0 {
		t.Errorf("after replayIdle: %d bytes, %d runs for k; want the idle run dropped", c.bytes, len(c.runs["k"]))
	}
}
