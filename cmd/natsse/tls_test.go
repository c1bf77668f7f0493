package main_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsse/natsse/service/ssetest"
)

// TestTLSHTTP2ManyStreamsOneConnection: with a certificate natsse speaks
// HTTP/2, and one TCP connection carries 20 concurrent streams that all get
// a published event, and heartbeats.
func TestTLSHTTP2ManyStreamsOneConnection(t *testing.T) {
	cert := selfSigned(t)
	p := startNatsse(t, append(cert.env(), "NATSSE_HEARTBEAT=300ms")...)
	if !strings.Contains(p.stderr.String(), `"subscribe":"curl -N https://`) {
		t.Errorf("the banner does not show an https URL:\n%s", p.stderr.String())
	}
	js := jetStream(t, p.natsURL)
	var dials atomic.Int32
	client := cert.client(t, true, &dials)
	url := "https://" + p.httpAddr + "/events/h2"

	// The first stream sets up the connection; the others then open at once.
	const n = 20
	streams := []*stream{openStreamWith(t, client, url, nil)}
	type dialed struct {
		resp *http.Response
		r    *ssetest.Reader
		err  error
	}
	rest := make([]dialed, n-1)
	var wg sync.WaitGroup
	for i := range rest {
		wg.Go(func() {
			resp, r, err := ssetest.DialWith(t.Context(), client, url, nil)
			rest[i] = dialed{resp, r, err}
		})
	}
	wg.Wait()
	for _, d := range rest {
		if d.err != nil {
			t.Fatalf("GET %s: %v", url, d.err)
		}
		streams = append(streams, readStream(t, d.resp, d.r))
	}
	for _, s := range streams {
		if s.resp.ProtoMajor != 2 {
			t.Fatalf("GET %s: got %s, want HTTP/2", url, s.resp.Proto)
		}
		checkStreamHeaders(t, s.resp)
		s.expectRetry(t, 200)
	}
	if got := metricOver(t, client, "https://"+p.httpAddr, "natsse_streams_open"); got != n {
		t.Errorf("natsse_streams_open: got %v, want %d", got, n)
	}
	publish(t, js, "events.h2", 1)
	for _, s := range streams {
		s.expectMessage(t, 1)
	}

	// Heartbeats and their flushes reach an idle HTTP/2 stream.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, r, err := ssetest.DialWith(ctx, client, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r.ReadComments = true
	if ev, err := r.Next(); err != nil || ev.Retry != 200 {
		t.Fatalf("heartbeat stream: first block %+v (%v), want retry: 200", ev, err)
	}
	if ev, err := r.Next(); err != nil || len(ev.Comments) == 0 || ev.HasData {
		t.Fatalf("heartbeat stream: got %+v (%v), want a comment block", ev, err)
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("TCP connections made: %d, want 1 for %d streams, the metrics and the heartbeat stream", got, n)
	}
}

// TestTLSHTTP1: a client that does not speak HTTP/2 is served over
// HTTP/1.1 with TLS, and a stream whose client hangs up is counted out at
// once, without waiting for a write to fail.
func TestTLSHTTP1(t *testing.T) {
	cert := selfSigned(t)
	p := startNatsse(t, append(cert.env(), "NATSSE_HEARTBEAT=1h")...)
	js := jetStream(t, p.natsURL)
	client := cert.client(t, false, nil)
	base := "https://" + p.httpAddr

	s := openStreamWith(t, client, base+"/events/h1", nil)
	if s.resp.ProtoMajor != 1 || s.resp.TLS == nil {
		t.Fatalf("got %s (TLS %v), want HTTP/1.1 over TLS", s.resp.Proto, s.resp.TLS != nil)
	}
	checkStreamHeaders(t, s.resp)
	s.expectRetry(t, 200)
	publish(t, js, "events.h1", 1)
	s.expectMessage(t, 1)
	if got := metricOver(t, client, base, "natsse_streams_open"); got != 1 {
		t.Fatalf("natsse_streams_open: got %v, want 1", got)
	}
	s.resp.Body.Close() // closes the connection: the body was not read to its end
	deadline := time.Now().Add(patience())
	for metricOver(t, client, base, "natsse_streams_open") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream of a client that hung up is still open (heartbeat 1h: nothing is written to notice it)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTLSSettingsChecked: both files or neither, and files that load, or
// natsse does not start.
func TestTLSSettingsChecked(t *testing.T) {
	cert := selfSigned(t)
	cases := map[string][]string{
		"only the certificate": {"NATSSE_TLS_CERT=" + cert.certFile},
		"only the key":         {"NATSSE_TLS_KEY=" + cert.keyFile},
		"missing files":        {"NATSSE_TLS_CERT=" + cert.certFile + ".nope", "NATSSE_TLS_KEY=" + cert.keyFile},
		"key and cert swapped": {"NATSSE_TLS_CERT=" + cert.keyFile, "NATSSE_TLS_KEY=" + cert.certFile},
	}
	for name, env := range cases {
		out, err := runNatsse(t, env)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() <= 0 {
			t.Errorf("%s: got %v, want a non-zero exit\n%s", name, err, out)
			continue
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(out, "NATSSE_TLS_") {
			t.Errorf("%s: want one line naming the NATSSE_TLS_ setting, got:\n%s", name, out)
		}
	}
}

// TestHeaderLimit: request headers beyond NATSSE_MAX_HEADER_BYTES (plus
// the 4 KiB Go's server adds) get Go's 431 before natsse sees them.
func TestHeaderLimit(t *testing.T) {
	p := startNatsse(t, "NATSSE_MAX_HEADER_BYTES=1KiB")
	for size, want := range map[int]int{512: http.StatusOK, 8 << 10: http.StatusRequestHeaderFieldsTooLarge} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+p.httpAddr+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("x", size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("header of %d bytes: %v", size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("header of %d bytes: got %d, want %d", size, resp.StatusCode, want)
		}
	}
}

// testCert is a self-signed certificate for 127.0.0.1, ::1 and localhost,
// in files for natsse.
type testCert struct {
	certFile, keyFile string
	cert              *x509.Certificate
}

func selfSigned(t *testing.T) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "natsse test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := testCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), cert: cert}
	for file, block := range map[string]*pem.Block{c.certFile: {Type: "CERTIFICATE", Bytes: der}, c.keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c testCert) env() []string {
	return []string{"NATSSE_TLS_CERT=" + c.certFile, "NATSSE_TLS_KEY=" + c.keyFile}
}

// client trusts only c, speaks HTTP/2 if h2 (else HTTP/1.1 alone), and
// counts the TCP connections it makes in dials (if not nil).
func (c testCert) client(t *testing.T, h2 bool, dials *atomic.Int32) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(c.cert)
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials != nil {
				dials.Add(1)
			}
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // no "h2" by ALPN
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// metricOver reads one unlabelled series from base/metrics through client.
func metricOver(t *testing.T, client *http.Client, base, name string) float64 {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum, found := ssetest.Metric(resp.Body, name)
	if !found {
		t.Fatalf("metric %s not found", name)
	}
	return sum
}
