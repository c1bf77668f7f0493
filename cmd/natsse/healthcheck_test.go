package main_test

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestHealthcheck: `natsse healthcheck` with the settings natsse runs with
// (TLS and a base path here) exits 0 while that instance is ready, and 1
// with the reason once it is gone.
func TestHealthcheck(t *testing.T) {
	cert := selfSigned(t)
	env := append(cert.env(), "NATSSE_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(freePort(t)), "NATSSE_BASE_PATH=/gateway", "NATSSE_SHUTDOWN_TIMEOUT=30s")
	p := startNatsse(t, env...)
	out, err := runNatsse(t, env, "healthcheck")
	if err != nil || !strings.Contains(out, "https://127.0.0.1:") || !strings.Contains(out, "/gateway/readyz: ok") {
		t.Fatalf("natsse healthcheck while ready: %v\n%s", err, out)
	}

	s := openStreamWith(t, cert.client(t, false, nil), "https://"+p.httpAddr+"/gateway/events/hc", nil)
	s.expectRetry(t, 200)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.expectEnd(t)
	<-p.exited
	out, err = runNatsse(t, env, "healthcheck")
	if err == nil || !strings.Contains(out, "healthcheck") {
		t.Fatalf("natsse healthcheck with natsse gone: exit 0\n%s", out)
	}
}

// freePort is a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
