package main_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIdleConnectionsClosed: a connection with no request in flight is
// closed after NATSSE_IDLE_TIMEOUT — an HTTP/1.1 keep-alive connection after
// its answer, and an HTTP/2 connection (GOAWAY first) — so that idle
// connections cannot pile up.
func TestIdleConnectionsClosed(t *testing.T) {
	cert := selfSigned(t)
	p := startNatsse(t, append(cert.env(), "NATSSE_IDLE_TIMEOUT=1s")...)

	t.Run("HTTP/1.1", func(t *testing.T) {
		conn, err := tls.Dial("tcp", p.httpAddr, cert.tlsConfig("http/1.1"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(patience()))
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz: %v %v", resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("idle keep-alive connection: read %d bytes (%v), want it closed by natsse", n, err)
		}
	})

	t.Run("HTTP/2", func(t *testing.T) {
		conn, err := tls.Dial("tcp", p.httpAddr, cert.tlsConfig("h2"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := conn.ConnectionState().NegotiatedProtocol; got != "h2" {
			t.Fatalf("negotiated %q, want h2", got)
		}
		_ = conn.SetDeadline(time.Now().Add(patience()))
		// The client preface and an empty SETTINGS frame, then nothing.
		_, _ = io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
		goaway := false
		for {
			var head [9]byte
			if _, err := io.ReadFull(conn, head[:]); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("idle HTTP/2 connection: %v, want it closed by natsse", err)
				}
				break
			}
			n := int(binary.BigEndian.Uint32(append([]byte{0}, head[:3]...)))
			goaway = goaway || head[3] == 0x7
			if _, err := io.CopyN(io.Discard, conn, int64(n)); err != nil {
				t.Fatal(err)
			}
		}
		if !goaway {
			t.Error("the idle HTTP/2 connection closed without a GOAWAY frame")
		}
	})
}

// TestIdleFloodAtSmallFileLimit: under `ulimit -n 300`, idle keep-alive
// connections from one address, then from many, cannot use up natsse's
// open files: beyond NATSSE_MAX_CONNECTIONS_PER_CLIENT and the total budget
// (the file limit less NATSSE_RESERVED_FILES) new connections are closed
// at once, while other addresses are served, the embedded NATS keeps
// storing what is published, and an open stream keeps delivering — during
// the flood and after it.
func TestIdleFloodAtSmallFileLimit(t *testing.T) {
	const perClient = 20
	p := startNatsseLimited(t, 300, "NATSSE_MAX_CONNECTIONS_PER_CLIENT=20", "NATSSE_IDLE_TIMEOUT=1h")
	js := jetStream(t, p.natsURL)
	n := 0
	publishAndReceive := func(s *stream, when string) {
		t.Helper()
		n++
		publish(t, js, "events.flood", n)
		ev, err := s.next(t)
		if err != nil || ev.Data != payload(n) {
			t.Fatalf("%s: got %+v (%v), want event %d", when, ev, err, n)
		}
	}
	// A client of its own address, its stream open before the flood.
	s := openStreamWith(t, clientFrom(t, "127.0.0.3"), "http://"+p.httpAddr+"/events/flood", nil)
	s.expectRetry(t, 200)

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	// One address: exactly perClient idle connections are answered.
	answered := 0
	for range 3 * perClient {
		c, ok := idleConn(t, "127.0.0.2", p.httpAddr)
		if ok {
			answered++
			flood = append(flood, c)
		}
	}
	if answered != perClient {
		t.Errorf("127.0.0.2: %d idle connections answered, want NATSSE_MAX_CONNECTIONS_PER_CLIENT=%d", answered, perClient)
	}
	if c, ok := idleConn(t, "127.0.0.4", p.httpAddr); !ok {
		t.Error("another address was refused while one address flooded")
	} else {
		c.Close()
	}
	publishAndReceive(s, "during the flood from one address")

	// Many addresses, perClient each, until the total budget refuses.
	refused := 0
	for i := 1; i <= 30 && refused == 0; i++ {
		for range perClient {
			c, ok := idleConn(t, fmt.Sprintf("127.0.1.%d", i), p.httpAddr)
			if !ok {
				refused++
				break
			}
			flood = append(flood, c)
		}
	}
	if refused == 0 {
		t.Fatalf("%d idle connections from 31 addresses were all answered under ulimit -n 300: no connection budget", len(flood))
	}
	publishAndReceive(s, "with the connection budget full")

	for _, c := range flood {
		c.Close()
	}
	flood = nil
	waitForServed(t, "127.0.0.4", p.httpAddr)
	publishAndReceive(s, "after the flood")
	fresh := openStreamWith(t, clientFrom(t, "127.0.0.4"), "http://"+p.httpAddr+"/events/flood?lastEventId=0", nil)
	fresh.expectRetry(t, 200)
	for i := 1; i <= n; i++ {
		fresh.expectMessage(t, i)
	}
	logs := p.stderr.String()
	for _, line := range []string{"connection budget full", "NATSSE_MAX_CONNECTIONS_PER_CLIENT connections open"} {
		if c := strings.Count(logs, line); c != 1 {
			t.Errorf("%q logged %d times, want once", line, c)
		}
	}
	if strings.Contains(logs, "too many open files") {
		t.Errorf("natsse or its NATS ran out of files:\n%s", logs)
	}
}

// tlsConfig trusts only c and offers protos by ALPN.
func (c testCert) tlsConfig(protos ...string) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(c.cert)
	return &tls.Config{RootCAs: roots, NextProtos: protos}
}

// idleConn opens a connection from the local address from, asks GET
// /healthz and leaves the connection idle. ok is false when natsse closed
// it without an answer (a connection budget was full).
func idleConn(t *testing.T, from, addr string) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil, false // closed by natsse before the dial returned
	}
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	_ = c.SetDeadline(time.Now().Add(patience()))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: natsse\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz from %s: %d", from, resp.StatusCode)
	}
	_ = c.SetDeadline(time.Time{})
	return c, true
}

// clientFrom is an HTTP client whose connections come from the local
// address from (any of 127.0.0.0/8 reaches natsse on 127.0.0.1).
func clientFrom(t *testing.T, from string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// waitForServed waits until a connection from from is answered again.
func waitForServed(t *testing.T, from, addr string) {
	t.Helper()
	deadline := time.Now().Add(patience())
	for {
		if c, ok := idleConn(t, from, addr); ok {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections from %s still refused after the flood ended", from)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
