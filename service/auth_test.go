package service_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/natsse/natsse/service"
)

// testSecret is the HS256 secret of the tests' natsse.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// mint signs claims with method and key.
func mint(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// allow is an HS256 token of testSecret whose natsse claim allows patterns,
// valid for an hour.
func allow(t *testing.T, patterns ...string) string {
	t.Helper()
	return mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
		"sub": "user-42", "exp": time.Now().Add(time.Hour).Unix(),
		"natsse": map[string]any{"subscribe": patterns},
	})
}

func startSecret(t *testing.T, cfg service.Config) *env {
	t.Helper()
	cfg.JWT.Secret = testSecret
	return start(t, cfg)
}

func bearer(token string) http.Header { return header("Authorization", "Bearer "+token) }

// expectStatus sends GET target and checks the status; refusals must be
// problem+json with a detail, 401 with WWW-Authenticate: Bearer. It returns
// the detail.
func (e *env) expectStatus(target string, h http.Header, want int) string {
	e.t.Helper()
	a := e.send(http.MethodGet, target, h)
	if a.status != want {
		e.t.Errorf("GET %s (%v): got %d %s, want %d", target, h, a.status, a.body, want)
		return ""
	}
	if want == http.StatusOK {
		if a.err != nil || a.first.Retry < 0 {
			e.t.Errorf("GET %s: first block %+v (%v), want a retry: line", target, a.first, a.err)
		}
		return ""
	}
	var p problemDetail
	if err := json.Unmarshal(a.body, &p); err != nil || a.header.Get("Content-Type") != "application/problem+json" || p.Status != want || p.Detail == "" {
		e.t.Errorf("GET %s: got %q %q, want problem+json with status %d and a detail", target, a.header.Get("Content-Type"), a.body, want)
	}
	if got := a.header.Get("WWW-Authenticate"); (want == http.StatusUnauthorized) != (got == "Bearer") {
		e.t.Errorf("GET %s: %d with WWW-Authenticate %q", target, want, got)
	}
	return p.Detail
}

// TestAuthTransports: the token comes from the Authorization header, the
// cookie or access_token; the first present is used, a bad one is 401
// without falling back to the others, and an empty cookie or parameter is
// absent.
func TestAuthTransports(t *testing.T) {
	e := startSecret(t, service.Config{JWT: service.JWTConfig{Cookie: "sse_jwt"}})
	good, bad := allow(t, "events.>"), allow(t, "events.>")+"x"
	cookie := func(v string) string { return "sse_jwt=" + v }
	tests := []struct {
		name   string
		query  string
		header http.Header
		want   int
	}{
		{"header", "", bearer(good), 200},
		{"header scheme any case", "", header("Authorization", "bearer "+good), 200},
		{"cookie", "", header("Cookie", cookie(good)), 200},
		{"query", "?access_token=" + good, nil, 200},
		{"nothing", "", nil, 401},
		{"cookie of another name", "", header("Cookie", "natsse_token="+good), 401},
		{"bad header, good cookie", "", header("Authorization", "Bearer "+bad, "Cookie", cookie(good)), 401},
		{"bad header, good query", "?access_token=" + good, bearer(bad), 401},
		{"basic header, good query", "?access_token=" + good, header("Authorization", "Basic dTpw"), 401},
		{"empty bearer, good query", "?access_token=" + good, header("Authorization", "Bearer "), 401},
		{"bad cookie, good query", "?access_token=" + good, header("Cookie", cookie(bad)), 401},
		{"good header, bad cookie and query", "?access_token=" + bad, header("Authorization", "Bearer "+good, "Cookie", cookie(bad)), 200},
		{"good cookie, bad query", "?access_token=" + bad, header("Cookie", cookie(good)), 200},
		{"empty cookie, good query", "?access_token=" + good, header("Cookie", cookie("")), 200},
		{"bad query", "?access_token=" + bad, nil, 401},
		{"not a JWT", "?access_token=hello", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func(outer *testing.T) { e.t = outer }(e.t)
			e.t = t
			detail := e.expectStatus("/events/a"+tt.query, tt.header, tt.want)
			if strings.Contains(detail, good) || strings.Contains(detail, bad) || strings.Contains(detail, "hello") {
				t.Errorf("the detail %q repeats the token", detail)
			}
		})
	}
}

// TestAuthOrderOfChecks: 400 malformed, then 401 credentials, then 404 not
// served, then 403 not allowed (docs/protocol.md, "Errors"): without a valid token nothing
// tells which subjects exist.
func TestAuthOrderOfChecks(t *testing.T) {
	e := startSecret(t, service.Config{Subjects: []string{"events.public.>"}})
	tok := allow(t, "events.public.42.>")
	bad := tok + "x"
	tests := []struct {
		target string
		header http.Header
		want   int
	}{
		{"/events/public/a%2Eb", nil, 400},
		{"/events/public/a%2Eb", bearer(bad), 400},
		{"/events/public/42/x?lastEventId=x", bearer(tok), 400},
		{"/events/public/42/x", nil, 401},
		{"/events/private/x", nil, 401},
		{"/events/private/x", bearer(bad), 401},
		{"/events/private/x", bearer(tok), 404},
		{"/sse?subject=events.public.42.x&subject=events.private.x", bearer(tok), 404},
		{"/events/public/43/x", bearer(tok), 403},
		{"/events/public/42/x", bearer(tok), 200},
	}
	for _, tt := range tests {
		e.expectStatus(tt.target, tt.header, tt.want)
	}
}

// TestAuthSubjectsInsideClaim: every requested subject must lie inside one
// pattern of the natsse claim, else 403.
func TestAuthSubjectsInsideClaim(t *testing.T) {
	e := startSecret(t, service.Config{})
	tok := bearer(allow(t, "events.users.42.>", "events.news"))
	tests := []struct {
		target string
		want   int
	}{
		{"/events/users/42/inbox", 200},
		{"/events/users/42/>", 200},
		{"/events/users/42/*", 200},
		{"/events/news", 200},
		{"/sse?subject=events.users.42.inbox&subject=events.news", 200},
		{"/events/users/42/inbox?subject=events.news", 200},
		{"/events/users/*", 403},
		{"/events/users/*/inbox", 403},
		{"/events/>", 403},
		{"/events/users/42", 403},
		{"/events/users/43/inbox", 403},
		{"/events/news/x", 403},
		{"/events/users/42/inbox?subject=events.users.43.inbox", 403},
		{"/sse?subject=events.news&subject=events.*", 403},
	}
	for _, tt := range tests {
		detail := e.expectStatus(tt.target, tok, tt.want)
		if tt.want == 403 && !strings.Contains(detail, "events.users.42.>") {
			t.Errorf("GET %s: detail %q does not say what the token allows", tt.target, detail)
		}
	}

	// What a 200 stream delivers is its own subjects only.
	c := e.open("/events/users/42/>", tok)
	e.publish("events.users.43.inbox", "not yours")
	seq := e.publish("events.users.42.inbox", "yours")
	if ev := c.next(); ev.Data != "yours" || ev.ID != strconv.FormatUint(seq, 10) {
		t.Errorf("got %+v, want event %d with data yours", ev, seq)
	}
}

// TestAuthClaimRequired: a valid token without the natsse claim, or with
// one that allows nothing, is 403.
func TestAuthClaimRequired(t *testing.T) {
	e := startSecret(t, service.Config{})
	exp := time.Now().Add(time.Hour).Unix()
	for name, claims := range map[string]jwt.MapClaims{
		"no claim":        {"sub": "u", "exp": exp},
		"empty claim":     {"sub": "u", "exp": exp, "natsse": map[string]any{}},
		"empty subscribe": {"sub": "u", "exp": exp, "natsse": map[string]any{"subscribe": []string{}}},
		"durable only":    {"sub": "u", "exp": exp, "natsse": map[string]any{"durable": []string{"d"}}},
	} {
		t.Run(name, func(t *testing.T) {
			defer func(outer *testing.T) { e.t = outer }(e.t)
			e.t = t
			e.expectStatus("/events/a", bearer(mint(t, jwt.SigningMethodHS256, testSecret, claims)), 403)
		})
	}
}

// mintJSON signs payload, a JSON object written by hand, with testSecret:
// the order and case of its keys are exactly as given (MapClaims would sort
// them).
func mintJSON(t *testing.T, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

// TestAuthClaimNamesExact: claim names are compared exactly (RFC 7519 §4):
// "Natsse", "NATSSE", "SUBSCRIBE", "DURABLE" and "EXP" are other claims,
// which natsse ignores, even next to the real ones.
func TestAuthClaimNamesExact(t *testing.T) {
	e := startSecret(t, service.Config{})
	exp := time.Now().Add(time.Hour).Unix()
	past := time.Now().Add(-time.Hour).Unix()
	for _, c := range []struct {
		name, path, payload string
		want                int
	}{
		{"natsse then Natsse", "/events/b", `{"sub":"u","exp":%d,"natsse":{"subscribe":["events.a"]},"Natsse":{"subscribe":["events.>"]}}`, 403},
		{"narrow still works", "/events/a", `{"sub":"u","exp":%d,"natsse":{"subscribe":["events.a"]},"Natsse":{"subscribe":["events.>"]}}`, 200},
		{"NATSSE", "/events/b", `{"sub":"u","exp":%d,"NATSSE":{"subscribe":["events.>"]}}`, 403},
		{"SUBSCRIBE", "/events/b", `{"sub":"u","exp":%d,"natsse":{"subscribe":["events.a"],"SUBSCRIBE":["events.>"]}}`, 403},
		{"DURABLE", "/events/a?durable=d", `{"sub":"u","exp":%d,"natsse":{"subscribe":["events.>"],"DURABLE":["d"]}}`, 403},
		{"EXP after exp", "/events/a", `{"sub":"u","exp":` + strconv.FormatInt(past, 10) + `,"EXP":%d,"natsse":{"subscribe":["events.>"]}}`, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func(outer *testing.T) { e.t = outer }(e.t)
			e.t = t
			e.expectStatus(c.path, bearer(mintJSON(t, fmt.Sprintf(c.payload, exp))), c.want)
		})
	}
}

// TestDurableNeedsSub: named cursors are kept per sub, so a token without
// one (or with an empty one) asking for a named cursor is 403, else all
// such tokens would share, and take over, each other's cursors.
func TestDurableNeedsSub(t *testing.T) {
	e := startSecret(t, service.Config{})
	exp := time.Now().Add(time.Hour).Unix()
	for name, payload := range map[string]string{
		"no sub":    `{"exp":%d,"natsse":{"subscribe":["events.>"],"durable":["d"]}}`,
		"empty sub": `{"sub":"","exp":%d,"natsse":{"subscribe":["events.>"],"durable":["d"]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			defer func(outer *testing.T) { e.t = outer }(e.t)
			e.t = t
			token := mintJSON(t, fmt.Sprintf(payload, exp))
			if detail := e.expectStatus("/events/a?durable=d", bearer(token), 403); !strings.Contains(detail, "sub") {
				t.Errorf("detail %q, want it to say the token has no sub", detail)
			}
			e.expectStatus("/events/a", bearer(token), 200) // without a cursor, sub is not needed
		})
	}
}
