package service_test

import (
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/natsse/natsse/service"
)

// TestTokenExpiryEndsStream: when the token of an open stream expires, the
// stream gets event: expired (without an id) and ends; the expired token
// is then refused, and a fresh token with lastEventId loses nothing. Both
// for taken-over HTTP/1.1 connections and for streams inside net/http.
func TestTokenExpiryEndsStream(t *testing.T) {
	for _, noHijack := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoHijack=%v", noHijack), func(t *testing.T) {
			e := startSecret(t, service.Config{NoHijack: noHijack, JWT: service.JWTConfig{Leeway: 0}})
			exp := time.Now().Add(3 * time.Second).Truncate(time.Second) // exp has whole seconds
			short := mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
				"sub": "u", "exp": exp.Unix(), "natsse": map[string]any{"subscribe": []string{"events.exp.>"}},
			})
			c := e.open("/events/exp/>?access_token="+short, nil)
			for i := 1; i <= 3; i++ {
				e.publish("events.exp.a", seqPayload(i))
			}
			c.expectSeqs(1, 3)

			ev := c.next()
			var data struct{ Exp int64 }
			if ev.Event != "expired" || ev.HasID || json.Unmarshal([]byte(ev.Data), &data) != nil || data.Exp != exp.Unix() {
				t.Fatalf("got %+v, want event: expired without id, data {\"exp\":%d}", ev, exp.Unix())
			}
			if now := time.Now(); now.Before(exp) {
				t.Errorf("expired sent at %s, before exp %s", now.Format(time.StampMilli), exp.Format(time.StampMilli))
			}
			if ev, err := c.r.Next(); err != io.EOF {
				t.Fatalf("after expired: got %+v (%v), want the end of the stream", ev, err)
			}
			if got := c.r.LastEventID(); got != "3" {
				t.Errorf("Last-Event-ID after expired: %q, want 3", got)
			}

			e.publish("events.exp.a", seqPayload(4))
			e.publish("events.exp.b", seqPayload(5))
			if d := e.expectStatus("/events/exp/>?access_token="+short, nil, 401); d == "" {
				t.Fatal("the expired token was accepted again")
			}
			again := e.open("/events/exp/>?lastEventId=3&access_token="+allow(t, "events.exp.>"), nil)
			again.expectSeqs(4, 5)
		})
	}
}
