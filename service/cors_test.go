package service_test

import (
	"net/http"
	"testing"

	"github.com/natsse/natsse/service"
)

func TestCORS(t *testing.T) {
	e := start(t, service.Config{CORSOrigins: []string{"https://app.example"}})
	any := start(t, service.Config{CORSOrigins: []string{"*"}})
	cases := []struct {
		name, url, method, origin    string
		wantStatus                   int
		wantOrigin, wantCreds, wantV string
	}{
		{"allowed origin", e.url + "/healthz", "GET", "https://app.example", 200, "https://app.example", "true", "Origin"},
		{"other origin", e.url + "/healthz", "GET", "https://evil.example", 200, "", "", "Origin"},
		{"allowed preflight", e.url + "/events/x", "OPTIONS", "https://app.example", 204, "https://app.example", "true", "Origin"},
		{"other preflight", e.url + "/events/x", "OPTIONS", "https://evil.example", 204, "", "", "Origin"},
		{"wildcard", any.url + "/healthz", "GET", "https://any.example", 200, "*", "", ""},
		{"wildcard preflight", any.url + "/events/x", "OPTIONS", "https://any.example", 204, "*", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, nil)
			req.Header.Set("Origin", tc.origin)
			if tc.method == "OPTIONS" {
				req.Header.Set("Access-Control-Request-Method", "GET")
				req.Header.Set("Access-Control-Request-Headers", "authorization, last-event-id")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != tc.wantStatus || h.Get("Access-Control-Allow-Origin") != tc.wantOrigin ||
				h.Get("Access-Control-Allow-Credentials") != tc.wantCreds || h.Get("Vary") != tc.wantV {
				t.Errorf("got %d origin %q credentials %q vary %q, want %d %q %q %q", resp.StatusCode,
					h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"), h.Get("Vary"),
					tc.wantStatus, tc.wantOrigin, tc.wantCreds, tc.wantV)
			}
			if tc.method == "OPTIONS" && tc.wantOrigin != "" && h.Get("Access-Control-Allow-Headers") == "" {
				t.Errorf("preflight from an allowed origin without Access-Control-Allow-Headers")
			}
		})
	}
}

func TestMetricsOnOwnPort(t *testing.T) {
	e := start(t, service.Config{MetricsOnOwnPort: true})
	if got := status(t, e.url+"/metrics"); got != http.StatusNotFound {
		t.Errorf("/metrics on the public port: %d, want 404", got)
	}
}
