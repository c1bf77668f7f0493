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
	"github.com/natsse/natsse/service/ui"
)

// Server serves SSE streams of one JetStream stream. Create it with New,
// start its upstream with Run, serve it as an http.Handler, and end it with
// Drain.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	access  *access.Verifier // nil when access control is off
	clock   *heartbeat.Clock
	served  *servedStream
	deps    *sseDeps // what its SSE streams work with
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
	s.served = newServedStream(cfg, nc, js, s.metrics, s.streams.closeAll)
	s.deps = &sseDeps{src: s.served, clock: s.clock, metrics: s.metrics, log: s.log, writeTimeout: cfg.WriteTimeout, replayWait: cfg.ReplayWait, queueBytes: cfg.QueueBytes}
	s.metrics.observe(observed{
		connsOpen: s.conns.count, streamsOpen: s.streams.count,
		ready:         func() bool { ok, _ := s.Ready(); return ok },
		natsConnected: nc.IsConnected,
		reconnects:    func() uint64 { return nc.Stats().Reconnects },
		lag:           s.served.upstream.Lag,
	}, cfg.Version, cfg.Revision)
	return s, nil
}

// Run consumes the stream until ctx ends; streams are served meanwhile.
func (s *Server) Run(ctx context.Context) {
	defer s.hangups.close()
	var wg sync.WaitGroup
	wg.Go(func() { s.access.Run(ctx) })
	wg.Go(func() { s.clock.Run(ctx) })
	defer wg.Wait()
	s.served.run(ctx)
}

// Started is closed once the stream was found and streams can be served.
func (s *Server) Started() <-chan struct{} { return s.served.upstream.Started() }

// Failed receives an error, once, when a setting cannot work with the
// stream (NATSSE_SUBJECTS outside its subjects, a stream JetStream refuses
// to create): the caller must stop with it, as cmd/natsse does.
func (s *Server) Failed() <-chan error { return s.served.upstream.Failed() }

// Subjects are the subjects served over HTTP, once the stream was found
// (nil before).
func (s *Server) Subjects() []string {
	if served := s.served.upstream.Served(); served != nil {
		return served.Subjects()
	}
	return nil
}

// AccessControl says who may subscribe, for the startup log: "anonymous",
// or JWT with the algorithm or the JWKS URL.
func (s *Server) AccessControl() string { return s.access.Describe() }

// Ready says whether the server can serve new streams, and why not.
func (s *Server) Ready() (bool, string) {
	up := s.served.upstream
	switch {
	case s.streams.isDraining():
		return false, "draining: shutting down"
	case s.access.Waiting() != "":
		return false, s.access.Waiting()
	case up.Served() == nil:
		return false, fmt.Sprintf("waiting for NATS and the stream %s", s.cfg.Stream)
	case !up.Ready():
		return false, fmt.Sprintf("NATS or the stream %s is unreachable", s.cfg.Stream)
	case !up.Delivering():
		return false, up.Stuck()
	}
	if s.cfg.StoreHealth != nil {
		if err := s.cfg.StoreHealth(); err != nil {
			return false, err.Error()
		}
	}
	return true, "ok"
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
