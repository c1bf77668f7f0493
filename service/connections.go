package service

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// connections bounds the client connections the process holds open — idle
// keep-alive ones, refused requests' ones, HTTP/2 ones and taken-over
// streams alike — in total and per client address. Each costs an open file:
// unbounded, a flood of idle connections used up the process's files, and
// nats-server (embedded) then failed its own writes and stayed broken. The
// total stays below the open-file limit by ReservedFiles, which nats-server
// and natsse's own files keep. A connection beyond a budget is closed the
// moment it is accepted, before net/http reads anything from it.
type connections struct {
	max, perClient int
	trusted        func(netip.Addr) bool // proxies: many clients share their address
	log            *slog.Logger
	refused        *prometheus.CounterVec

	mu     sync.Mutex
	open   map[net.Conn]netip.Addr
	byAddr map[netip.Addr]int
	warned [2]atomic.Bool // full: total, per client; logged once each
}

func newConnections(cfg Config, trusted func(netip.Addr) bool, refused *prometheus.CounterVec) *connections {
	return &connections{
		max: cfg.MaxConnections, perClient: cfg.MaxConnectionsPerClient, trusted: trusted,
		log: cfg.Logger, refused: refused,
		open: map[net.Conn]netip.Addr{}, byAddr: map[netip.Addr]int{},
	}
}

// ConnState is the http.Server hook that keeps the connection budget: set
// it as the ConnState of every http.Server that serves s. Taken-over
// streams keep counting until natsse closes them.
func (s *Server) ConnState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		if !s.conns.admit(c) {
			if tcp, ok := c.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0) // a reset: nothing is left in TIME_WAIT
			}
			_ = c.Close()
		}
	case http.StateClosed:
		s.conns.release(c)
	}
}

// admit counts c unless a budget is full.
func (cs *connections) admit(c net.Conn) bool {
	addr := peerAddr(c.RemoteAddr().String())
	cs.mu.Lock()
	defer cs.mu.Unlock()
	switch {
	case len(cs.open) >= cs.max:
		cs.refuse(0, "total", "connection budget full: refusing new connections (NATSSE_MAX_CONNECTIONS; the open-file limit less NATSSE_RESERVED_FILES by default)", "open", len(cs.open))
		return false
	case addr.IsValid() && cs.byAddr[addr] >= cs.perClient && !cs.trusted(addr):
		cs.refuse(1, "per_client", "a client address has NATSSE_MAX_CONNECTIONS_PER_CLIENT connections open: refusing more from it (behind a load balancer, set NATSSE_TRUSTED_PROXIES)", "client", addr.String())
		return false
	}
	cs.open[c] = addr
	cs.byAddr[addr]++
	return true
}

func (cs *connections) refuse(kind int, reason, msg string, attrs ...any) {
	cs.refused.WithLabelValues(reason).Inc()
	if !cs.warned[kind].Swap(true) {
		cs.log.Warn(msg, attrs...)
	}
}

// release uncounts c; closing twice is harmless.
func (cs *connections) release(c net.Conn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	addr, ok := cs.open[c]
	if !ok {
		return
	}
	delete(cs.open, c)
	if cs.byAddr[addr]--; cs.byAddr[addr] <= 0 {
		delete(cs.byAddr, addr)
	}
}

func (cs *connections) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.open)
}
