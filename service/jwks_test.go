package service_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/natsse/natsse/service"
)

// keySet is a JWKS endpoint whose keys the test changes.
type keySet struct {
	mu      sync.Mutex
	keys    []map[string]string
	down    atomic.Bool // answer 503
	fetches atomic.Int64
	srv     *httptest.Server
}

func newKeySet(t *testing.T) *keySet {
	ks := &keySet{}
	ks.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.fetches.Add(1)
		if ks.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		ks.mu.Lock()
		defer ks.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": ks.keys})
	}))
	t.Cleanup(ks.srv.Close)
	return ks
}

func (ks *keySet) add(jwk map[string]string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = append(ks.keys, jwk)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid, alg string, k *rsa.PublicKey) map[string]string {
	m := map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]string {
	b, err := k.Bytes() // 0x04 || x || y
	if err != nil {
		panic(err)
	}
	size := (len(b) - 1) / 2
	return map[string]string{"kty": "EC", "kid": kid, "crv": k.Curve.Params().Name, "x": b64(b[1 : 1+size]), "y": b64(b[1+size:])}
}

// signed mints claimsFor() with a kid header ("" for none).
func signed(t *testing.T, method jwt.SigningMethod, key any, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claimsFor())
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWKS: keys come from the set by kid, each pinned to its alg (or its
// type's); keys natsse cannot use are skipped; an unknown kid fetches the
// set again, so a rotated-in key works at once.
func TestJWKS(t *testing.T) {
	ks := newKeySet(t)
	rsaA, rsaB, ec := rsaKey(t), rsaKey(t), ecKey(t, elliptic.P256())
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ks.add(rsaJWK("a", "RS256", &rsaA.PublicKey))
	ks.add(rsaJWK("b", "PS256", &rsaB.PublicKey))
	ks.add(ecJWK("c", &ec.PublicKey))
	ks.add(map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": "d", "x": b64(edPub)})
	// Skipped: an encryption key, a symmetric key, an alg that does not fit.
	enc := rsaJWK("e", "", &rsaA.PublicKey)
	enc["use"] = "enc"
	ks.add(enc)
	ks.add(map[string]string{"kty": "oct", "kid": "f", "k": b64(testSecret)})
	misfit := ecJWK("g", &ec.PublicKey)
	misfit["alg"] = "RS256"
	ks.add(misfit)

	e := start(t, service.Config{JWT: service.JWTConfig{JWKSURL: ks.srv.URL, JWKSRefresh: time.Hour, JWKSMinInterval: time.Nanosecond}})
	for _, tok := range []string{
		signed(t, jwt.SigningMethodRS256, rsaA, "a"),
		signed(t, jwt.SigningMethodPS256, rsaB, "b"),
		signed(t, jwt.SigningMethodES256, ec, "c"),
		signed(t, jwt.SigningMethodEdDSA, edPriv, "d"),
	} {
		e.expectStatus("/events/a", bearer(tok), 200)
	}
	for name, tt := range map[string]struct {
		tok  string
		says string
	}{
		"alg other than the key's": {signed(t, jwt.SigningMethodRS512, rsaA, "a"), "RS256 only"},
		"RS256 for a PS256 key":    {signed(t, jwt.SigningMethodRS256, rsaB, "b"), "PS256 only"},
		"key of another kid":       {signed(t, jwt.SigningMethodRS256, rsaB, "a"), "signature"},
		"encryption key":           {signed(t, jwt.SigningMethodRS256, rsaA, "e"), `kid "e" is not in the JWKS`},
		"symmetric key":            {signed(t, jwt.SigningMethodHS256, testSecret, "f"), `kid "f" is not in the JWKS`},
		"misfit alg":               {signed(t, jwt.SigningMethodRS256, rsaA, "g"), `kid "g" is not in the JWKS`},
		"no kid, several keys":     {signed(t, jwt.SigningMethodRS256, rsaA, ""), "no kid"},
		"none":                     {mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor()), ""},
	} {
		if d := e.expectStatus("/events/a", bearer(tt.tok), 401); !strings.Contains(d, tt.says) {
			t.Errorf("%s: detail %q, want it to say %q", name, d, tt.says)
		}
	}

	// Rotation: a token of a key the provider just added is accepted at once.
	rotated := rsaKey(t)
	tok := signed(t, jwt.SigningMethodRS256, rotated, "h")
	e.expectStatus("/events/a", bearer(tok), 401)
	ks.add(rsaJWK("h", "", &rotated.PublicKey))
	e.expectStatus("/events/a", bearer(tok), 200)
}

// TestJWKSUnavailable: until the set was fetched once, natsse cannot tell a
// valid token from a bad one: /readyz is 503 and streams get the soft
// refusal, never a 401 that would make EventSource give up. Once fetched,
// a provider that goes down leaves the last keys in use.
func TestJWKSUnavailable(t *testing.T) {
	ks := newKeySet(t)
	key := ecKey(t, elliptic.P256())
	ks.add(ecJWK("k", &key.PublicKey))
	ks.down.Store(true)
	e := start(t, service.Config{Retry: 100 * time.Millisecond, JWT: service.JWTConfig{JWKSURL: ks.srv.URL, JWKSMinInterval: time.Nanosecond}})
	tok := signed(t, jwt.SigningMethodES256, key, "k")
	if got := status(t, e.url+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the JWKS down: %d, want 503", got)
	}
	softRefused(t, e, "/events/a?access_token="+tok, 100*time.Millisecond)

	ks.down.Store(false)
	waitFor(t, "/readyz 200 once the JWKS is up", func() bool { return status(t, e.url+"/readyz") == http.StatusOK })
	e.expectStatus("/events/a", bearer(tok), 200)
	ks.down.Store(true)
	e.expectStatus("/events/a", bearer(signed(t, jwt.SigningMethodES256, key, "unknown")), 401)
	e.expectStatus("/events/a", bearer(tok), 200)
}

// TestJWKSRefetchBounded: tokens with made-up kids fetch the set at most
// once per JWKSMinInterval.
func TestJWKSRefetchBounded(t *testing.T) {
	ks := newKeySet(t)
	key := ecKey(t, elliptic.P256())
	ks.add(ecJWK("k", &key.PublicKey))
	e := start(t, service.Config{JWT: service.JWTConfig{JWKSURL: ks.srv.URL, JWKSMinInterval: time.Hour}})
	waitFor(t, "/readyz 200", func() bool { return status(t, e.url+"/readyz") == http.StatusOK })
	for i := range 5 {
		e.expectStatus("/events/a", bearer(signed(t, jwt.SigningMethodES256, key, "made-up-"+strconv.Itoa(i))), 401)
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Errorf("the JWKS was fetched %d times, want once (at start)", n)
	}
}
