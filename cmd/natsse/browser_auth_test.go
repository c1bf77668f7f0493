package main_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
)

// TestBrowserCookieCrossOrigin has a native EventSource in headless Chromium,
// on a page of another origin (another port of localhost: the same site, as
// app.example.com and sse.example.com are), authenticate with the cookie
// natsse_token: with the page's origin in NATSSE_CORS_ORIGINS and
// withCredentials the event arrives; without credentials the cookie is not
// sent (401); from an origin natsse does not allow, the browser drops the
// stream natsse served. (A page on another site, 127.0.0.1 against
// localhost, did not get even a SameSite=None; Secure cookie sent by
// Chromium 156: third-party cookies are blocked.)
func TestBrowserCookieCrossOrigin(t *testing.T) {
	chromium := findChromium(t)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>app</title>")
	}))
	t.Cleanup(page.Close)
	_, pagePort, _ := net.SplitHostPort(page.Listener.Addr().String())
	pageURL := "http://localhost:" + pagePort
	allowed := startNatsse(t, "NATSSE_JWT_SECRET="+testSecret, "NATSSE_CORS_ORIGINS="+pageURL)
	other := startNatsse(t, "NATSSE_JWT_SECRET="+testSecret, "NATSSE_CORS_ORIGINS=http://app.invalid")
	js := jetStream(t, allowed.natsURL)
	ctx := startBrowser(t, chromium)

	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "42", "exp": time.Now().Add(time.Hour).Unix(), "natsse": map[string]any{"subscribe": []string{"events.users.42.>"}},
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	// What an app's backend would set for natsse's host. Cookies ignore
	// ports, so this one goes to both natsse processes; SameSite=Lax is
	// enough because the page and natsse are the same site.
	yes := true
	if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
		Name: "natsse_token", Value: token, Domain: "localhost", Path: "/",
		HTTPOnly: &yes, SameSite: network.CookieSameSiteLax, SourcePort: -1,
	}); err != nil {
		t.Fatalf("set the cookie: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	open := func(p *natsse, credentials bool) {
		t.Helper()
		_, port, _ := net.SplitHostPort(p.httpAddr)
		script := fmt.Sprintf(`
			window.got = []; window.opens = 0; window.errors = 0;
			window.es = new EventSource('http://localhost:%s/events/users/42/inbox', {withCredentials: %v});
			es.onopen = () => window.opens++;
			es.onerror = () => window.errors++;
			es.onmessage = e => window.got.push(Number(e.lastEventId) + ':' + e.data);`, port, credentials)
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](script)); err != nil {
			t.Fatalf("open EventSource: %v", err)
		}
	}

	open(allowed, true)
	waitPage(t, ctx, "the EventSource to open", func(s pageState) bool { return s.Opens >= 1 })
	publish(t, js, "events.users.42.inbox", 1)
	s := waitPage(t, ctx, "the event", func(s pageState) bool { return len(s.Got) >= 1 })
	if want := "1:" + payload(1); len(s.Got) != 1 || s.Got[0] != want {
		t.Errorf("with the cookie from an allowed origin: got %q, want [%q]", s.Got, want)
	}
	closePage(t, ctx)

	open(allowed, false)
	if s := waitGivenUp(t, ctx); s.Opens != 0 || len(s.Got) != 0 {
		t.Errorf("without credentials: %+v, want no open and no event", s)
	}
	if n := outcomes(t, allowed, "unauthorized"); n != 1 {
		t.Errorf("without credentials: natsse answered 401 %d times, want once (the cookie must not be sent)", n)
	}

	open(other, true)
	publish(t, jetStream(t, other.natsURL), "events.users.42.inbox", 1)
	if s := waitGivenUp(t, ctx); s.Opens != 0 || len(s.Got) != 0 {
		t.Errorf("from an origin natsse does not allow: %+v, want no open and no event", s)
	}
	if n := outcomes(t, other, "stream"); n != 1 {
		t.Errorf("from an origin natsse does not allow: natsse served %d streams, want 1 (the cookie was sent, the browser refused the answer)", n)
	}
}

// closePage closes the page's EventSource.
func closePage(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.es.close()`)); err != nil {
		t.Fatal(err)
	}
}

// waitGivenUp waits until the page's EventSource has given up for good
// (readyState CLOSED), as it does on a refused answer.
func waitGivenUp(t *testing.T, ctx context.Context) pageState {
	t.Helper()
	deadline := time.Now().Add(patience())
	for {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](
			`({opens: window.opens, errors: window.errors, state: window.es.readyState, got: window.got})`))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		if s.State == 2 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the EventSource did not give up within 10 s: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outcomes reads natsse_stream_requests_total{outcome} from p's /metrics.
func outcomes(t *testing.T, p *natsse, outcome string) int {
	t.Helper()
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `natsse_stream_requests_total{outcome="`+outcome+`"} `); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}
