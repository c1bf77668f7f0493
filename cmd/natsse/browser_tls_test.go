package main_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserHTTP2TenEventSources: Chromium holds ten EventSources to one
// natsse origin over HTTPS, and all ten get an event. Over HTTP/1.1 a
// browser opens at most six connections per origin, so four would wait.
func TestBrowserHTTP2TenEventSources(t *testing.T) {
	chromium := findChromium(t)
	cert := selfSigned(t)
	p := startNatsse(t, cert.env()...)
	js := jetStream(t, p.natsURL)
	// Trust exactly this certificate's key, not every certificate.
	spki := sha256.Sum256(cert.cert.RawSubjectPublicKeyInfo)
	ctx := startBrowser(t, chromium, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))

	// natsse serves no pages; its / is a same-origin document.
	if err := chromedp.Do(ctx, chromedp.Navigate("https://"+p.httpAddr+"/")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	proto, err := chromedp.Run(ctx, chromedp.Evaluate[string](`performance.getEntriesByType('navigation')[0].nextHopProtocol`))
	if err != nil || proto != "h2" {
		t.Fatalf("the page was loaded over %q (%v), want h2", proto, err)
	}
	const n = 10
	script := fmt.Sprintf(`
		window.got = []; window.opens = 0; window.errors = 0;
		window.sources = [];
		for (let i = 0; i < %d; i++) {
			const es = new EventSource('/events/browser/h2');
			es.onopen = () => window.opens++;
			es.onerror = () => window.errors++;
			es.onmessage = e => window.got.push(i + ':' + e.lastEventId + ':' + e.data);
			window.sources.push(es);
		}
		window.es = window.sources[0];`, n)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](script)); err != nil {
		t.Fatalf("open EventSources: %v", err)
	}
	waitPage(t, ctx, fmt.Sprintf("%d EventSources to open", n), func(s pageState) bool { return s.Opens >= n })
	publish(t, js, "events.browser.h2", 1)
	s := waitPage(t, ctx, fmt.Sprintf("the event on %d EventSources", n), func(s pageState) bool { return len(s.Got) >= n })

	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("%d:1:%s", i, payload(1)))
	}
	slices.Sort(s.Got)
	slices.Sort(want)
	if !slices.Equal(s.Got, want) || s.Opens != n {
		t.Errorf("got %d opens and events %q, want %d opens and %q", s.Opens, s.Got, n, want)
	}
}
