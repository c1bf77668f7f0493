package service

import (
	"context"
	"time"
)

// boundsCall is one stream info request that concurrent resumes share.
type boundsCall struct {
	started     time.Time
	done        chan struct{}
	first, last uint64
	err         error
}

// bounds shares stream info requests among resumes, so a storm of
// reconnects costs a few requests instead of one each. It returns the stream's first and last sequence (first = last+1 when
// empty) as read by a request that started no earlier than notBefore, so a
// purge that finished before a resume arrived is always seen.
func (h *hub) bounds(ctx context.Context, notBefore time.Time) (first, last uint64, err error) {
	h.boundsMu.Lock()
	c := h.boundsInflight
	if c == nil || c.started.Before(notBefore) {
		c = &boundsCall{started: time.Now(), done: make(chan struct{})}
		h.boundsInflight = c
		go h.fetchBounds(c)
	}
	h.boundsMu.Unlock()
	select {
	case <-c.done:
		return c.first, c.last, c.err
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

func (h *hub) fetchBounds(c *boundsCall) {
	defer func() {
		h.boundsMu.Lock()
		if h.boundsInflight == c {
			h.boundsInflight = nil
		}
		h.boundsMu.Unlock()
		close(c.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, h.cfg.Stream)
	if err != nil {
		c.err = err
		return
	}
	state := s.CachedInfo().State
	c.first, c.last = state.FirstSeq, state.LastSeq
	if state.Msgs == 0 {
		c.first = c.last + 1
	}
}
