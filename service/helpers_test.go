package service_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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
		_ = svc.Drain(dctx)
		hs.Close()
		cancel()
		wg.Wait()
	})
	select {
	case <-svc.Started():
	case <-time.After(20 * time.Second):
		t.Fatal("natsse did not find its stream within 20s")
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
	for i := range n {
		if _, err := e.js.PublishAsync(subject(i), []byte(data(i))); err != nil {
			e.t.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		e.t.Fatalf("%d publishes not acknowledged in 60s", e.js.PublishAsyncPending())
	}
}

// client is one open SSE stream.
type client struct {
	t      *testing.T
	resp   *http.Response
	r      *ssetest.Reader
	cancel context.CancelFunc
}

// open starts a stream and checks it was accepted; the stream's lifetime
// is bounded so a test that waits for a missing event fails instead of
// hanging.
func (e *env) open(path string, header http.Header) *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	resp, r, err := ssetest.Dial(ctx, e.url+path, header)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	c := &client{t: e.t, resp: resp, r: r, cancel: cancel}
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
			c.t.Fatalf("reading the stream: %v", err)
		}
		if ev.HasData || ev.HasID {
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
