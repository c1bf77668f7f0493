package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

const (
	// jwksMaxBytes bounds a key set's body: real ones hold a few keys.
	jwksMaxBytes = 1 << 20
	// jwksTimeout bounds one fetch, which a request may be waiting on.
	jwksTimeout = 5 * time.Second
)

// jwks holds the keys of a JSON Web Key Set, by key id. Keys are replaced
// only by a successful fetch: a provider that is down leaves the last good
// set in use.
type jwks struct {
	url         string
	shown       string // url redacted, for logs and errors
	refresh     time.Duration
	minInterval time.Duration // between fetches for unknown key ids
	client      *http.Client
	log         *slog.Logger

	fetchMu sync.Mutex // one fetch at a time

	mu        sync.Mutex
	keys      map[string]verificationKey // nil until the first good fetch
	attempted time.Time                  // start of the last fetch
}

func newJWKS(cfg Config, log *slog.Logger) *jwks {
	return &jwks{url: cfg.JWKSURL, shown: RedactURL(cfg.JWKSURL), refresh: cfg.JWKSRefresh, minInterval: cfg.JWKSMinInterval,
		client: &http.Client{Timeout: jwksTimeout}, log: log}
}

// run fetches the set now and every refresh interval until ctx ends; after
// a failure it tries again sooner, backing off up to the interval.
func (k *jwks) run(ctx context.Context) {
	backoff := time.Second
	for {
		wait := k.refresh
		if err := k.fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			k.log.Warn("JWKS fetch failed; keeping the last keys", "url", k.shown, "err", err, "retry_in", backoff.String())
			wait, backoff = min(backoff, k.refresh), min(2*backoff, k.refresh)
		} else {
			backoff = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// loaded reports whether a fetch has succeeded.
func (k *jwks) loaded() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys != nil
}

// key returns the key with id kid ("" when the token names none: the set's
// only key). An unknown id makes it fetch the set again, at most once per
// minInterval, in case the provider rotated its keys.
func (k *jwks) key(ctx context.Context, kid string) (*verificationKey, error) {
	if key, ok := k.lookup(kid); ok {
		return key, nil
	}
	k.mu.Lock()
	due := time.Since(k.attempted) >= k.minInterval
	k.mu.Unlock()
	if due {
		_ = k.fetch(ctx) // failures are logged by run
	}
	if key, ok := k.lookup(kid); ok {
		return key, nil
	}
	if !k.loaded() {
		return nil, errKeysUnavailable
	}
	if kid == "" {
		return nil, keyError("it has no kid header, and the JWKS holds more than one key")
	}
	return nil, keyError(fmt.Sprintf("its kid %q is not in the JWKS", kid))
}

func (k *jwks) lookup(kid string) (*verificationKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[kid]; ok {
		return &key, true
	}
	if kid == "" && len(k.keys) == 1 {
		for _, key := range k.keys {
			return &key, true
		}
	}
	return nil, false
}

// fetch replaces the keys with the set at url. Concurrent callers wait for
// one fetch instead of each starting their own.
func (k *jwks) fetch(ctx context.Context) error {
	k.mu.Lock()
	before := k.attempted
	k.mu.Unlock()
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.Lock()
	if k.attempted != before {
		k.mu.Unlock()
		return nil // another caller fetched while this one waited
	}
	k.attempted = time.Now()
	k.mu.Unlock()

	keys, err := k.get(ctx)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.keys = keys
	k.mu.Unlock()
	return nil
}

func (k *jwks) get(ctx context.Context) (map[string]verificationKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		// net/http strips the password from the URL it reports, but not
		// the user or the query.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			ue.URL = k.shown
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", k.shown, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > jwksMaxBytes {
		return nil, fmt.Errorf("GET %s: the key set is larger than %d bytes", k.shown, jwksMaxBytes)
	}
	return parseJWKS(body)
}

// jwk is one JSON Web Key (RFC 7517, 7518, 8037) as far as natsse reads it.
type jwk struct {
	Kty, Kid, Use, Alg, Crv string
	N, E, X, Y              string
}

// parseJWKS keeps the set's signature keys that natsse can use; keys for
// encryption, symmetric keys and unknown types are skipped.
func parseJWKS(body []byte) (map[string]verificationKey, error) {
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("the JWKS is not JSON of the form {\"keys\":[...]}: %w", err)
	}
	keys := map[string]verificationKey{}
	var skipped []error
	for _, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		key, err := j.verificationKey()
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %q: %w", j.Kid, err))
			continue
		}
		keys[j.Kid] = key
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("the JWKS holds no usable signature key: %w", errors.Join(skipped...))
	}
	return keys, nil
}

// verificationKey decodes the key and pins its algorithm: the key's alg
// when it names one that fits the key type, else the type's default.
func (j jwk) verificationKey() (verificationKey, error) {
	var key any
	var algs []string
	var err error
	switch j.Kty {
	case "RSA":
		key, err = j.rsaKey()
		algs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case "EC":
		var k *ecdsa.PublicKey
		k, err = j.ecKey()
		key = k
		if err == nil {
			var alg string
			alg, err = algorithmOf(k)
			algs = []string{alg}
		}
	case "OKP":
		if j.Crv != "Ed25519" {
			return verificationKey{}, fmt.Errorf("OKP curve %q is not supported; use Ed25519", j.Crv)
		}
		var x []byte
		x, err = base64.RawURLEncoding.DecodeString(j.X)
		if err == nil && len(x) != ed25519.PublicKeySize {
			err = fmt.Errorf("x is %d bytes, want %d", len(x), ed25519.PublicKeySize)
		}
		key, algs = ed25519.PublicKey(x), []string{"EdDSA"}
	default:
		return verificationKey{}, fmt.Errorf("kty %q is not supported; use RSA, EC or OKP", j.Kty)
	}
	if err != nil {
		return verificationKey{}, err
	}
	switch {
	case j.Alg == "":
		return verificationKey{alg: algs[0], key: key}, nil
	case slices.Contains(algs, j.Alg):
		return verificationKey{alg: j.Alg, key: key}, nil
	}
	return verificationKey{}, fmt.Errorf("alg %q does not fit a %s key", j.Alg, j.Kty)
}

func (j jwk) rsaKey() (*rsa.PublicKey, error) {
	n, err := base64.RawURLEncoding.DecodeString(j.N)
	if err != nil {
		return nil, fmt.Errorf("n: %w", err)
	}
	e, err := base64.RawURLEncoding.DecodeString(j.E)
	if err != nil {
		return nil, fmt.Errorf("e: %w", err)
	}
	if len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("e is %d bytes", len(e))
	}
	exp := int(new(big.Int).SetBytes(e).Int64())
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}

func (j jwk) ecKey() (*ecdsa.PublicKey, error) {
	curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
	curve, ok := curves[j.Crv]
	if !ok {
		return nil, fmt.Errorf("EC curve %q is not supported; use P-256, P-384 or P-521", j.Crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	x, errX := base64.RawURLEncoding.DecodeString(j.X)
	y, errY := base64.RawURLEncoding.DecodeString(j.Y)
	if errX != nil || errY != nil || len(x) != size || len(y) != size {
		return nil, fmt.Errorf("x and y must be %d bytes of base64url each", size)
	}
	return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
}
