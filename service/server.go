package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service/access"
	"github.com/natsse/natsse/service/heartbeat"
	"github.com/natsse/natsse/service/resume"
	"github.com/natsse/natsse/service/ui"
	"github.com/natsse/natsse/service/upstream"
)

// Server serves SSE streams of the JetStream streams configured. Create it
// with New, start its upstreams with Run, serve it as an http.Handler, and
// end it with Drain.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	access  *access.Verifier // nil when access control is off
	clock   *heartbeat.Clock
	served  *servedSet
	nc      *nats.Conn
	js      jetstream.JetStream
	// page is the live page at <base>/ (nil when NATSSE_UI is off);
	// crossOrigin guards publishing from pages of other origins.
	page        http.Handler
	crossOrigin *http.CrossOriginProtection

	hangups    *hangups
	streams    *registry
	conns      *connections
	xffIgnored sync.Once
	// debug: natsse logs at debug level, so each request gets its line
	// (docs/operations.md, "Logs").
	debug bool
	// origins are the refused origins logged so far.
	origins *refusedOrigins
}

// New checks cfg and prepares a Server on the NATS connection nc, which it
// does not own.
func New(cfg Config, nc *nats.Conn) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("service: jetstream: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), hangups: newHangups(), clock: heartbeat.New(cfg.Heartbeat), nc: nc, js: js,
		debug: cfg.Logger.Enabled(context.Background(), slog.LevelDebug)}
	if cfg.UI {
		s.page = ui.Handler()
	}
	s.crossOrigin = crossOriginProtection(cfg.CORSOrigins)
	s.origins = &refusedOrigins{log: cfg.Logger, seen: map[string]struct{}{}}
	if s.access, err = access.New(cfg.JWT, cfg.Logger); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	s.streams = newRegistry(cfg.MaxStreams, cfg.MaxStreamsPerClient, s.metrics.clientLimit, cfg.Logger)
	s.conns = newConnections(cfg, s.trusted, s.metrics.connsRefused)
	deps := sseDeps{clock: s.clock, metrics: s.metrics, log: s.log, writeTimeout: cfg.WriteTimeout, replayWait: cfg.ReplayWait, queueBytes: cfg.QueueBytes}
	shared := &servedShared{
		resume: resume.NewShared(cfg.ReplayConcurrency, cfg.ReplayCacheBytes),
		mover:  upstream.NewMover(nc, cfg.Logger),
		end:    s.streams.closeOf,
	}
	s.served = newServedSet(cfg, js, func(name string) *servedStream {
		return newServedStream(name, cfg, nc, js, s.metrics, shared, deps)
	}, s.streams.closeOf)
	shared.found, shared.fail, shared.fed = s.served.found, s.served.fail, s.served.rebalance
	s.served.prepare()
	s.metrics.observe(observed{
		connsOpen: s.conns.count, streamsOpen: s.streams.count,
		ready:         func() bool { ok, _ := s.Ready(); return ok },
		natsConnected: nc.IsConnected,
		reconnects:    func() uint64 { return nc.Stats().Reconnects },
		streams:       s.served.list,
	}, cfg.Version, cfg.Revision)
	return s, nil
}

// Run consumes the streams until ctx ends; SSE streams are served meanwhile.
func (s *Server) Run(ctx context.Context) {
	defer s.hangups.close()
	var wg sync.WaitGroup
	wg.Go(func() { s.access.Run(ctx) })
	wg.Go(func() { s.clock.Run(ctx) })
	defer wg.Wait()
	s.served.run(ctx)
}

// Started is closed once a served stream was found and SSE streams can be
// served.
func (s *Server) Started() <-chan struct{} { return s.served.started }

// Failed receives an error, once, when a setting cannot work with the
// streams (NATSSE_SUBJECTS outside their subjects, a stream JetStream
// refuses to create): the caller must stop with it, as cmd/natsse does.
func (s *Server) Failed() <-chan error { return s.served.failed }

// Subjects are the subjects served over HTTP, of the streams found so far
// (nil before).
func (s *Server) Subjects() []string { return s.served.servedSubjects() }

// AccessControl says who may subscribe, for the startup log: "anonymous",
// or JWT with the algorithm or the JWKS URL.
func (s *Server) AccessControl() string { return s.access.Describe() }

// Ready says whether the server can serve new streams, and why not.
func (s *Server) Ready() (bool, string) {
	switch {
	case s.streams.isDraining():
		return false, "draining: shutting down"
	case s.access.Waiting() != "":
		return false, s.access.Waiting()
	}
	ready, why := s.served.ready()
	if !ready {
		return false, why
	}
	if s.cfg.StoreHealth != nil {
		if err := s.cfg.StoreHealth(); err != nil {
			return false, err.Error()
		}
	}
	return true, why
}

// OpenStreams is how many SSE streams are open, by natsse's own count.
func (s *Server) OpenStreams() int64 { return s.streams.count() }

// Close ends every stream still open at once, even one blocked on a client
// that stopped reading: what Drain could not finish in time.
func (s *Server) Close() { s.streams.closeNow() }

// Drain turns readiness off, refuses new streams softly, and closes open
// streams after a final flush, spread over a short window so that their
// reconnects do not arrive all in one instant. It returns when every stream
// has ended or ctx is done.
func (s *Server) Drain(ctx context.Context) error {
	open := s.streams.drain()
	window := time.Second
	if d, ok := ctx.Deadline(); ok {
		window = min(window, time.Until(d)/4)
	}
	for i, ss := range open {
		time.AfterFunc(window*time.Duration(i)/time.Duration(len(open)), ss.sub.Close)
	}
	ended := make(chan struct{})
	go func() { s.streams.wait(); close(ended) }()
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("service: %d streams still open: %w", s.streams.count(), ctx.Err())
	}
}
