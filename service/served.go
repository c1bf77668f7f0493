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
	// deps is what its SSE streams work with.
	deps *sseDeps
}

// servedShared is what every served stream of a Server shares: the budgets
// of replays and rings, the mover of the NATS connection, and what a
// stream's events tell (the registry ends SSE streams, the set fails or
// rebalances).
type servedShared struct {
	resume *resume.Shared
	mover  *upstream.Mover
	// end ends the SSE streams of one served stream after a final flush.
	end func(*servedStream)
	// found checks a stream's subjects the first time it is found; fail
	// stops natsse; fed rebalances the ring budget.
	found func(name string, streamSubjects []string) error
	fail  func(error)
	fed   func()
}

// newServedStream wires the rooms of the stream name.
func newServedStream(name string, cfg Config, nc *nats.Conn, js jetstream.JetStream, m *metrics, sh *servedShared, deps sseDeps) *servedStream {
	st := &servedStream{name: name}
	one := cfg
	one.Streams = []string{name}
	st.resumer = resume.New(resume.Config{Stream: name, Shared: sh.resume}, js)
	st.core = fanout.New(fanout.Config{RingEvents: cfg.RingEvents, RingBytes: cfg.RingBytes, Log: cfg.Logger,
		Dispatched: m.upstream.WithLabelValues(name), Detached: m.detached, Rewound: st.resumer.Forget})
	// The command to create a missing stream names subjects only when one
	// stream is served: with several, which subjects are whose is the
	// operator's to say.
	var suggest *jetstream.StreamConfig
	if len(cfg.Streams) == 1 && !cfg.allStreams() {
		suggest = one.streamSuggest()
	}
	st.upstream = upstream.New(upstream.Config{Stream: name, Subjects: cfg.Subjects, Create: one.streamCreate(), Suggest: suggest, Log: cfg.Logger,
		Recreated: func() { st.resumer.Forget(); sh.end(st) },
		Missing:   func() { sh.end(st) },
		Found:     func(subjects []string) error { return sh.found(name, subjects) },
		Fail:      sh.fail, Fed: sh.fed, Idle: cfg.UpstreamIdle, Mover: sh.mover,
	}, nc, js, st.core)
	st.cursors = cursors.New(cursors.Config{Stream: name, TTL: cfg.DurableTTL, Max: cfg.MaxDurables, PerClient: cfg.MaxDurablesPerClient,
		ReplayConcurrency: cfg.ReplayConcurrency, Log: cfg.Logger}, nc, js, st.filters)
	deps.src = st
	st.deps = &deps
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
