package service_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy forwards TCP connections on loopback to a target until it is
// frozen: then it stops forwarding without closing anything, like a link
// that died without a FIN or an RST (a pulled cable, a partition). What
// either side sends is lost, nothing arrives, and new connections are
// accepted but lead nowhere.
type proxy struct {
	target string
	ln     net.Listener
	frozen atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// startProxy listens on a free loopback port; the test's end closes it.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, ln: ln, conns: []net.Conn{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }
func (p *proxy) url() string  { return "nats://" + p.addr() }

// freeze stops all forwarding, for good.
func (p *proxy) freeze() { p.frozen.Store(true) }

func (p *proxy) accept() {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(conn) {
			return
		}
		if p.frozen.Load() {
			p.wg.Go(func() { p.pump(conn, nil) })
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			conn.Close() // the target is down: as it would be without the proxy
			continue
		}
		if !p.track(up) {
			return
		}
		p.wg.Go(func() { p.pump(conn, up) })
		p.wg.Go(func() { p.pump(up, conn) })
	}
}

// track remembers conn so that close can end it; false once closed.
func (p *proxy) track(conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		conn.Close()
		return false
	}
	p.conns = append(p.conns, conn)
	return true
}

// pump copies from src to dst while the proxy is not frozen, and drops
// what it reads once it is. Either side closing closes the other.
func (p *proxy) pump(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if !p.frozen.Load() {
				src.Close()
				if dst != nil {
					dst.Close()
				}
			}
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}
