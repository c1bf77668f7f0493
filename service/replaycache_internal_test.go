package service

import (
	"testing"
	"time"
)

// TestReplayCacheDropsIdleRuns: a run nobody used for replayIdle is dropped
// at the next lookup, so memory held after a resume storm is given back.
func TestReplayCacheDropsIdleRuns(t *testing.T) {
	c := newReplayCache(1 << 20)
	_, _, _, r := c.lookup("k", 10, nil, 10)
	c.extend(r, []*frame{{seq: 12, sse: []byte("x")}}, 20)
	c.release(r)
	if frames, next, _, _ := c.lookup("k", 10, nil, 10); len(frames) != 1 || next != 20 {
		t.Fatalf("lookup in the run: %d frames, next %d; want 1 frame, next 20", len(frames), next)
	}
	r.usedAt = time.Now().Add(-2 * replayIdle)
	c.swept = time.Time{}
	if _, _, _, read := c.lookup("other", 0, nil, 10); read == nil {
		t.Fatal("a lookup on another key should be told to read")
	}
	if c.bytes != 0 || len(c.runs["k"]) != 0 {
		t.Errorf("after replayIdle: %d bytes, %d runs for k; want the idle run dropped", c.bytes, len(c.runs["k"]))
	}
}
