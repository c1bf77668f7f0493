package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/natsse/natsse/service/ui"
)

// TestHandlerServesThePage: the page is one self-contained HTML document
// whose policy lets it talk only to its own origin, and HEAD gets no body.
func TestHandlerServesThePage(t *testing.T) {
	srv := httptest.NewServer(ui.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q: want the page kept to its own origin", csp)
	}
	for _, external := range []string{"http://", "https://", "//cdn", "<link "} {
		if strings.Contains(string(body), external) {
			t.Errorf("the page refers to %q: it must work offline, without external assets", external)
		}
	}
	resp, err = http.Head(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) != 0 {
		t.Errorf("HEAD /: %d bytes of body, want none", len(body))
	}
}
