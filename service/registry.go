package service

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/natsse/natsse/service/refusal"
)

// registry counts the open SSE streams, in total and per client address,
// and ends them: one at a time (a takeover), all after a final flush (a
// recreated stream, Drain) or all at once (Close).
type registry struct {
	max, perClientMax int
	clientLimit       prometheus.Counter
	log               *slog.Logger
	// limitLogged: the per-client limit was logged (once), under mu.
	limitLogged bool

	open     atomic.Int64
	done     sync.WaitGroup
	mu       sync.Mutex
	draining bool
	streams  map[*sseStream]struct{}
	// perClient counts open streams by client address, under mu.
	perClient map[netip.Addr]int
}

func newRegistry(max, perClient int, clientLimit prometheus.Counter, log *slog.Logger) *registry {
	return &registry{max: max, perClientMax: perClient, clientLimit: clientLimit, log: log,
		streams: map[*sseStream]struct{}{}, perClient: map[netip.Addr]int{}}
}

// add counts a new stream, unless the server is draining or full, or the
// client already has its share of streams: then the soft refusal.
func (g *registry) add(ss *sseStream) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining || g.open.Load() >= int64(g.max) {
		return refusal.ErrSoft
	}
	if g.perClient[ss.client] >= g.perClientMax {
		g.clientLimit.Inc()
		if !g.limitLogged {
			// Behind a load balancer every client has its address, and the
			// limit becomes the whole service's (docs/operations.md, "Limits").
			g.limitLogged = true
			g.log.Info("a client address has NATSSE_MAX_STREAMS_PER_CLIENT streams open: refusing more from it softly (logged once; natsse_client_limit_refusals_total counts them); behind a load balancer or proxy, set NATSSE_TRUSTED_PROXIES to its addresses so that clients are told apart",
				"client", ss.client.String(), "limit", g.perClientMax)
		}
		return refusal.ErrSoft
	}
	g.perClient[ss.client]++
	g.streams[ss] = struct{}{}
	g.open.Add(1)
	g.done.Add(1)
	return nil
}

func (g *registry) remove(ss *sseStream) {
	g.mu.Lock()
	delete(g.streams, ss)
	if g.perClient[ss.client]--; g.perClient[ss.client] <= 0 {
		delete(g.perClient, ss.client)
	}
	g.mu.Unlock()
	g.open.Add(-1)
	g.done.Done()
}

func (g *registry) count() int64 { return g.open.Load() }

func (g *registry) wait() { g.done.Wait() }

func (g *registry) isDraining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.draining
}

// setAbort gives ss the way to cut its connection, once it has one.
func (g *registry) setAbort(ss *sseStream, abort func()) {
	g.mu.Lock()
	ss.abort = abort
	g.mu.Unlock()
}

// abort cuts a stream's connection, ending a write that waits on it.
func (g *registry) abort(ss *sseStream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ss.abort != nil {
		ss.abort()
	}
}

// closeNow ends every stream at once and refuses new ones.
func (g *registry) closeNow() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.draining = true
	for ss := range g.streams {
		ss.sub.Close()
		if ss.abort != nil {
			ss.abort()
		}
	}
}

// closeOf ends, after a final flush, the SSE streams of one served stream
// (deleted, or created again).
func (g *registry) closeOf(src *servedStream) {
	for _, ss := range g.list(false) {
		if ss.src == src {
			ss.sub.Close()
		}
	}
}

// drain refuses new streams from now on and returns the open ones.
func (g *registry) drain() []*sseStream { return g.list(true) }

func (g *registry) list(drain bool) []*sseStream {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.draining = g.draining || drain
	out := make([]*sseStream, 0, len(g.streams))
	for ss := range g.streams {
		out = append(out, ss)
	}
	return out
}
