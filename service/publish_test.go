package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service"
)

// posted is the answer to a POST.
type posted struct {
	status int
	header http.Header
	body   []byte
	ack    struct {
		Stream    string `json:"stream"`
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
	}
	problem problemDetail
}

// post sends body to path with the headers h (body nil: a body of unknown
// length, sent chunked).
func (e *env) post(path string, body io.Reader, h http.Header) posted {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	p := posted{status: resp.StatusCode, header: resp.Header}
	if p.body, err = io.ReadAll(resp.Body); err != nil {
		e.t.Fatalf("POST %s: reading the answer: %v", path, err)
	}
	switch ct := resp.Header.Get("Content-Type"); {
	case resp.StatusCode == http.StatusCreated:
		if ct != "application/json" || json.Unmarshal(p.body, &p.ack) != nil {
			e.t.Fatalf("POST %s: 201 with %q %q, want the JSON acknowledgement", path, ct, p.body)
		}
	case ct == "application/problem+json":
		if json.Unmarshal(p.body, &p.problem) != nil || p.problem.Status != resp.StatusCode || p.problem.Detail == "" {
			e.t.Fatalf("POST %s: %d %q, want a problem with the status and a detail", path, resp.StatusCode, p.body)
		}
	}
	return p
}

// expect checks the status of a POST; refusals must be problem+json.
func (p posted) expect(t *testing.T, what string, status int) posted {
	t.Helper()
	if p.status != status {
		t.Errorf("%s: got %d %s, want %d", what, p.status, p.body, status)
	}
	if status >= 400 && p.problem.Status != status {
		t.Errorf("%s: got %q, want problem+json", what, p.body)
	}
	return p
}

// storedMsgs is how many messages the EVENTS stream holds.
func (e *env) storedMsgs() uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	info, err := e.stream(ctx).Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

func anonymousPublish() service.Config { return service.Config{Publish: service.PublishAnonymous} }

// TestPublishThenSubscribe: a POST is stored on the path's subject; a
// subscriber gets it with id = the seq the POST answered and event = its
// SSE-Event header, and the answer came after the store (201 with seq).
func TestPublishThenSubscribe(t *testing.T) {
	e := start(t, anonymousPublish())
	c := e.open("/events/orders/eu", nil)
	p := e.post("/events/orders/eu", strings.NewReader(`{"status":"shipped"}`), header("SSE-Event", "order.shipped")).expect(t, "POST", http.StatusCreated)
	if p.ack.Stream != "EVENTS" || p.ack.Seq != 1 || p.ack.Duplicate {
		t.Errorf("answer %s, want stream EVENTS seq 1 not duplicate", p.body)
	}
	ev := c.next()
	if ev.ID != strconv.FormatUint(p.ack.Seq, 10) || ev.Event != "order.shipped" || ev.Data != `{"status":"shipped"}` {
		t.Errorf("event %+v, want id %d, event order.shipped and the body", ev, p.ack.Seq)
	}
	// Without SSE-Event, a plain message; the body may be empty.
	p = e.post("/events/orders/eu", nil, nil).expect(t, "POST without body", http.StatusCreated)
	if ev := c.next(); ev.ID != strconv.FormatUint(p.ack.Seq, 10) || ev.Event != "" || ev.Data != "" {
		t.Errorf("event %+v, want id %d, no event type, empty data", ev, p.ack.Seq)
	}
}

// TestPublishIdempotencyKey: the same Idempotency-Key twice stores once
// (Nats-Msg-Id: JetStream's de-duplication) and answers the first seq with
// duplicate true; another key stores again.
func TestPublishIdempotencyKey(t *testing.T) {
	e := start(t, anonymousPublish())
	first := e.post("/events/pay", strings.NewReader("a"), header("Idempotency-Key", "order-7")).expect(t, "first POST", http.StatusCreated)
	again := e.post("/events/pay", strings.NewReader("a"), header("Idempotency-Key", "order-7")).expect(t, "second POST", http.StatusCreated)
	if first.ack.Duplicate || !again.ack.Duplicate || again.ack.Seq != first.ack.Seq {
		t.Errorf("answers %s then %s: want the same seq, duplicate false then true", first.body, again.body)
	}
	other := e.post("/events/pay", strings.NewReader("a"), header("Idempotency-Key", "order-8")).expect(t, "other key", http.StatusCreated)
	if other.ack.Duplicate || other.ack.Seq != first.ack.Seq+1 {
		t.Errorf("another key: %s, want seq %d not duplicate", other.body, first.ack.Seq+1)
	}
	if n := e.storedMsgs(); n != 2 {
		t.Errorf("the stream holds %d messages, want 2", n)
	}
}

// TestPublishBinary: the body is stored as sent, byte for byte, whatever
// its type: every byte value, invalid UTF-8 and CR/LF included.
func TestPublishBinary(t *testing.T) {
	e := start(t, anonymousPublish())
	body := make([]byte, 0, 3*256)
	for i := range 3 * 256 {
		body = append(body, byte(i*7+i/256))
	}
	p := e.post("/events/blob", bytes.NewReader(body), header("Content-Type", "image/png")).expect(t, "POST", http.StatusCreated)
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	m, err := e.stream(ctx).GetMsg(ctx, p.ack.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, body) || m.Subject != "events.blob" {
		t.Errorf("stored %d bytes on %s, want the %d bytes sent on events.blob", len(m.Data), m.Subject, len(body))
	}
}

// TestPublishRefusals: every refusal is problem+json with its status, and
// nothing refused is stored.
func TestPublishRefusals(t *testing.T) {
	e := start(t, anonymousPublish())
	for _, path := range []string{"/events/a/*", "/events/>", "/events/%3E", "/events/a%2Eb", "/events//a", "/events/a/"} {
		e.post(path, strings.NewReader("x"), nil).expect(t, "POST "+path, http.StatusBadRequest)
	}
	for _, event := range []string{"reset", "expired"} {
		e.post("/events/a", strings.NewReader("x"), header("SSE-Event", event)).expect(t, "SSE-Event: "+event, http.StatusBadRequest)
	}
	e.post("/other/a", strings.NewReader("x"), nil).expect(t, "POST /other/a", http.StatusNotFound)

	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPut, "/events/a", "GET, POST"},
		{http.MethodDelete, "/events/a", "GET, POST"},
		{http.MethodHead, "/events/a", "GET, POST"},
		{http.MethodPost, "/sse?subject=events.a", "GET"},
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodPost, "/", "GET"},
	} {
		a := e.send(tc.method, tc.path, nil)
		if a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: got %d with Allow %q, want 405 with Allow: %s", tc.method, tc.path, a.status, a.header.Get("Allow"), tc.allow)
		}
	}

	limit := e.nc.MaxPayload()
	// Of known length, it is refused before it is read, saying its size.
	p := e.post("/events/big", bytes.NewReader(make([]byte, limit+1)), nil).expect(t, "a body over max_payload", http.StatusRequestEntityTooLarge)
	if want := strconv.FormatInt(limit+1, 10) + " bytes"; !strings.Contains(p.problem.Detail, want) {
		t.Errorf("413 detail %q, want it to say %q", p.problem.Detail, want)
	}
	// Of unknown length (chunked), it is found out while reading.
	e.post("/events/big", io.MultiReader(bytes.NewReader(make([]byte, limit)), strings.NewReader("x")), nil).expect(t, "a chunked body over max_payload", http.StatusRequestEntityTooLarge)
	// max_payload counts the headers too.
	e.post("/events/big", bytes.NewReader(make([]byte, limit)), header("SSE-Event", "big")).expect(t, "max_payload with headers", http.StatusRequestEntityTooLarge)
	if n := e.storedMsgs(); n != 0 {
		t.Errorf("the stream holds %d messages after refusals only, want 0", n)
	}
	// The largest body that fits is stored.
	e.post("/events/big", bytes.NewReader(make([]byte, limit-64)), nil).expect(t, "a body under max_payload", http.StatusCreated)
}

// TestPublishOff: with publishing off (the library's default), POST is 405
// with Allow: GET, as every method but GET, and nothing is stored.
func TestPublishOff(t *testing.T) {
	e := start(t, service.Config{})
	p := e.post("/events/a", strings.NewReader("x"), nil).expect(t, "POST", http.StatusMethodNotAllowed)
	if p.header.Get("Allow") != "GET" {
		t.Errorf("Allow %q, want GET", p.header.Get("Allow"))
	}
	if n := e.storedMsgs(); n != 0 {
		t.Errorf("the stream holds %d messages, want 0", n)
	}
}

// allowPublish is a token of testSecret whose natsse claim lets it publish
// to patterns (and subscribe to nothing).
func allowPublish(t *testing.T, patterns ...string) string {
	t.Helper()
	return mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
		"sub": "backend", "exp": time.Now().Add(time.Hour).Unix(),
		"natsse": map[string]any{"publish": patterns},
	})
}

// TestPublishToken: with NATSSE_PUBLISH=token, a publish needs a token
// whose natsse.publish claim holds the subject, from the Authorization
// header or access_token but never the cookie; checks go 400, 401, 404,
// 403 as for a stream.
func TestPublishToken(t *testing.T) {
	e := startSecret(t, service.Config{Publish: service.PublishToken, Subjects: []string{"events.>"}})
	good := allowPublish(t, "events.orders.>")
	subscribeOnly := allow(t, "events.>")
	cases := []struct {
		name, path string
		h          http.Header
		want       int
	}{
		{"wildcard, no token", "/events/orders/*", nil, http.StatusBadRequest},
		{"no token", "/events/orders/1", nil, http.StatusUnauthorized},
		{"no token, not served", "/other/x", nil, http.StatusUnauthorized},
		{"bad token", "/events/orders/1", bearer(good + "x"), http.StatusUnauthorized},
		{"token in the cookie only", "/events/orders/1", header("Cookie", "natsse_token="+good), http.StatusUnauthorized},
		{"not served", "/other/x", bearer(good), http.StatusNotFound},
		{"outside the publish claim", "/events/news/1", bearer(good), http.StatusForbidden},
		{"subscribe claim only", "/events/orders/1", bearer(subscribeOnly), http.StatusForbidden},
		{"bearer", "/events/orders/1", bearer(good), http.StatusCreated},
		{"access_token", "/events/orders/2?access_token=" + good, nil, http.StatusCreated},
	}
	for _, tc := range cases {
		p := e.post(tc.path, strings.NewReader("x"), tc.h).expect(t, tc.name, tc.want)
		if tc.want == http.StatusUnauthorized && p.header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("%s: 401 without WWW-Authenticate: Bearer", tc.name)
		}
	}
	if n := e.storedMsgs(); n != 2 {
		t.Errorf("the stream holds %d messages, want the 2 allowed", n)
	}
}

// TestPublishCrossOrigin: a page of another origin publishes only when
// NATSSE_CORS_ORIGINS lists it (a form on any site can POST); its preflight
// allows POST and the publish headers. Requests without Origin (curl,
// backends) and same-origin pages publish.
func TestPublishCrossOrigin(t *testing.T) {
	cfg := anonymousPublish()
	cfg.CORSOrigins = []string{"https://app.example"}
	e := start(t, cfg)
	cross := func(origin string) http.Header {
		return header("Origin", origin, "Sec-Fetch-Site", "cross-site", "Content-Type", "text/plain")
	}
	e.post("/events/a", strings.NewReader("x"), cross("https://evil.example")).expect(t, "from another origin", http.StatusForbidden)
	e.post("/events/a", strings.NewReader("x"), cross("https://app.example")).expect(t, "from a listed origin", http.StatusCreated)
	e.post("/events/a", strings.NewReader("x"), header("Origin", e.url, "Sec-Fetch-Site", "same-origin")).expect(t, "same origin", http.StatusCreated)
	e.post("/events/a", strings.NewReader("x"), nil).expect(t, "no Origin", http.StatusCreated)

	a := e.send(http.MethodOptions, "/events/a", header("Origin", "https://app.example", "Access-Control-Request-Method", "POST"))
	if m, h := a.header.Get("Access-Control-Allow-Methods"), a.header.Get("Access-Control-Allow-Headers"); !strings.Contains(m, "POST") ||
		!strings.Contains(h, "SSE-Event") || !strings.Contains(h, "Idempotency-Key") || !strings.Contains(h, "Content-Type") {
		t.Errorf("preflight: methods %q headers %q, want POST with SSE-Event, Idempotency-Key and Content-Type", m, h)
	}
	if n := e.storedMsgs(); n != 3 {
		t.Errorf("the stream holds %d messages, want 3", n)
	}
}

// TestPublishUnavailable: while NATS is down, and when JetStream refuses to
// store (a full stream that discards new messages), a publish is 503 with
// Retry-After and nothing is stored; once NATS is back it is stored again.
func TestPublishUnavailable(t *testing.T) {
	store := t.TempDir()
	ns := startTCP(t, store, "127.0.0.1:0")
	addr := ns.ClientURL()
	nc, err := nats.Connect(addr, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := startOn(t, ns, nc, anonymousPublish())
	first := e.post("/events/a", strings.NewReader("1"), nil).expect(t, "POST", http.StatusCreated)

	ns.Shutdown()
	waitFor(t, "natsse's connection to notice NATS is gone", func() bool { return !nc.IsConnected() })
	p := e.post("/events/a", strings.NewReader("2"), nil).expect(t, "POST while NATS is down", http.StatusServiceUnavailable)
	if s, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want a number of seconds", p.header.Get("Retry-After"))
	}

	ns = startTCP(t, store, addr[len("nats://"):])
	pub, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	e.js, _ = jetstream.New(pub)
	waitFor(t, "natsse's connection to come back", nc.IsConnected)
	again := e.post("/events/a", strings.NewReader("3"), nil).expect(t, "POST once NATS is back", http.StatusCreated)
	if again.ack.Seq != first.ack.Seq+1 {
		t.Errorf("seq %d after the outage, want %d: the refused publish was stored", again.ack.Seq, first.ack.Seq+1)
	}

	// A full stream that discards new messages: JetStream refuses to store.
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	defer cancel()
	cfg := e.stream(ctx).CachedInfo().Config
	cfg.MaxMsgs, cfg.Discard = 2, jetstream.DiscardNew
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	p = e.post("/events/a", strings.NewReader("4"), nil).expect(t, "POST to a full stream", http.StatusServiceUnavailable)
	if p.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if n := e.storedMsgs(); n != 2 {
		t.Errorf("the stream holds %d messages, want 2", n)
	}
}

// TestPublishSettings: NATSSE_PUBLISH=token without a key source, or a mode
// that does not exist, stops startup with one line naming the variable.
func TestPublishSettings(t *testing.T) {
	for _, cfg := range []service.Config{{Publish: service.PublishToken}, {Publish: "everyone"}} {
		_, err := service.New(cfg, nil)
		if err == nil || !strings.Contains(err.Error(), "NATSSE_PUBLISH") || strings.Contains(err.Error(), "\n") {
			t.Errorf("Publish %q: %v, want one line naming NATSSE_PUBLISH", cfg.Publish, err)
		}
	}
}

// TestPage: with UI on, <base>/ is the live page (HTML, HEAD without a
// body), and any other method is 405; with UI off it is one line of text
// that names the base path and the served subjects.
func TestPage(t *testing.T) {
	on := start(t, service.Config{UI: true, BasePath: "/gw"})
	for _, target := range []string{"/gw/", "/gw"} {
		a := on.send(http.MethodGet, target, nil)
		if a.status != http.StatusOK || a.header.Get("Content-Type") != "text/html; charset=utf-8" || !bytes.Contains(a.body, []byte("<title>natsse</title>")) {
			t.Errorf("GET %s: %d %q, want the page", target, a.status, a.header.Get("Content-Type"))
		}
	}
	if a := on.send(http.MethodPost, "/gw/", nil); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET" {
		t.Errorf("POST /gw/: %d with Allow %q, want 405 with Allow: GET", a.status, a.header.Get("Allow"))
	}
	off := start(t, service.Config{BasePath: "/gw"})
	a := off.send(http.MethodGet, "/gw/", nil)
	if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(a.body), "GET /gw/<subject tokens") || !strings.Contains(string(a.body), "events.>") || !strings.Contains(string(a.body), "docs/protocol.md") {
		t.Errorf("GET /gw/ with UI off: %d %q, want one line with the base path, the subjects and the docs", a.status, a.body)
	}
}
