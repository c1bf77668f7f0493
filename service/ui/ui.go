// Package ui is the live page natsse serves at its base path: subscribe to a
// subject pattern, watch every event arrive (id, subject, type, data, time),
// see reconnects, resets and token expiry, resume from a typed id, and
// publish a test event. It is one HTML file with its script and style inside,
// embedded in the binary: no build step, no external assets, works offline.
package ui

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var page []byte

// Handler serves the page. natsse routes only its base path ("<base>/") here;
// the page finds the base from its own address, so it needs no settings.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		// The page's script and style are inline and it talks only to its
		// own origin.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(page)
	})
}
