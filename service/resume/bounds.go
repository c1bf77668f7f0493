package resume

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

// Bounds shares stream info requests among resumes, so a storm of
// reconnects costs a few requests instead of one each. It returns the
// stream's first and last sequence (first = last+1 when
// empty) as read by a request that started no earlier than notBefore, so a
// purge that finished before a resume arrived is always seen.
func (r *Resumer) Bounds(ctx context.Context, notBefore time.Time) (first, last uint64, err error) {
	r.boundsMu.Lock()
	c := r.boundsInflight
	if c == nil || c.started.Before(notBefore) {
		c = &boundsCall{started: time.Now(), done: make(chan struct{})}
		r.boundsInflight = c
		go r.fetchBounds(c)
	}
	r.boundsMu.Unlock()
	select {
	case <-c.done:
		return c.first, c.last, c.err
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

func (r *Resumer) fetchBounds(c *boundsCall) {
	defer func() {
		r.boundsMu.Lock()
		if r.boundsInflight == c {
			r.boundsInflight = nil
		}
		r.boundsMu.Unlock()
		close(c.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	jsStream, err := r.js.Stream(ctx, r.stream)
	if err != nil {
		c.err = err
		return
	}
	state := jsStream.CachedInfo().State
	c.first, c.last = state.FirstSeq, state.LastSeq
	if state.Msgs == 0 {
		c.first = c.last + 1
	}
}
