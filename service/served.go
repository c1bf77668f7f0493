package service

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service/cursors"
	"github.com/natsse/natsse/service/fanout"
	"github.com/natsse/natsse/service/resume"
	"github.com/natsse/natsse/service/upstream"
)

// servedStream is one served JetStream stream with the rooms that serve it:
// its fan-out core, the upstream reader that feeds the core, the resumer of
// its SSE streams and its named cursors. Positions are its sequences.
type servedStream struct {
	name     string
	core     *fanout.Core
	upstream *upstream.Reader
	resumer  *resume.Resumer
	cursors  *cursors.Cursors
}

// newServedStream wires the rooms of cfg.Stream; recreated ends the SSE
// streams of a stream deleted and created again.
func newServedStream(cfg Config, nc *nats.Conn, js jetstream.JetStream, m *metrics, recreated func()) *servedStream {
	st := &servedStream{name: cfg.Stream}
	st.resumer = resume.New(resume.Config{Stream: cfg.Stream, Concurrency: cfg.ReplayConcurrency, CacheBytes: cfg.ReplayCacheBytes}, js)
	forget := st.resumer.Cache().Reset
	st.core = fanout.New(fanout.Config{RingEvents: cfg.RingEvents, RingBytes: cfg.RingBytes, Log: cfg.Logger,
		Dispatched: m.upstream, Detached: m.detached, Rewound: forget})
	st.upstream = upstream.New(upstream.Config{Stream: cfg.Stream, Subjects: cfg.Subjects, Create: cfg.streamCreate(), Suggest: cfg.streamSuggest(), Log: cfg.Logger,
		Recreated: func() { forget(); recreated() }}, nc, js, st.core)
	st.cursors = cursors.New(cursors.Config{Stream: cfg.Stream, TTL: cfg.DurableTTL, Max: cfg.MaxDurables, PerClient: cfg.MaxDurablesPerClient,
		ReplayConcurrency: cfg.ReplayConcurrency, Log: cfg.Logger}, nc, js, st.filters)
	return st
}

// run reads the stream and answers takeovers of its cursors until ctx ends.
func (st *servedStream) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { st.cursors.Run(ctx) })
	defer wg.Wait()
	st.upstream.Run(ctx)
}

// filters are the consumer filters of everything served (nil: none, or the
// stream is not found yet).
func (st *servedStream) filters() []string {
	if s := st.upstream.Served(); s != nil {
		return s.Filters()
	}
	return nil
}
