package access

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config turns on access control when one key source is set: Secret,
// PublicKey or JWKSURL. Every stream request then needs a token whose
// natsse claim allows its subjects.
type Config struct {
	// Secret verifies HS256 tokens, and nothing else.
	Secret []byte
	// PublicKey verifies tokens signed by its private half, with the one
	// algorithm of its type: RS256 (RSA), ES256, ES384 or ES512 (ECDSA
	// P-256, P-384, P-521), EdDSA (Ed25519). See ParsePublicKeyPEM.
	PublicKey crypto.PublicKey
	// JWKSURL is a JSON Web Key Set (an OIDC provider's jwks_uri), fetched
	// at start, every JWKSRefresh (default 10m), and when a token names a
	// key id it does not hold, at most once per JWKSMinInterval (default
	// 10s, so that made-up key ids cannot make natsse hammer the provider).
	JWKSURL         string
	JWKSRefresh     time.Duration
	JWKSMinInterval time.Duration
	// Leeway is the clock skew allowed on exp and nbf; zero allows none
	// (cmd/natsse's default is 30s).
	Leeway time.Duration
	// Audience, when set, must be one of the token's aud values; Issuer,
	// when set, must be its iss.
	Audience string
	Issuer   string
	// Cookie names the cookie a token can come in. Default "natsse_token".
	Cookie string
}

// Enabled reports whether a key source is set, i.e. tokens are required.
func (c Config) Enabled() bool {
	return len(c.Secret) > 0 || c.PublicKey != nil || c.JWKSURL != ""
}

func (c Config) WithDefaults() Config {
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = 10 * time.Minute
	}
	if c.JWKSMinInterval == 0 {
		c.JWKSMinInterval = 10 * time.Second
	}
	if c.Cookie == "" {
		c.Cookie = "natsse_token"
	}
	return c
}

func (c Config) Validate() error {
	sources := 0
	for _, set := range []bool{len(c.Secret) > 0, c.PublicKey != nil, c.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources > 1:
		return errors.New("jwt: set exactly one key source (secret, public key or JWKS URL)")
	case sources == 0 && (c.Audience != "" || c.Issuer != ""):
		return errors.New("jwt: audience or issuer set without a key source")
	case c.Leeway < 0 || c.JWKSRefresh < 0 || c.JWKSMinInterval < 0:
		return errors.New("jwt: leeway and JWKS intervals must not be negative")
	}
	if c.PublicKey != nil {
		if _, err := algorithmOf(c.PublicKey); err != nil {
			return fmt.Errorf("jwt: %w", err)
		}
	}
	return nil
}

// ParsePublicKeyPEM reads the public key that verifies tokens from PEM: a
// PUBLIC KEY (PKIX), an RSA PUBLIC KEY (PKCS #1) or a CERTIFICATE block,
// holding an RSA, ECDSA (P-256, P-384, P-521) or Ed25519 key.
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found; want -----BEGIN PUBLIC KEY-----")
	}
	var key crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, fmt.Errorf("the PEM block is a %s; give natsse the public key only (openssl pkey -pubout)", block.Type)
		}
		return nil, fmt.Errorf("PEM block %q is not a public key; want PUBLIC KEY", block.Type)
	}
	if err != nil {
		return nil, err
	}
	if _, err := algorithmOf(key); err != nil {
		return nil, err
	}
	return key, nil
}

// verificationKey is a key with the one algorithm it verifies: pinning the
// algorithm to the key stops a token from choosing how it is checked.
type verificationKey struct {
	alg string
	key any
}

// algorithmOf is the algorithm a public key verifies.
func algorithmOf(key crypto.PublicKey) (string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256.Alg(), nil
		case elliptic.P384():
			return jwt.SigningMethodES384.Alg(), nil
		case elliptic.P521():
			return jwt.SigningMethodES512.Alg(), nil
		}
		return "", fmt.Errorf("ECDSA curve %s is not supported; use P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return jwt.SigningMethodEdDSA.Alg(), nil
	}
	return "", fmt.Errorf("a %T key is not supported; use RSA, ECDSA or Ed25519", key)
}

// Verifier checks tokens: signature with a pinned algorithm, exp and nbf
// with the leeway, aud and iss when configured.
type Verifier struct {
	cfg    Config
	log    *slog.Logger
	parser *jwt.Parser
	static *verificationKey // the secret or the public key
	jwks   *jwks            // or the key set
}

// New returns the verifier of cfg's tokens; nil when access control is off.
func New(cfg Config, log *slog.Logger) (*Verifier, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	opts := []jwt.ParserOption{jwt.WithLeeway(cfg.Leeway)}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v := &Verifier{cfg: cfg, log: log, parser: jwt.NewParser(opts...)}
	switch {
	case len(cfg.Secret) > 0:
		v.static = &verificationKey{alg: jwt.SigningMethodHS256.Alg(), key: cfg.Secret}
	case cfg.PublicKey != nil:
		alg, err := algorithmOf(cfg.PublicKey)
		if err != nil {
			return nil, err
		}
		v.static = &verificationKey{alg: alg, key: cfg.PublicKey}
	default:
		v.jwks = newJWKS(cfg, log)
	}
	return v, nil
}

// Describe says who may subscribe, for the startup log: "anonymous" (v is
// nil), or JWT with the algorithm or the JWKS URL.
func (v *Verifier) Describe() string {
	switch {
	case v == nil:
		return "anonymous"
	case v.static != nil:
		return "JWT " + v.static.alg
	}
	return "JWT, keys from " + RedactURL(v.cfg.JWKSURL)
}

// Run keeps the JWKS current until ctx ends; without one it returns at once.
func (v *Verifier) Run(ctx context.Context) {
	if v != nil && v.jwks != nil {
		v.jwks.run(ctx)
	}
}

// Waiting says, while tokens cannot be verified yet, what for ("" once
// they can): the first fetch of the JWKS. It is served by /readyz, which
// anyone may read, so it names the setting, never the URL.
func (v *Verifier) Waiting() string {
	if v == nil || v.jwks == nil || v.jwks.loaded() {
		return ""
	}
	return "waiting for the first fetch of the JWKS (NATSSE_JWKS_URL)"
}

// tokenClaims is a token's payload as natsse reads it.
type tokenClaims struct {
	jwt.RegisteredClaims
	NATSSE *natsseClaim
}

// natsseClaim is the natsse claim (docs/security.md, "The claim").
type natsseClaim struct {
	Subscribe []string
	Durable   []string
	Publish   []string
}

// registeredNames are the claims RegisteredClaims reads (RFC 7519 §4.1).
var registeredNames = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// UnmarshalJSON reads claim names exactly, as RFC 7519 §4 says they are
// compared: encoding/json would match "Natsse" or "SUBSCRIBE" to a field
// too, so that a token carrying both "natsse" and "Natsse" could be read
// as the wider one.
func (tc *tokenClaims) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	registered := make(map[string]json.RawMessage, len(registeredNames))
	for _, name := range registeredNames {
		if v, ok := all[name]; ok {
			registered[name] = v
		}
	}
	// Only exact names are left, so the case-blind match cannot mislead.
	exact, err := json.Marshal(registered)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(exact, &tc.RegisteredClaims); err != nil {
		return err
	}
	raw, ok := all["natsse"]
	if !ok || string(raw) == "null" {
		return nil
	}
	var claim map[string]json.RawMessage
	if err := json.Unmarshal(raw, &claim); err != nil {
		return fmt.Errorf("the natsse claim is not an object: %w", err)
	}
	tc.NATSSE = &natsseClaim{}
	for name, into := range map[string]*[]string{"subscribe": &tc.NATSSE.Subscribe, "durable": &tc.NATSSE.Durable, "publish": &tc.NATSSE.Publish} {
		if v, ok := claim[name]; ok {
			if err := json.Unmarshal(v, into); err != nil {
				return fmt.Errorf("natsse.%s is not a list of strings: %w", name, err)
			}
		}
	}
	return nil
}

// errKeysUnavailable means the JWKS was never fetched: whether a token is
// valid cannot be told yet, which is transient (a soft refusal, not a 401).
var errKeysUnavailable = errors.New("access: the JWKS has not been fetched yet")

// verify checks a token and returns what it allows. Errors other than
// errKeysUnavailable are sentences fit for a 401 detail; none of them
// contains the token.
func (v *Verifier) verify(ctx context.Context, token string) (*Claims, error) {
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		return v.key(ctx, t)
	})
	if err != nil {
		if errors.Is(err, errKeysUnavailable) {
			return nil, errKeysUnavailable
		}
		return nil, errors.New(v.reason(err, &tc))
	}
	c := &Claims{Subject: tc.Subject}
	if tc.ExpiresAt != nil {
		c.Expires = tc.ExpiresAt.Time
	}
	if tc.NATSSE != nil {
		c.hasClaim = true
		c.Subscribe, c.Durables, c.Publish = tc.NATSSE.Subscribe, tc.NATSSE.Durable, tc.NATSSE.Publish
	}
	return c, nil
}

// key finds the key for t and refuses any algorithm but the key's own.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	k := v.static
	if k == nil {
		kid, _ := t.Header["kid"].(string)
		var err error
		if k, err = v.jwks.key(ctx, kid); err != nil {
			return nil, err
		}
	}
	if alg := t.Method.Alg(); alg != k.alg {
		return nil, keyError(fmt.Sprintf("it is signed with %s, but the key verifies %s only", alg, k.alg))
	}
	return k.key, nil
}

// keyError is why no key verifies a token, as a 401 detail.
type keyError string

func (e keyError) Error() string { return string(e) }

// reason words a verification error as the 401 detail.
func (v *Verifier) reason(err error, tc *tokenClaims) string {
	var ke keyError
	switch {
	case errors.As(err, &ke):
		return ke.Error()
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "it is not a JWT (three base64url parts separated by dots): " + err.Error()
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "its signature does not verify"
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Sprintf("it expired at %s (leeway %s); get a fresh token", tc.ExpiresAt.UTC().Format(time.RFC3339), v.cfg.Leeway)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Sprintf("it is not valid before %s (leeway %s)", tc.NotBefore.UTC().Format(time.RFC3339), v.cfg.Leeway)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Sprintf("its aud does not include %q", v.cfg.Audience)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Sprintf("its iss is not %q", v.cfg.Issuer)
	}
	return err.Error()
}
