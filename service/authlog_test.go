package service_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/natsse/natsse/service"
)

// lockedBuffer is a log destination shared by natsse's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTokensNeverLogged: with debug logging, refused, forbidden, accepted
// and expiring tokens in every transport leave no part of a token in the
// log, while the refusals themselves are logged.
func TestTokensNeverLogged(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := startSecret(t, service.Config{Logger: log})
	good := allow(t, "events.a")
	expired := mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + parts[1] + ".Zm9yZ2VkLXNpZ25hdHVyZS1mb3JnZWQtc2lnbmF0dXJl"
	tokens := []string{good, expired, forged}

	e.expectStatus("/events/a?access_token="+expired, nil, 401)
	e.expectStatus("/events/a", bearer(forged), 401)
	e.expectStatus("/events/a", header("Cookie", "natsse_token="+expired), 401)
	e.expectStatus("/events/b?access_token="+good, nil, 403)
	e.expectStatus("/events/a?access_token="+good+"&lastEventId=x", nil, 400)
	// A token that expires while its stream is open; a machine too slow to
	// open it in time gets one that lives twice as long.
	var c *client
	for lifetime := 2 * time.Second; c == nil; lifetime *= 2 {
		exp := time.Now().Add(lifetime)
		short := mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
			"exp": exp.Unix(), "natsse": map[string]any{"subscribe": []string{"events.a"}},
		})
		tokens = append(tokens, short)
		c = e.openUnlessExpired("/events/a?access_token="+short, exp.Truncate(time.Second))
	}
	if ev := c.next(); ev.Event != "expired" {
		t.Fatalf("got %+v, want event: expired", ev)
	}

	out := logs.String()
	if strings.Count(out, "token refused") < 3 {
		t.Errorf("want the three refusals logged at debug level, got:\n%s", out)
	}
	for _, tok := range tokens {
		for i, part := range append([]string{tok}, strings.Split(tok, ".")...) {
			if len(part) >= 16 && strings.Contains(out, part) {
				t.Errorf("the log holds part %d of a token (%q):\n%s", i, part, out)
			}
		}
	}
}
