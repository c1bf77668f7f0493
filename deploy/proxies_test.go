package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The shipped proxy configurations (nginx/natsse.conf, caddy/Caddyfile), run
// by the real proxy in front of the real natsse binary, each with its
// addresses replaced for the test and nothing else: events pass one by one as
// natsse writes them, Last-Event-ID reaches natsse, natsse counts clients by
// the address the proxy forwards, publishes pass as natsse's own origin, and
// the proxy keeps its connections to natsse alive. docs/production.md says
// only what these check.

// findProxy is the path of a proxy's binary. Without it the test skips, or
// fails with NATSSE_PROXIES_REQUIRED=1 (as in CI, which installs them).
func findProxy(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("NATSSE_PROXIES_REQUIRED") == "1" {
		t.Fatalf("%s not found and NATSSE_PROXIES_REQUIRED=1: apt-get install -y %s", name, name)
	}
	t.Skipf("install %s: apt-get install -y %s", name, name)
	return ""
}

// proxy is a running proxy in front of natsse.
type proxy struct {
	*proc
	base   string // URL of natsse through the proxy, base path included
	origin string // scheme://host[:port] of base, as a browser sends Origin
	addr   string // where the proxy listens
	tls    *tls.Config
	// conns is how many connections to natsse the proxy may hold for
	// sequential requests (Caddy's health checks share its pool).
	conns int
}

// client is an HTTP client whose connections to the proxy come from the
// loopback address source, so that natsse can tell clients apart by the
// address the proxy forwards. Connections close when the test ends.
func (p *proxy) client(t *testing.T, source string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, p.addr)
		},
		TLSClientConfig:   p.tls,
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// publish POSTs payload(i) to events.demo through the proxy, as a page of
// natsse's own origin does (Origin, no fetch metadata), and checks that it
// was stored as sequence i.
func (p *proxy) publish(t *testing.T, ctx context.Context, c *http.Client, i int) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/events/demo", strings.NewReader(payload(i)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", p.origin)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("publish %d: %v", i, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var ack struct{ Seq int }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &ack) != nil || ack.Seq != i {
		t.Fatalf("publish %d through the proxy: %d %s, want 201 and seq %d (a 403 means natsse did not see its own origin in Host)", i, resp.StatusCode, body, i)
	}
}

// waitServing waits until natsse answers /readyz 200 through the proxy.
func (p *proxy) waitServing(t *testing.T, ctx context.Context) {
	t.Helper()
	c := p.client(t, "127.0.0.1")
	last := ""
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/readyz", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok" {
				return
			}
			last = fmt.Sprintf("%s %q", resp.Status, body)
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited: %v", p.name, p.err)
		case <-ctx.Done():
			t.Fatalf("%s/readyz never answered 200 through %s (last: %s)", p.base, p.name, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// renderConfig writes the shipped config file with each of the pairs' old strings,
// which must occur exactly once, replaced by the new, to dir/name.
func renderConfig(t *testing.T, shipped, dir, name string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(pairs); i += 2 {
		if n := strings.Count(s, pairs[i]); n != 1 {
			t.Fatalf("%s: %q occurs %d times, the test replaces it once", shipped, pairs[i], n)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startNginx runs nginx with deploy/nginx/natsse.conf in front of n: both
// upstream servers are n, it listens on a loopback port, and under a base
// path its location is the prefix. The main configuration is the test's
// (nginx.conf's part on a real machine): one process, files in a temporary
// directory, logs to stderr.
func startNginx(t *testing.T, ctx context.Context, natsseAddr, basePath string) *proxy {
	t.Helper()
	bin := findProxy(t, "nginx")
	dir := t.TempDir()
	port := strconv.Itoa(freePort(t))
	pairs := []string{
		"server natsse1:8080;", "server " + natsseAddr + ";",
		"server natsse2:8080;", "server " + natsseAddr + ";",
		"listen 80;", "listen 127.0.0.1:" + port + ";",
	}
	if basePath != "" {
		pairs = append(pairs, "location / {", "location "+basePath+"/ {")
	}
	site := renderConfig(t, "nginx/natsse.conf", dir, "natsse.conf", pairs...)
	main := filepath.Join(dir, "nginx.conf")
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr notice;
events { worker_connections 128; }
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	include %[2]s;
}
`, dir, site)
	if err := os.WriteFile(main, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", dir, "-c", main, "-e", "stderr"}
	if out, err := exec.CommandContext(ctx, bin, append(args, "-t")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	p := &proxy{
		proc:   start(t, "nginx", exec.CommandContext(t.Context(), bin, args...), nil),
		base:   "http://127.0.0.1:" + port + basePath,
		origin: "http://127.0.0.1:" + port,
		addr:   "127.0.0.1:" + port,
		conns:  1,
	}
	return p
}

// startCaddy runs Caddy with deploy/caddy/Caddyfile in front of natsse1 and
// natsse2 (which may be the same). The site keeps its name; the test's global
// options (a Caddyfile's first block, which the shipped file leaves to the
// user) make Caddy issue its certificate from its own local CA instead of
// Let's Encrypt, listen on one loopback port, run no admin API, and keep its
// files in a temporary directory.
func startCaddy(t *testing.T, ctx context.Context, natsse1, natsse2 *natsse) *proxy {
	t.Helper()
	bin := findProxy(t, "caddy")
	dir := t.TempDir()
	port := strconv.Itoa(freePort(t))
	matcher, health := "", "/readyz"
	if natsse1.basePath != "" {
		matcher, health = natsse1.basePath+"/* ", natsse1.basePath+"/readyz"
	}
	site := renderConfig(t, "caddy/Caddyfile", dir, "site",
		"reverse_proxy natsse1:8080 natsse2:8080 {", "reverse_proxy "+matcher+natsse1.httpAddr+" "+natsse2.httpAddr+" {",
		"health_uri /readyz", "health_uri "+health)
	b, err := os.ReadFile(site)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	global := fmt.Sprintf(`{
	admin off
	local_certs
	skip_install_trust
	auto_https disable_redirects
	default_bind 127.0.0.1
	https_port %s
	storage file_system %s
}
`, port, data)
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, append([]byte(global), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "run", "--adapter", "caddyfile", "--config", caddyfile)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+data, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	p := &proxy{
		proc:   start(t, "caddy", cmd, nil),
		base:   "https://natsse.example.com:" + port + natsse1.basePath,
		origin: "https://natsse.example.com:" + port,
		addr:   "127.0.0.1:" + port,
		// Caddy's health checks run one per upstream, concurrently with a
		// request, on the same pool of connections.
		conns: 3,
	}
	// Caddy makes its local CA at startup.
	root := filepath.Join(data, "pki", "authorities", "local", "root.crt")
	for {
		if pem, err := os.ReadFile(root); err == nil {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				p.tls = &tls.Config{RootCAs: pool, ServerName: "natsse.example.com"}
				break
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("caddy exited: %v", p.err)
		case <-ctx.Done():
			t.Fatalf("caddy made no local CA at %s", root)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return p
}

func TestNginx(t *testing.T) {
	findProxy(t, "nginx")
	for _, basePath := range []string{"", "/gw"} {
		t.Run("basePath="+basePath, func(t *testing.T) {
			ctx := patience(t)
			n := startNatsse(t, ctx, proxyEnv(basePath)...)
			p := startNginx(t, ctx, n.httpAddr, basePath)
			p.waitServing(t, ctx)
			checkProxy(t, ctx, p, n, "HTTP/1.1")
		})
	}
}

func TestCaddy(t *testing.T) {
	findProxy(t, "caddy")
	for _, basePath := range []string{"", "/gw"} {
		t.Run("basePath="+basePath, func(t *testing.T) {
			ctx := patience(t)
			n := startNatsse(t, ctx, proxyEnv(basePath)...)
			p := startCaddy(t, ctx, n, n)
			p.waitServing(t, ctx)
			checkProxy(t, ctx, p, n, "HTTP/2.0")
		})
	}
}

// proxyEnv is natsse's environment behind the proxy: the proxy (on
// 127.0.0.1) trusted for X-Forwarded-For, and one stream per client
// address, so that the test sees which address natsse counts.
func proxyEnv(basePath string) []string {
	env := []string{"NATSSE_TRUSTED_PROXIES=127.0.0.1", "NATSSE_MAX_STREAMS_PER_CLIENT=1"}
	if basePath != "" {
		env = append(env, "NATSSE_BASE_PATH="+basePath)
	}
	return env
}

// checkProxy checks natsse through p. Clients come from loopback addresses
// other than the proxy's own 127.0.0.1.
func checkProxy(t *testing.T, ctx context.Context, p *proxy, n *natsse, proto string) {
	publisher := p.client(t, "127.0.0.1")
	alice, bob := p.client(t, "127.0.0.2"), p.client(t, "127.0.0.3")
	port, _ := strconv.Atoi(n.httpAddr[strings.LastIndexByte(n.httpAddr, ':')+1:])

	// Keep-alive: sequential publishes reuse the proxy's connections to
	// natsse rather than open one each (checked before any stream holds one).
	var first, seen map[int]bool
	seen = map[int]bool{}
	for i := 1; i <= 5; i++ {
		p.publish(t, ctx, publisher, i)
		now := connsTo(t, p.cmd.Process.Pid, port)
		if i == 1 {
			first = now
		}
		for c := range now {
			seen[c] = true
		}
		if i == 5 && !overlap(first, now) || len(seen) > p.conns {
			t.Fatalf("%s's connections to natsse: %v after the first publish, %v after publish %d, %d seen: want them kept alive and reused", p.name, first, now, i, len(seen))
		}
	}

	// Events pass one at a time: each is published only once the one before
	// came through, which a proxy holding them in a buffer never lets happen.
	a := openSSE(t, ctx, alice, p.base+"/events/demo", http.Header{"Last-Event-ID": {"5"}})
	if a.resp.StatusCode != http.StatusOK || a.resp.Proto != proto {
		t.Fatalf("stream through %s: %s %s, want 200 over %s", p.name, a.resp.Proto, a.resp.Status, proto)
	}
	if ct := a.resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Errorf("Content-Type %q through %s", ct, p.name)
	}
	a.expectRetry(t, ctx)
	for i := 6; i <= 8; i++ {
		p.publish(t, ctx, publisher, i)
		a.expectEvent(t, ctx, i)
	}

	// Resuming: Last-Event-ID reaches natsse, which replays what came after.
	// bob has a stream open while alice has one: natsse counts them apart,
	// by the address the proxy put in X-Forwarded-For (counted as the proxy,
	// the second would get the soft refusal).
	b := openSSE(t, ctx, bob, p.base+"/events/demo", http.Header{"Last-Event-ID": {"6"}})
	b.expectRetry(t, ctx)
	if ev, err := b.next(t, ctx); errors.Is(err, io.EOF) {
		t.Fatalf("bob's stream ended after its retry: line, natsse's soft refusal: it counted bob as alice (the proxy sent no X-Forwarded-For with his address)")
	} else if err != nil || ev.ID != "7" || ev.Data != payload(7) {
		t.Fatalf("bob's resumed stream: got %+v (%v), want event 7", ev, err)
	}
	b.expectEvent(t, ctx, 8)
	p.publish(t, ctx, publisher, 9)
	a.expectEvent(t, ctx, 9)
	b.expectEvent(t, ctx, 9)

	// alice's second stream is refused: natsse counted her by the address
	// the proxy saw, not by the X-Forwarded-For she sent herself.
	before := n.metric(t, ctx, "natsse_client_limit_refusals_total")
	again := openSSE(t, ctx, alice, p.base+"/events/demo", http.Header{"X-Forwarded-For": {"203.0.113.7"}})
	again.expectSoftRefusal(t, ctx)
	if after := n.metric(t, ctx, "natsse_client_limit_refusals_total"); after != before+1 {
		t.Errorf("natsse_client_limit_refusals_total %v, then %v: want one more for alice's second stream", before, after)
	}
}

func overlap(a, b map[int]bool) bool {
	for k := range a {
		if b[k] {
			return true
		}
	}
	return false
}

// TestCaddyReadyz: Caddy sends streams only to a replica whose /readyz is
// 200. The other replica is up but cannot serve (its stream does not exist):
// it answers every stream with the soft refusal, and least_conn would send
// it every second stream while the first stays open on the ready one.
func TestCaddyReadyz(t *testing.T) {
	findProxy(t, "caddy")
	ctx := patience(t)
	ready := startNatsse(t, ctx)
	unready := startNatsse(t, ctx, "NATS_URL="+ready.natsURL, "NATSSE_ANONYMOUS=true", "NATSSE_STREAM=MISSING")
	if body, status := get(t, ctx, http.DefaultClient, "http://"+unready.httpAddr+"/readyz"); status != http.StatusServiceUnavailable {
		t.Fatalf("the unready replica's /readyz: %d %s, want 503", status, body)
	}
	p := startCaddy(t, ctx, ready, unready)
	p.waitServing(t, ctx)
	c := p.client(t, "127.0.0.2")

	// Until Caddy's first health check, streams may reach the unready
	// replica; from then on, three open at once all on the ready one.
	var streams []*sse
	for len(streams) < 3 {
		s := openSSE(t, ctx, c, p.base+"/events/demo", nil)
		if s.resp.StatusCode == http.StatusOK && s.resp.ContentLength < 0 {
			s.expectRetry(t, ctx)
			streams = append(streams, s)
			continue
		}
		// The soft refusal has a length; a stream has none.
		s.resp.Body.Close()
		for _, o := range streams {
			o.resp.Body.Close()
		}
		streams = nil
		select {
		case <-ctx.Done():
			t.Fatalf("Caddy kept sending streams to the replica whose /readyz is 503")
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.publish(t, ctx, p.client(t, "127.0.0.1"), 1)
	for _, s := range streams {
		s.expectEvent(t, ctx, 1)
	}
}

// TestNginxNoReplica: with no replica taking connections, nginx answers
// EventSource requests as natsse's soft refusal does (200, a retry: line, the
// end), so that browsers come back instead of giving up on a 502; a publish
// still gets nginx's 502.
func TestNginxNoReplica(t *testing.T) {
	findProxy(t, "nginx")
	ctx := patience(t)
	p := startNginx(t, ctx, "127.0.0.1:"+strconv.Itoa(freePort(t)), "")
	c := p.client(t, "127.0.0.2")
	for {
		// Until nginx listens.
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/readyz", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("nginx exited: %v", p.err)
		case <-ctx.Done():
			t.Fatal("nginx never answered")
		case <-time.After(50 * time.Millisecond):
		}
	}
	s := openSSE(t, ctx, c, p.base+"/events/demo", nil)
	if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("nginx without a replica: %s, Content-Type %q; want 200 text/event-stream, which EventSource retries", s.resp.Status, s.resp.Header.Get("Content-Type"))
	}
	s.expectSoftRefusal(t, ctx)
	p.expectPublishStatus(t, ctx, c, http.StatusBadGateway)
}

// TestCaddyNoReadyReplica: with no replica ready, Caddy answers EventSource
// requests as natsse's soft refusal does (200, a retry: line, the end), so
// that browsers come back instead of giving up on a 503; a publish still
// gets Caddy's 503.
func TestCaddyNoReadyReplica(t *testing.T) {
	findProxy(t, "caddy")
	ctx := patience(t)
	nats := startNatsse(t, ctx)
	unready := startNatsse(t, ctx, "NATS_URL="+nats.natsURL, "NATSSE_ANONYMOUS=true", "NATSSE_STREAM=MISSING")
	p := startCaddy(t, ctx, unready, unready)
	c := p.client(t, "127.0.0.2")
	// Until Caddy's first health check, natsse answers with its own soft
	// refusal, which carries X-Accel-Buffering; then Caddy answers itself.
	for {
		s := openSSE(t, ctx, c, p.base+"/events/demo", nil)
		if s.resp.Header.Get("X-Accel-Buffering") != "" {
			s.resp.Body.Close()
			select {
			case <-ctx.Done():
				t.Fatalf("Caddy kept sending streams to the replica whose /readyz is 503")
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("Caddy without a ready replica: %s, Content-Type %q; want 200 text/event-stream, which EventSource retries", s.resp.Status, s.resp.Header.Get("Content-Type"))
		}
		s.expectSoftRefusal(t, ctx)
		break
	}
	p.expectPublishStatus(t, ctx, c, http.StatusServiceUnavailable)
}

// expectPublishStatus: a publish through the proxy gets the proxy's status,
// not the soft refusal meant for EventSource.
func (p *proxy) expectPublishStatus(t *testing.T, ctx context.Context, c *http.Client, status int) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/events/demo", strings.NewReader(payload(1)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", p.origin)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Errorf("publish with no replica to take it: %s from %s, want %d", resp.Status, p.name, status)
	}
}
