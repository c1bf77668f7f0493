package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Server serves SSE streams of one JetStream stream. Create it with New,
// start its upstream with Run, serve it as an http.Handler, and end it with
// Drain.
type Server struct {
	cfg     Config
	hub     *hub
	log     *slog.Logger
	metrics *metrics
	auth    *verifier // nil when access control is off

	hangups  *hangups
	open     atomic.Int64
	mu       sync.Mutex
	draining bool
	streams  map[*subscriber]struct{}
	done     sync.WaitGroup
	// perClient counts open streams by client address, under mu.
	perClient  map[netip.Addr]int
	xffIgnored sync.Once

	takeovers *takeovers // named cursors' takeovers across replicas
	conns     *connections
}

// New checks cfg and prepares a Server on the NATS connection nc, which it
// does not own.
func New(cfg Config, nc *nats.Conn) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, streams: map[*subscriber]struct{}{}, hangups: newHangups(), perClient: map[netip.Addr]int{}}
	s.metrics = newMetrics(s)
	s.conns = newConnections(cfg, s.trusted, s.metrics.connsRefused)
	var err error
	if s.auth, err = newVerifier(cfg.JWT, cfg.Logger); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	h, err := newHub(cfg, nc, s.metrics)
	if err != nil {
		return nil, err
	}
	s.hub = h
	h.recreated = s.closeAll
	s.takeovers = newTakeovers(s, nc)
	return s, nil
}

// Run consumes the stream until ctx ends; streams are served meanwhile.
func (s *Server) Run(ctx context.Context) {
	defer s.hangups.close()
	var wg sync.WaitGroup
	if s.auth != nil && s.auth.jwks != nil {
		wg.Go(func() { s.auth.jwks.run(ctx) })
	}
	wg.Go(func() { s.takeovers.run(ctx) })
	defer wg.Wait()
	s.hub.run(ctx)
}

// Started is closed once the stream was found and streams can be served.
func (s *Server) Started() <-chan struct{} { return s.hub.started }

// Ready says whether the server can serve new streams, and why not.
func (s *Server) Ready() (bool, string) {
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	switch {
	case draining:
		return false, "draining: shutting down"
	case s.auth != nil && s.auth.jwks != nil && !s.auth.jwks.loaded():
		return false, "waiting for the JWKS at " + s.cfg.JWT.JWKSURL
	case s.hub.state.Load() == nil:
		return false, fmt.Sprintf("waiting for NATS and the stream %s", s.cfg.Stream)
	case !s.hub.isReady():
		return false, fmt.Sprintf("NATS or the stream %s is unreachable", s.cfg.Stream)
	case !s.hub.delivering():
		return false, s.hub.stuckReason()
	}
	if s.cfg.StoreHealth != nil {
		if err := s.cfg.StoreHealth(); err != nil {
			return false, err.Error()
		}
	}
	return true, "ok"
}

// register counts a new stream, unless the server is draining or full, or
// the client already has its share of streams.
func (s *Server) register(sub *subscriber) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining || s.open.Load() >= int64(s.cfg.MaxStreams) {
		return false
	}
	if s.perClient[sub.client] >= s.cfg.MaxStreamsPerClient {
		s.metrics.clientLimit.Inc()
		return false
	}
	s.perClient[sub.client]++
	s.streams[sub] = struct{}{}
	s.open.Add(1)
	s.done.Add(1)
	return true
}

func (s *Server) unregister(sub *subscriber) {
	s.mu.Lock()
	delete(s.streams, sub)
	if s.perClient[sub.client]--; s.perClient[sub.client] <= 0 {
		delete(s.perClient, sub.client)
	}
	s.mu.Unlock()
	s.open.Add(-1)
	s.done.Done()
}

func (s *Server) setAbort(sub *subscriber, abort func()) {
	s.mu.Lock()
	sub.abort = abort
	s.mu.Unlock()
}

// Close ends every stream still open at once, even one blocked on a client
// that stopped reading: what Drain could not finish in time.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
	for sub := range s.streams {
		sub.close()
		if sub.abort != nil {
			sub.abort()
		}
	}
}

// closeAll ends every open stream after a final flush; their clients
// reconnect with their Last-Event-ID.
func (s *Server) closeAll() {
	s.mu.Lock()
	subs := make([]*subscriber, 0, len(s.streams))
	for sub := range s.streams {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.close()
	}
}

// Drain turns readiness off, refuses new streams softly, and closes open
// streams after a final flush, spread over a short window so that their
// reconnects do not arrive all in one instant. It returns when every stream
// has ended or ctx is done.
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	subs := make([]*subscriber, 0, len(s.streams))
	for sub := range s.streams {
		subs = append(subs, sub)
	}
	s.mu.Unlock()

	window := time.Second
	if d, ok := ctx.Deadline(); ok {
		window = min(window, time.Until(d)/4)
	}
	for i, sub := range subs {
		time.AfterFunc(window*time.Duration(i)/time.Duration(len(subs)), sub.close)
	}
	ended := make(chan struct{})
	go func() { s.done.Wait(); close(ended) }()
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("service: %d streams still open: %w", s.open.Load(), ctx.Err())
	}
}
