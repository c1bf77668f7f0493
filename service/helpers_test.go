package service_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/natsse/natsse/embedded"
	"github.com/natsse/natsse/service"
	"github.com/natsse/natsse/service/ssetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// net/http keeps idle client connections' loops until they time out.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// env is a real nats-server with JetStream and natsse serving it over HTTP.
type env struct {
	t    *testing.T
	ns   *embedded.Server
	nc   *nats.Conn // the publisher's connection
	js   jetstream.JetStream
	svc  *service.Server
	http *httptest.Server
	url  string
}

// startNATS starts an in-process nats-server with the EVENTS stream.
func startNATS(t *testing.T) *embedded.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	ns, err := embedded.Start(ctx, embedded.Options{StoreDir: t.TempDir(), Listen: "-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// start runs natsse with cfg on a fresh nats-server.
func start(t *testing.T, cfg service.Config) *env {
	t.Helper()
	ns := startNATS(t)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return startOn(t, ns, nc, cfg)
}

// startOn runs natsse on the connection nc (which it does not own).
func startOn(t *testing.T, ns *embedded.Server, nc *nats.Conn, cfg service.Config) *env {
	t.Helper()
	cfg.StreamCreate = true
	cfg.WriteTimeout = testWriteTimeout(cfg.WriteTimeout)
	if cfg.UpstreamIdle == 0 {
		// Most tests store events and then look at what natsse's upstream
		// received, as a replica with readers does: the upstream runs from
		// the start. Tests of its life set their own.
		cfg.UpstreamIdle = -1
	}
	return serveEnv(t, ns, nc, cfg)
}

// serveEnv runs natsse with cfg on nc over HTTP until the test ends, and
// returns once it found a stream.
func serveEnv(t *testing.T, ns *embedded.Server, nc *nats.Conn, cfg service.Config) *env {
	t.Helper()
	svc, err := service.New(cfg, nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { svc.Run(ctx) })
	hs := httptest.NewServer(svc)
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		if svc.Drain(dctx) != nil {
			svc.Close()
		}
		hs.Close()
		cancel()
		wg.Wait()
	})
	select {
	case <-svc.Started():
	case err := <-svc.Failed():
		t.Fatalf("natsse failed: %v", err)
	case <-time.After(patience()):
		t.Fatal("natsse did not find its stream")
	}
	pub, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	js, _ := jetstream.New(pub)
	return &env{t: t, ns: ns, nc: pub, js: js, svc: svc, http: hs, url: hs.URL}
}

// publish stores one message and returns its stream sequence.
func (e *env) publish(subject, data string) uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	ack, err := e.js.Publish(ctx, subject, []byte(data))
	if err != nil {
		e.t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

// publishMany stores n messages asynchronously and waits for every ack.
func (e *env) publishMany(n int, subject func(i int) string, data func(i int) string) {
	e.t.Helper()
	if err := publishChunked(e.js, n, subject, data); err != nil {
		e.t.Fatal(err)
	}
}

// publishChunked publishes asynchronously in chunks, waiting for each
// chunk's acks, so a slow machine never stalls the publisher.
func publishChunked(js jetstream.JetStream, n int, subject func(i int) string, data func(i int) string) error {
	const chunk = 500
	for i := 0; i < n; i += chunk {
		for j := i; j < min(i+chunk, n); j++ {
			if _, err := js.PublishAsync(subject(j), []byte(data(j))); err != nil {
				return fmt.Errorf("publish %d: %w", j, err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(patience()):
			return fmt.Errorf("%d publishes not acknowledged", js.PublishAsyncPending())
		}
	}
	return nil
}

// client is one open SSE stream.
type client struct {
	t      *testing.T
	e      *env
	last   string // id of the last event read
	resp   *http.Response
	r      *ssetest.Reader
	cancel context.CancelFunc
}

// open starts a stream and checks it was accepted; the stream's lifetime
// is bounded (patience) so a test that waits for a missing event fails
// instead of hanging.
func (e *env) open(path string, header http.Header) *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	resp, r, err := ssetest.Dial(ctx, e.url+path, header)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	c := &client{t: e.t, e: e, resp: resp, r: r, cancel: cancel}
	e.t.Cleanup(c.close)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: status %d, want 200", path, resp.StatusCode)
	}
	first, err := r.Next()
	if err != nil || first.Retry < 0 {
		e.t.Fatalf("GET %s: first block %+v (%v), want a retry: line", path, first, err)
	}
	return c
}

func (c *client) close() { c.cancel(); _ = c.resp.Body.Close() }

// next returns the next event that carries data (or an id).
func (c *client) next() ssetest.Event {
	c.t.Helper()
	for {
		ev, err := c.r.Next()
		if err != nil {
			c.t.Fatalf("reading the stream after id %q: %v (natsse saw %v upstream events, %v open streams; ended: %s)", c.last, err,
				c.e.metric("natsse_upstream_events_total"), c.e.metric("natsse_streams_open"), c.e.endedStreams())
		}
		if ev.HasData || ev.HasID {
			c.last = ev.ID
			return ev
		}
	}
}

// expectSeqs reads events and checks their ids are exactly want, in order.
func (c *client) expectSeqs(from, to uint64) {
	c.t.Helper()
	for want := from; want <= to; want++ {
		ev := c.next()
		if ev.ID != strconv.FormatUint(want, 10) {
			c.t.Fatalf("event id %q (data %q), want %d", ev.ID, ev.Data, want)
		}
	}
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func seqPayload(i int) string { return fmt.Sprintf("m%d", i) }

// metric reads one unlabelled series from /metrics.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	f, ok := ssetest.Metric(resp.Body, name)
	if !ok {
		e.t.Fatalf("metric %s not found", name)
	}
	return f
}

// waitFor polls cond until it holds; for conditions with no event to await.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience())
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishMsg stores m, headers included, and returns its stream sequence.
func (e *env) publishMsg(m *nats.Msg) uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	ack, err := e.js.PublishMsg(ctx, m)
	if err != nil {
		e.t.Fatalf("publish %s: %v", m.Subject, err)
	}
	return ack.Sequence
}

// stream looks up the EVENTS stream.
func (e *env) stream(ctx context.Context) jetstream.Stream {
	e.t.Helper()
	s, err := e.js.Stream(ctx, "EVENTS")
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// storedTime returns the time JetStream stored message seq at.
func (e *env) storedTime(seq uint64) time.Time {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := e.stream(ctx).GetMsg(ctx, seq)
	if err != nil {
		e.t.Fatalf("get message %d: %v", seq, err)
	}
	return m.Time
}

// purge removes every stored message below keepFrom: the stream's first
// sequence becomes keepFrom.
func (e *env) purge(keepFrom uint64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.stream(ctx).Purge(ctx, jetstream.WithPurgeSequence(keepFrom)); err != nil {
		e.t.Fatal(err)
	}
}

// streamConsumers counts the consumers on the stream right now.
func (e *env) streamConsumers() int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := e.stream(ctx).Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Consumers
}

// endedStreams lists natsse_streams_ended_total's non-zero reasons, to say
// why a stream a test was reading ended.
func (e *env) endedStreams() string {
	var out []string
	for _, line := range strings.Split(e.scrape(), "\n") {
		if rest, ok := strings.CutPrefix(line, "natsse_streams_ended_total{"); ok && !strings.HasSuffix(rest, " 0") {
			out = append(out, rest)
		}
	}
	return strings.Join(out, ", ")
}

// testWriteTimeout is the write timeout of natsse in tests that do not set
// one: an hour, since a test's reading client starved of CPU on a busy
// machine must not be cut off as a client that stopped reading (which
// natsse does after 15 s by default, rightly). Tests of that set their own.
func testWriteTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return time.Hour
	}
	return d
}
