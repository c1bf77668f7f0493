package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/natsse/natsse/service"
	"github.com/natsse/natsse/service/ssetest"
)

// TestTokenExpiryEndsStream: when the token of an open stream expires, the
// stream gets event: expired (without an id) and ends; the expired token
// is then refused, and a fresh token with lastEventId loses nothing. Both
// for taken-over HTTP/1.1 connections and for streams inside net/http.
func TestTokenExpiryEndsStream(t *testing.T) {
	for _, noHijack := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoHijack=%v", noHijack), func(t *testing.T) {
			e := startSecret(t, service.Config{NoHijack: noHijack, JWT: service.JWTConfig{Leeway: 0}})
			// The token must outlive the stream's setup (open it, read three
			// events): a machine too slow for that gets a token that lives
			// twice as long, on a fresh subject.
			for try, lifetime := 1, 3*time.Second; ; try, lifetime = try+1, 2*lifetime {
				if expiryEndsStream(t, e, fmt.Sprintf("exp%d", try), lifetime) {
					return
				}
				t.Logf("the token expired before the stream was set up (%s): trying a longer one", lifetime)
				if try == 5 {
					t.Fatalf("the token expired before the stream was set up, %d times", try)
				}
			}
		})
	}
}

// expiryEndsStream runs TestTokenExpiryEndsStream on events.<name>.> with a
// token that expires after lifetime. It returns false when the token
// expired before the stream was open and had its first three events.
func expiryEndsStream(t *testing.T, e *env, name string, lifetime time.Duration) bool {
	exp := time.Now().Add(lifetime).Truncate(time.Second) // exp has whole seconds
	short := mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
		"sub": "u", "exp": exp.Unix(), "natsse": map[string]any{"subscribe": []string{"events." + name + ".>"}},
	})
	path := "/events/" + name + "/>?access_token="
	c := e.openUnlessExpired(path+short, exp)
	if c == nil {
		return false
	}
	defer c.close()
	var seqs []string
	for i := 1; i <= 3; i++ {
		seqs = append(seqs, strconv.FormatUint(e.publish("events."+name+".a", seqPayload(i)), 10))
	}
	for _, seq := range seqs {
		ev := c.next()
		if ev.Event == "expired" && !time.Now().Before(exp) {
			return false
		}
		if ev.ID != seq {
			t.Fatalf("got %+v, want event %s", ev, seq)
		}
	}

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
	if got := c.r.LastEventID(); got != seqs[2] {
		t.Errorf("Last-Event-ID after expired: %q, want %s", got, seqs[2])
	}

	fourth := e.publish("events."+name+".a", seqPayload(4))
	e.publish("events."+name+".b", seqPayload(5))
	if d := e.expectStatus(path+short, nil, 401); d == "" {
		t.Fatal("the expired token was accepted again")
	}
	again := e.open("/events/"+name+"/>?lastEventId="+seqs[2]+"&access_token="+allow(t, "events."+name+".>"), nil)
	again.expectSeqs(fourth, fourth+1)
	return true
}

// openUnlessExpired opens a stream with a token that expires at exp, like
// open; it returns nil when the token expired before natsse saw it (a slow
// machine): the caller tries again with a longer-lived token.
func (e *env) openUnlessExpired(path string, exp time.Time) *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience())
	resp, r, err := ssetest.Dial(ctx, e.url+path, nil)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	c := &client{t: e.t, e: e, resp: resp, r: r, cancel: cancel}
	if resp.StatusCode == http.StatusUnauthorized && !time.Now().Before(exp) {
		c.close()
		return nil
	}
	e.t.Cleanup(c.close)
	if first, err := r.Next(); resp.StatusCode != http.StatusOK || err != nil || first.Retry < 0 {
		e.t.Fatalf("GET %s: %d, first block %+v (%v), want 200 and a retry: line", path, resp.StatusCode, first, err)
	}
	return c
}
