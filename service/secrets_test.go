package service_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/natsse/natsse/service"
)

// TestJWKSURLNeverShown: a JWKS URL with a user, a password and an API key
// in its query is neither served by /readyz (which anyone may read) nor
// logged, whether its fetch fails on the status (503) or on the dial; the
// startup description redacts it too.
func TestJWKSURLNeverShown(t *testing.T) {
	ks := newKeySet(t)
	ks.down.Store(true)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close() // nothing listens there: the dial fails
	secrets := []string{"alice", "S3cretPW", "KEY123"}
	for name, host := range map[string]string{"503": strings.TrimPrefix(ks.srv.URL, "http://"), "dial": deadAddr} {
		t.Run(name, func(t *testing.T) {
			var logs lockedBuffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			jwksURL := "http://alice:S3cretPW@" + host + "/jwks?api_key=KEY123&tenant=t"
			e := start(t, service.Config{Logger: log, JWT: service.JWTConfig{JWKSURL: jwksURL}})
			waitFor(t, "a failed JWKS fetch logged", func() bool { return strings.Contains(logs.String(), "JWKS fetch failed") })
			resp, err := http.Get(e.url + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "JWKS") {
				t.Errorf("/readyz: %d %q, want 503 saying it waits for the JWKS", resp.StatusCode, body)
			}
			if strings.Contains(string(body), host) {
				t.Errorf("/readyz serves the JWKS URL: %q", body)
			}
			for _, s := range secrets {
				for where, text := range map[string]string{"/readyz": string(body), "the log": logs.String(), "AccessControl": e.svc.AccessControl()} {
					if strings.Contains(text, s) {
						t.Errorf("%s holds %q:\n%s", where, s, text)
					}
				}
			}
		})
	}
}
