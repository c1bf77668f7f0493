package main_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"
)

// TestBrowserPolyfillBearerCrossOrigin has Yaffle's event-source-polyfill
// (vendored in testdata/) in headless Chromium, on a page of another origin,
// send `Authorization: Bearer` to natsse, which keeps cutting the stream
// (NATSSE_MAX_STREAM_AGE). The header makes the browser preflight every
// request, so the events reach the page only if natsse's preflight answer
// allows it. The polyfill resumes with `?lastEventId=`; a page that reloads
// passes a `Last-Event-ID` header, preflighted too. Either way the page must
// see every event once, in order. A token for another subject gets a 403
// that the page can read, and the polyfill gives up instead of retrying.
func TestBrowserPolyfillBearerCrossOrigin(t *testing.T) {
	chromium := findChromium(t)
	polyfill, err := os.ReadFile("testdata/event-source-polyfill/eventsource.min.js")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>app</title><script src="/eventsource.min.js"></script>`)
	})
	mux.HandleFunc("GET /eventsource.min.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(polyfill)
	})
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)
	// The page is on 127.0.0.1, natsse is reached as localhost: another origin
	// (and another site, which a bearer token does not mind).
	p := startNatsse(t, "NATSSE_JWT_SECRET="+testSecret, "NATSSE_CORS_ORIGINS="+page.URL, "NATSSE_MAX_STREAM_AGE=700ms")
	_, port, _ := net.SplitHostPort(p.httpAddr)
	natsseHost := "localhost:" + port
	streamURL := "http://" + natsseHost + "/events/users/42/inbox"
	js := jetStream(t, p.natsURL)
	ctx := startBrowser(t, chromium)
	requests := watchRequests(t, ctx, natsseHost)
	if err := chromedp.Do(ctx, chromedp.Navigate(page.URL)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	token := userToken(t, "42")

	// The polyfill as a page uses it: a header, resuming on its own.
	openPolyfill(t, ctx, streamURL, token, "")
	waitPage(t, ctx, "the polyfill to open", func(s pageState) bool { return s.Opens >= 1 })
	last := publishThroughReconnects(t, ctx, js, 1, 3)
	expectEvents(t, ctx, 1, last)
	gets, preflights := requests.since(0)
	if len(gets) < 3 {
		t.Errorf("the polyfill sent %d stream requests, want at least 3", len(gets))
	}
	for i, g := range gets {
		if auth := g.header("Authorization"); auth != "Bearer "+token {
			t.Errorf("stream request %d: Authorization %q, want the bearer token", i, auth)
		}
		if resume := g.url.Query().Get("lastEventId"); (i > 0) != (resume != "") {
			t.Errorf("stream request %d: lastEventId %q, want it on every reconnect and only there", i, resume)
		}
	}
	if !askedFor(preflights, "authorization") {
		t.Errorf("no preflight asked for the Authorization header: %v", preflights)
	}

	// A page that reloads passes its last id in a Last-Event-ID header, and
	// keeps it current: a header the page passes wins over the polyfill's
	// lastEventId on its reconnects.
	closePage(t, ctx)
	mark := requests.count()
	for i := last + 1; i <= last+3; i++ {
		publish(t, js, "events.users.42.inbox", i)
	}
	openPolyfill(t, ctx, streamURL, token, fmt.Sprint(last))
	waitPage(t, ctx, "the reloaded polyfill to open", func(s pageState) bool { return s.Opens >= 1 })
	end := publishThroughReconnects(t, ctx, js, last+4, 2)
	expectEvents(t, ctx, last+1, end)
	gets, preflights = requests.since(mark)
	if len(gets) == 0 || gets[0].header("Last-Event-ID") != fmt.Sprint(last) {
		t.Errorf("the reloaded page's first stream request: %v, want Last-Event-ID %d", gets, last)
	}
	if !askedFor(preflights, "last-event-id") {
		t.Errorf("no preflight asked for the Last-Event-ID header: %v", preflights)
	}

	// A token for another user's subjects.
	closePage(t, ctx)
	openPolyfill(t, ctx, streamURL, userToken(t, "7"), "")
	s := waitGivenUp(t, ctx)
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.errorStatus`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Opens != 0 || len(s.Got) != 0 || status != http.StatusForbidden {
		t.Errorf("with another user's token: %+v and error status %d, want no open, no event and 403", s, status)
	}
	if n := outcomes(t, p, "forbidden"); n != 1 {
		t.Errorf("with another user's token: natsse answered 403 %d times, want once (the polyfill must not retry)", n)
	}
}

// userToken mints a token for user sub that allows events.users.<sub>.>.
func userToken(t *testing.T, sub string) string {
	t.Helper()
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "exp": time.Now().Add(time.Hour).Unix(),
		"natsse": map[string]any{"subscribe": []string{"events.users." + sub + ".>"}},
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// openPolyfill opens an EventSourcePolyfill on url with the bearer token,
// and with lastID, when not empty, as a Last-Event-ID header that follows
// the events received. The page records what the other browser tests
// record, and the status of an error event.
func openPolyfill(t *testing.T, ctx context.Context, url, token, lastID string) {
	t.Helper()
	script := fmt.Sprintf(`{
		window.got = []; window.opens = 0; window.errors = 0; window.errorStatus = 0;
		const headers = {Authorization: 'Bearer ' + %q};
		const lastID = %q;
		if (lastID !== '') headers['Last-Event-ID'] = lastID;
		window.es = new EventSourcePolyfill(%q, {headers});
		es.onopen = () => window.opens++;
		es.onerror = e => { window.errors++; if (e.status) window.errorStatus = e.status; };
		es.onmessage = e => {
			window.got.push(Number(e.lastEventId) + ':' + e.data);
			if (lastID !== '') headers['Last-Event-ID'] = e.lastEventId;
		};
	}`, token, lastID, url)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](script)); err != nil {
		t.Fatalf("open EventSourcePolyfill: %v", err)
	}
}

// publishThroughReconnects publishes events from first on, paced, until the
// page's polyfill has opened opens times (natsse cut the stream and it came
// back), and returns the last one published. The pace leaves several events
// to be published in each gap, while no stream is open.
func publishThroughReconnects(t *testing.T, ctx context.Context, js jetstream.JetStream, first, opens int) int {
	t.Helper()
	const pace = 100 * time.Millisecond
	deadline := time.Now().Add(patience())
	for i := first; ; i++ {
		publish(t, js, "events.users.42.inbox", i)
		time.Sleep(pace)
		s := waitPage(t, ctx, "the page", func(pageState) bool { return true }) // one look
		if s.Opens >= opens && i >= first+5 {
			return i
		}
		if time.Now().After(deadline) {
			t.Fatalf("the polyfill opened %d times, want %d (natsse cuts streams after NATSSE_MAX_STREAM_AGE): %+v", s.Opens, opens, s)
		}
	}
}

// expectEvents waits until the page has first..last and checks it got
// exactly those, in order.
func expectEvents(t *testing.T, ctx context.Context, first, last int) {
	t.Helper()
	n := last - first + 1
	s := waitPage(t, ctx, fmt.Sprintf("events %d to %d", first, last), func(s pageState) bool { return len(s.Got) >= n })
	var want []string
	for i := first; i <= last; i++ {
		want = append(want, fmt.Sprintf("%d:%s", i, payload(i)))
	}
	if !slices.Equal(s.Got, want) {
		t.Errorf("events seen by the page (%s):\ngot  %q\nwant %q", diff(s.Got, want), s.Got, want)
	}
	t.Logf("events %d to %d over %d opens, %d error events", first, last, s.Opens, s.Errors)
}

// seenRequest is a request Chromium sent to natsse.
type seenRequest struct {
	preflight bool
	url       *url.URL
	headers   network.Headers
}

func (r seenRequest) header(name string) string {
	for k, v := range r.headers {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// String leaves the token out: what matters is whether it was sent.
func (r seenRequest) String() string {
	if r.preflight {
		return fmt.Sprintf("preflight %s for %q", r.url.RequestURI(), r.header("Access-Control-Request-Headers"))
	}
	return fmt.Sprintf("GET %s (Authorization: %t, Last-Event-ID: %q)",
		r.url.RequestURI(), r.header("Authorization") != "", r.header("Last-Event-ID"))
}

// requestLog records, from Chromium's DevTools events, the requests the
// page sent to one host, preflights included.
type requestLog struct {
	mu   sync.Mutex
	seen []seenRequest
}

// watchRequests starts recording the tab's requests to host.
func watchRequests(t *testing.T, ctx context.Context, host string) *requestLog {
	t.Helper()
	requests := &requestLog{}
	err := chromedp.Listen(ctx, func(ev any) {
		sent, ok := ev.(*network.EventRequestWillBeSent)
		if !ok {
			return
		}
		u, err := url.Parse(sent.Request.URL)
		if err != nil || u.Host != host {
			return
		}
		requests.mu.Lock()
		defer requests.mu.Unlock()
		requests.seen = append(requests.seen, seenRequest{
			preflight: sent.Type == network.ResourceTypePreflight || sent.Request.Method == http.MethodOptions,
			url:       u,
			headers:   sent.Request.Headers,
		})
	})
	if err != nil {
		t.Fatalf("listen to the tab: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enable network events: %v", err)
	}
	return requests
}

func (l *requestLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// since splits the requests recorded after the first n into stream
// requests and preflights.
func (l *requestLog) since(n int) (gets, preflights []seenRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.seen[n:] {
		if r.preflight {
			preflights = append(preflights, r)
		} else {
			gets = append(gets, r)
		}
	}
	return gets, preflights
}

// askedFor reports whether a preflight asked to send the request header
// name (lower case, as browsers list them).
func askedFor(preflights []seenRequest, name string) bool {
	for _, p := range preflights {
		if slices.Contains(strings.Split(p.header("Access-Control-Request-Headers"), ","), name) {
			return true
		}
	}
	return false
}
