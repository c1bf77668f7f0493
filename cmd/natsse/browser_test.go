package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserEventSourceResumes has a native EventSource in headless Chromium
// follow a stream that the server keeps closing (NATSSE_MAX_STREAM_AGE): the
// browser reconnects by itself with Last-Event-ID, and the page must see every
// message once, in order.
func TestBrowserEventSourceResumes(t *testing.T) {
	chromium := findChromium(t)
	p := startNatsse(t, "NATSSE_MAX_STREAM_AGE=1s")
	js := jetStream(t, p.natsURL)
	ctx := startBrowser(t, chromium)

	// natsse serves no pages; any same-origin document will do.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+p.httpAddr+"/healthz")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	const script = `
		window.got = []; window.opens = 0; window.errors = 0;
		window.es = new EventSource('/events/browser/test');
		es.onopen = () => window.opens++;
		es.onerror = () => window.errors++;
		es.onmessage = e => window.got.push(Number(e.lastEventId) + ':' + e.data);`
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](script)); err != nil {
		t.Fatalf("open EventSource: %v", err)
	}
	waitPage(t, ctx, "the EventSource to open", func(s pageState) bool { return s.Opens >= 1 })

	// Paced so that publishing spans about three stream lifetimes: the
	// reconnects happen while messages arrive, not only between them.
	const n, pace = 60, 50 * time.Millisecond
	for i := 1; i <= n; i++ {
		publish(t, js, "events.browser.test", i)
		time.Sleep(pace)
	}
	s := waitPage(t, ctx, fmt.Sprintf("%d events", n), func(s pageState) bool { return len(s.Got) >= n })

	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, fmt.Sprintf("%d:%s", i, payload(i)))
	}
	if !slices.Equal(s.Got, want) {
		t.Errorf("events seen by the page (%s):\ngot  %q\nwant %q", diff(s.Got, want), s.Got, want)
	}
	if s.Opens < 3 {
		t.Errorf("EventSource opened %d times, want at least 3 (reconnects after NATSSE_MAX_STREAM_AGE)", s.Opens)
	}
	t.Logf("EventSource opened %d times, %d error events", s.Opens, s.Errors)
}

// findChromium returns the path of Chromium, or skips the test (fails it if
// NATSSE_BROWSER_REQUIRED=1, as in CI).
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
// background traffic (the machines have no network), and returns the context
// of its tab. Everything done in it must end within the test's patience; the
// browser is closed, and waited for, when the test ends. extra adds
// command-line flags.
//
// Chromium itself sometimes exits at launch before it prints anything (seen
// once in CI: "chrome failed to start" with only its usual warnings), which
// says nothing about natsse; such a launch is retried, up to three times.
func startBrowser(t *testing.T, path string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var ctx context.Context
		ctx, err = launchBrowser(t, path, extra...)
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
func launchBrowser(t *testing.T, path string, extra ...chromedp.ExecAllocatorOption) (context.Context, error) {
	profile := t.TempDir()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
		// /dev/shm may be small in a container; Chromium then uses /tmp.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
	)
	opts = append(opts, extra...)
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

// pageState is what the test page recorded.
type pageState struct {
	Opens  int      `json:"opens"`
	Errors int      `json:"errors"`
	State  int      `json:"state"` // EventSource.readyState
	Got    []string `json:"got"`
}

// waitPage polls the page until done(state) or the timeout, and fails the test
// at once if the EventSource gave up (readyState CLOSED: a non-200 answer).
func waitPage(t *testing.T, ctx context.Context, what string, done func(pageState) bool) pageState {
	t.Helper()
	timeout := patience()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](
			`({opens: window.opens, errors: window.errors, state: window.es.readyState, got: window.got})`))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		if done(s) {
			return s
		}
		if s.State == 2 {
			t.Fatalf("waiting for %s: the EventSource closed for good: %+v", what, s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v: %+v", what, timeout, s)
		}
		<-tick.C
	}
}

// diff summarises how got differs from want: repeated, missing and unexpected
// entries, and the first position where they part.
func diff(got, want []string) string {
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	var repeated, missing []string
	for _, w := range want {
		switch n := seen[w]; {
		case n == 0:
			missing = append(missing, w)
		case n > 1:
			repeated = append(repeated, w)
		}
		delete(seen, w)
	}
	first := 0
	for first < len(got) && first < len(want) && got[first] == want[first] {
		first++
	}
	return fmt.Sprintf("first difference at index %d, repeated %q, missing %q, %d unexpected",
		first, repeated, missing, len(seen))
}
