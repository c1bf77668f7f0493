package main_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// TestBinaryAccessBanner: the startup log says who may subscribe.
func TestBinaryAccessBanner(t *testing.T) {
	anon := startNatsse(t)
	if out := anon.stderr.String(); !strings.Contains(out, `"access":"anonymous`) {
		t.Errorf("embedded mode without JWT settings: the banner does not say anonymous:\n%s", out)
	}
	jwtOn := startNatsse(t, "NATSSE_JWT_SECRET="+testSecret)
	out := jwtOn.stderr.String()
	if !strings.Contains(out, `"access":"JWT HS256`) || !strings.Contains(out, `Authorization: Bearer $TOKEN`) {
		t.Errorf("with NATSSE_JWT_SECRET: the banner does not say JWT HS256 with a curl example sending a token:\n%s", out)
	}
	if strings.Contains(out, testSecret) {
		t.Errorf("the log holds the secret:\n%s", out)
	}
}

// TestBinaryJWT: with NATSSE_JWT_SECRET, embedded mode refuses anonymous
// requests and serves a token's subjects, here from the cookie.
func TestBinaryJWT(t *testing.T) {
	p := startNatsse(t, "NATSSE_JWT_SECRET="+testSecret, "NATSSE_JWT_COOKIE=sse")
	js := jetStream(t, p.natsURL)
	url := "http://" + p.httpAddr + "/events/users/42"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("GET without a token: %d %q, want 401 with WWW-Authenticate: Bearer", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "42", "exp": time.Now().Add(time.Hour).Unix(), "natsse": map[string]any{"subscribe": []string{"events.users.42"}},
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	s := openStream(t, url, http.Header{"Cookie": {"sse=" + token}})
	checkStreamHeaders(t, s.resp)
	s.expectRetry(t, 200)
	publish(t, js, "events.users.42", 1)
	s.expectMessage(t, 1)
}

// TestSecurityShellToken runs the shell example for minting a token in
// docs/security.md (openssl, base64url) and checks that natsse accepts the
// token.
func TestSecurityShellToken(t *testing.T) {
	for _, tool := range []string{"sh", "openssl", "tr", "date"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the shell example of docs/security.md needs it", tool)
		}
	}
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)<!-- TestSecurityShellToken[^\n]*\n```sh\n(.*?)```").FindSubmatch(doc)
	if block == nil {
		t.Fatal("docs/security.md: no sh block after <!-- TestSecurityShellToken -->")
	}
	secret := regexp.MustCompile(`(?m)^SECRET='([^']*)'`).FindSubmatch(block[1])
	if secret == nil {
		t.Fatal("docs/security.md: the shell example sets no SECRET='...'")
	}
	var script strings.Builder
	for line := range strings.Lines(string(block[1])) {
		if !strings.HasPrefix(line, "curl ") {
			script.WriteString(line)
		}
	}
	script.WriteString(`printf '%s' "$TOKEN"` + "\n")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", script.String()).Output()
	if err != nil {
		t.Fatalf("the shell example of docs/security.md: %v\n%s", err, script.String())
	}

	p := startNatsse(t, "NATSSE_JWT_SECRET="+string(secret[1]))
	js := jetStream(t, p.natsURL)
	s := openStream(t, "http://"+p.httpAddr+"/events/users/42/inbox", http.Header{"Authorization": {"Bearer " + string(out)}})
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("the token of docs/security.md's shell example was refused: %d", s.resp.StatusCode)
	}
	s.expectRetry(t, 200)
	publish(t, js, "events.users.42.inbox", 1)
	s.expectMessage(t, 1)
}
