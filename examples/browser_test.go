package examples_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
)

// TestBrowserExampleReloadAndReset opens browser/index.html in headless
// Chromium (on another origin than natsse, allowed by NATSSE_CORS_ORIGINS):
// events arrive with their ids and types; events published while the page
// is gone arrive once after a reload, which resumes from the id kept in
// localStorage; a kept id beyond the stream gets natsse's reset, on which
// the page refetches and goes on with the next event.
func TestBrowserExampleReloadAndReset(t *testing.T) {
	chromium := findChromium(t)
	page := servePage(t, nil)
	p := startNatsse(t, t.TempDir(), "NATSSE_CORS_ORIGINS="+page.URL)
	ctx := startBrowser(t, chromium)
	stream := "http://" + p.httpAddr + "/events/demo"
	pageURL := page.URL + "/index.html?" + url.Values{"url": {stream}, "types": {"greeting"}, "backoff": {"100"}}.Encode()

	navigate(t, ctx, pageURL)
	// A first visit has no position: it gets what is published once open.
	waitExample(t, ctx, "the EventSource to open", func(s exampleState) bool { return s.State == 1 })
	for i := 1; i <= 3; i++ {
		goPublish(t, p.natsURL, i)
	}
	waitGot(t, ctx, "events 1-3", pageEvents(1, 3))

	// The page goes away; what is published meanwhile comes after the reload.
	navigate(t, ctx, "about:blank")
	for i := 4; i <= 6; i++ {
		goPublish(t, p.natsURL, i)
	}
	navigate(t, ctx, pageURL)
	waitExample(t, ctx, "the reloaded page to open", func(s exampleState) bool { return s.State == 1 })
	goPublish(t, p.natsURL, 7) // live: a page that did not resume gets only this one
	s := waitGot(t, ctx, "events 4-7 after the reload", pageEvents(4, 7))
	if got := query(t, s.Opened[0], "lastEventId"); got != "3" {
		t.Errorf("the reloaded page opened %s: lastEventId %q, want 3 from localStorage", s.Opened[0], got)
	}

	// A kept position beyond the stream's end (the stream was recreated, say).
	evaluate(t, ctx, `example.client.close(); localStorage.setItem(example.client.storageKey, "500")`)
	navigate(t, ctx, pageURL)
	waitGot(t, ctx, "the reset", []string{"reset:7:500:1"})
	goPublish(t, p.natsURL, 8)
	s = waitGot(t, ctx, "event 8 after the reset", append([]string{"reset:7:500:1"}, pageEvents(8, 8)...))
	if s.Refetches != 1 || s.Last != "8" {
		t.Errorf("after the reset: %d refetches, localStorage %q; want 1 and 8", s.Refetches, s.Last)
	}
}

// TestBrowserExampleExpiredAndClosed has the page take its tokens from a
// token URL while natsse verifies them (NATSSE_JWT_SECRET). The first
// tokens expire within seconds: natsse sends `expired`, and the page must
// reopen with a fresh token and its last id, losing nothing. Then its
// EventSource is put in the state Firefox leaves one in when a reconnect is
// refused (readyState CLOSED, an error event, no more retries): the page
// must open a new one with its last id; the events published while it is
// reopening (held at the token request) must arrive once.
func TestBrowserExampleExpiredAndClosed(t *testing.T) {
	chromium := findChromium(t)
	tokens := &tokenServer{}
	tokens.short.Store(true)
	page := servePage(t, tokens)
	p := startNatsse(t, t.TempDir(), "NATSSE_CORS_ORIGINS="+page.URL, "NATSSE_JWT_SECRET="+testSecret, "NATSSE_JWT_LEEWAY=0s")
	ctx := startBrowser(t, chromium)
	stream := "http://" + p.httpAddr + "/events/demo"
	pageURL := page.URL + "/index.html?" + url.Values{"url": {stream}, "types": {"greeting"}, "backoff": {"100"}, "token": {"/token"}}.Encode()

	// A returning visitor: the page has a position, so that nothing
	// published before its first open, or before a reopen, is missed.
	navigate(t, ctx, page.URL+"/blank")
	evaluate(t, ctx, fmt.Sprintf(`localStorage.setItem(%q, "0")`, "natsse:lastEventId:"+stream))
	navigate(t, ctx, pageURL)
	goPublish(t, p.natsURL, 1)
	goPublish(t, p.natsURL, 2)
	waitExample(t, ctx, "an expired token", func(s exampleState) bool { return s.Expired >= 1 })
	tokens.short.Store(false)
	goPublish(t, p.natsURL, 3)
	goPublish(t, p.natsURL, 4)
	s := waitGot(t, ctx, "events 1-4", pageEvents(1, 4))
	if len(s.Opened) < 2 || s.Tokens < 2 {
		t.Fatalf("after an expired token the page opened %d times with %d tokens, want at least 2 of each", len(s.Opened), s.Tokens)
	}
	for i := 1; i < len(s.Opened); i++ {
		if query(t, s.Opened[i], "lastEventId") == "" {
			t.Errorf("reopen %d without lastEventId: %s", i, s.Opened[i])
		}
		if query(t, s.Opened[i], "access_token") == query(t, s.Opened[i-1], "access_token") {
			t.Errorf("reopen %d used the token of the open before it: %s", i, s.Opened[i])
		}
	}

	// Wait until the page is on a token that lasts, then give up for it.
	s = waitExample(t, ctx, "a stream with a lasting token", func(s exampleState) bool {
		return s.State == 1 && tokens.lasting(query(t, s.Opened[len(s.Opened)-1], "access_token"))
	})
	opens := len(s.Opened)
	held := tokens.hold()
	evaluate(t, ctx, `{ const es = example.client.eventSource; es.close(); es.dispatchEvent(new Event("error")); }`)
	select {
	case <-held.arrived: // the page is reopening: publish while it is
	case <-time.After(patience()):
		t.Fatal("the page did not reopen after its EventSource was CLOSED")
	}
	goPublish(t, p.natsURL, 5)
	goPublish(t, p.natsURL, 6)
	close(held.release)
	waitGot(t, ctx, "events 5-6 after the reopen", pageEvents(1, 6))
	s = waitExample(t, ctx, "the reopened EventSource", func(s exampleState) bool { return s.State == 1 })
	if len(s.Opened) != opens+1 {
		t.Errorf("the page opened %d EventSources after the CLOSED one, want 1", len(s.Opened)-opens)
	}
	if got := query(t, s.Opened[len(s.Opened)-1], "lastEventId"); got != "4" {
		t.Errorf("the reopened EventSource: lastEventId %q, want 4", got)
	}
}

// testSecret is natsse's HS256 secret in these tests.
const testSecret = "examples-test-secret-of-32-bytes-or-more"

// tokenServer is the page's token URL: it mints tokens for events.demo,
// that expire within 2 s while short is set (JWT times are whole seconds),
// and can hold a request until the test releases it.
type tokenServer struct {
	short atomic.Bool

	mu      sync.Mutex
	long    map[string]bool // the lasting tokens minted
	holding *heldRequest
}

type heldRequest struct {
	arrived chan struct{} // closed when a token request is held
	release chan struct{} // closed by the test to answer it
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.holding
	s.holding = nil
	s.mu.Unlock()
	if h != nil {
		close(h.arrived)
		<-h.release
	}
	exp := time.Now().Add(time.Hour)
	if s.short.Load() {
		exp = time.Now().Add(2 * time.Second)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "42", "exp": exp.Unix(), "jti": fmt.Sprint(time.Now().UnixNano()),
		"natsse": map[string]any{"subscribe": []string{"events.demo"}},
	}).SignedString([]byte(testSecret))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !s.short.Load() {
		s.mu.Lock()
		if s.long == nil {
			s.long = map[string]bool{}
		}
		s.long[token] = true
		s.mu.Unlock()
	}
	fmt.Fprint(w, token)
}

// hold makes the next token request wait for the test.
func (s *tokenServer) hold() *heldRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holding = &heldRequest{arrived: make(chan struct{}), release: make(chan struct{})}
	return s.holding
}

func (s *tokenServer) lasting(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.long[token]
}

// servePage serves browser/ (the example page) and, when tokens is not nil,
// its token URL /token; /blank is an empty page of the same origin.
func servePage(t *testing.T, tokens http.Handler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir("browser")))
	mux.HandleFunc("/blank", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>blank</title>")
	})
	if tokens != nil {
		mux.Handle("/token", tokens)
	}
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// findChromium returns the path of Chromium, or skips the test with the
// install command (fails it with NATSSE_BROWSER_REQUIRED=1, which CI sets
// when Chromium is there, as for the browser tests of cmd/natsse).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("NATSSE_BROWSER_REQUIRED") == "1" {
		t.Fatal("Chromium not found and NATSSE_BROWSER_REQUIRED=1: apt-get install -y chromium")
	}
	t.Skip("install Chromium: apt-get install -y chromium")
	return ""
}

// startBrowser starts headless Chromium with a fresh profile and no
// background traffic, and returns the context of its tab; the browser is
// closed, and waited for, when the test ends. Chromium sometimes exits at
// launch before printing anything (seen once in CI), which says nothing about
// natsse, so a failed launch is retried, up to three times.
func startBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var ctx context.Context
		ctx, err = launchBrowser(t, path)
		if err == nil {
			return ctx
		}
		t.Logf("launch %d of Chromium: %v", attempt, err)
	}
	t.Fatalf("Chromium did not start three times: %v", err)
	return nil
}

// launchBrowser starts one Chromium and its tab (chromedp.Do without actions
// starts both), so that a failed launch shows here and not in the first step.
func launchBrowser(t *testing.T, path string) (context.Context, error) {
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
		// /dev/shm may be small in a container; Chromium then uses /tmp.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	ctx, cancelTab := chromedp.NewContext(ctx)
	stop := func() { cancelTab(); cancelAlloc(); cancel() }
	if err := chromedp.Do(ctx); err != nil {
		stop()
		return nil, err
	}
	t.Cleanup(stop)
	return ctx, nil
}

func navigate(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate to %s: %v", u, err)
	}
}

func evaluate(t *testing.T, ctx context.Context, script string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](script)); err != nil {
		t.Fatalf("evaluate %s: %v", script, err)
	}
}

// exampleState is what the example page recorded (window.example).
type exampleState struct {
	Got       []string `json:"got"`    // id:type:data, and reset:id:requested:first
	Opened    []string `json:"opened"` // the URL of each EventSource
	Refetches int      `json:"refetches"`
	Tokens    int      `json:"tokens"`
	Expired   int      `json:"expired"`
	State     int      `json:"state"` // readyState of the current EventSource, -1 before the first
	Last      string   `json:"last"`  // the id kept in localStorage
}

// waitExample polls the page until done(state), within patience.
func waitExample(t *testing.T, ctx context.Context, what string, done func(exampleState) bool) exampleState {
	t.Helper()
	deadline := time.Now().Add(patience())
	for {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[exampleState](`window.example && example.client ? {
			got: example.got, opened: example.opened, refetches: example.refetches,
			tokens: example.tokens, expired: example.expired,
			state: example.client.eventSource ? example.client.eventSource.readyState : -1,
			last: example.client.lastEventId || ""} : {state: -1}`))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		if done(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v: %+v", what, patience(), s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pageEvents is how the page records messages first to last.
func pageEvents(first, last int) []string {
	var out []string
	for i := first; i <= last; i++ {
		m := message(i)
		out = append(out, m.ID+":"+m.Event+":"+m.Data)
	}
	return out
}

// waitGot waits until the page has got want, failing at once when what it
// got is not the start of want (a lost, repeated or unexpected event).
func waitGot(t *testing.T, ctx context.Context, what string, want []string) exampleState {
	t.Helper()
	return waitExample(t, ctx, what, func(s exampleState) bool {
		if len(s.Got) > len(want) || !slices.Equal(s.Got, want[:len(s.Got)]) {
			t.Fatalf("waiting for %s: the page got\n  %q\nwant\n  %q\n(opened %q)", what, s.Got, want, s.Opened)
		}
		return len(s.Got) == len(want)
	})
}

// query returns the query parameter name of the URL u.
func query(t *testing.T, u, name string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("the page opened %q: %v", u, err)
	}
	return parsed.Query().Get(name)
}
