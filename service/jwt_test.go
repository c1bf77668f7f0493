package service_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/natsse/natsse/service"
)

// claimsFor are valid claims that allow events.>.
func claimsFor() jwt.MapClaims {
	return jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix(), "natsse": map[string]any{"subscribe": []string{"events.>"}}}
}

func pemOf(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestJWTAlgorithmPinned: each key verifies its own algorithm only, so a
// token cannot pick a weaker or confused one (another hash, RSA-PSS for an
// RS256 key, HMAC keyed with the public key, none).
func TestJWTAlgorithmPinned(t *testing.T) {
	rsaPriv, ec256, ec384 := rsaKey(t), ecKey(t, elliptic.P256()), ecKey(t, elliptic.P384())
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherRSA := rsaKey(t)
	none := func(t *testing.T) string {
		return mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor())
	}
	type signer struct {
		method jwt.SigningMethod
		key    any
	}
	tests := []struct {
		name    string
		public  crypto.PublicKey // nil: the secret
		good    signer
		refused map[string]signer
	}{
		{"HS256 secret", nil, signer{jwt.SigningMethodHS256, testSecret}, map[string]signer{
			"HS384": {jwt.SigningMethodHS384, testSecret},
			"HS512": {jwt.SigningMethodHS512, testSecret},
		}},
		{"RSA", &rsaPriv.PublicKey, signer{jwt.SigningMethodRS256, rsaPriv}, map[string]signer{
			"RS384":         {jwt.SigningMethodRS384, rsaPriv},
			"RS512":         {jwt.SigningMethodRS512, rsaPriv},
			"PS256":         {jwt.SigningMethodPS256, rsaPriv},
			"another key":   {jwt.SigningMethodRS256, otherRSA},
			"HS256 by PEM":  {jwt.SigningMethodHS256, pemOf(t, &rsaPriv.PublicKey)},
			"HS256 by DER":  {jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&rsaPriv.PublicKey)},
			"ES256 instead": {jwt.SigningMethodES256, ec256},
		}},
		{"ECDSA P-256", &ec256.PublicKey, signer{jwt.SigningMethodES256, ec256}, map[string]signer{
			"HS256 by PEM": {jwt.SigningMethodHS256, pemOf(t, &ec256.PublicKey)},
			"another key":  {jwt.SigningMethodES256, ecKey(t, elliptic.P256())},
			"RS256":        {jwt.SigningMethodRS256, rsaPriv},
		}},
		{"ECDSA P-384", &ec384.PublicKey, signer{jwt.SigningMethodES384, ec384}, map[string]signer{
			"ES256 by another key": {jwt.SigningMethodES256, ec256},
		}},
		{"Ed25519", edPriv.Public(), signer{jwt.SigningMethodEdDSA, edPriv}, map[string]signer{
			"HS256 by PEM": {jwt.SigningMethodHS256, pemOf(t, edPriv.Public())},
			"HS256 by key": {jwt.SigningMethodHS256, []byte(edPriv.Public().(ed25519.PublicKey))},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := service.JWTConfig{Secret: testSecret}
			if tt.public != nil {
				key, err := service.ParsePublicKeyPEM(pemOf(t, tt.public))
				if err != nil {
					t.Fatal(err)
				}
				cfg = service.JWTConfig{PublicKey: key}
			}
			e := start(t, service.Config{JWT: cfg})
			e.expectStatus("/events/a", bearer(mint(t, tt.good.method, tt.good.key, claimsFor())), 200)
			e.expectStatus("/events/a", bearer(none(t)), 401)
			for name, s := range tt.refused {
				if detail := e.expectStatus("/events/a", bearer(mint(t, s.method, s.key, claimsFor())), 401); detail == "" {
					t.Errorf("%s: accepted", name)
				}
			}
		})
	}
}

// TestJWTTimeClaims: exp and nbf are enforced with the leeway; a token
// without exp is accepted.
func TestJWTTimeClaims(t *testing.T) {
	now := time.Now()
	with := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"natsse": map[string]any{"subscribe": []string{"events.>"}}}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	tests := []struct {
		leeway time.Duration
		claims jwt.MapClaims
		want   int
		detail string
	}{
		{30 * time.Second, with(), 200, ""},
		{30 * time.Second, with("exp", now.Add(time.Hour).Unix()), 200, ""},
		{30 * time.Second, with("exp", now.Add(-10*time.Second).Unix()), 200, ""},
		{30 * time.Second, with("exp", now.Add(-2*time.Minute).Unix()), 401, "expired at"},
		{30 * time.Second, with("nbf", now.Add(10*time.Second).Unix()), 200, ""},
		{30 * time.Second, with("nbf", now.Add(2*time.Minute).Unix()), 401, "not valid before"},
		{30 * time.Second, with("nbf", now.Add(-time.Minute).Unix(), "exp", now.Add(time.Minute).Unix()), 200, ""},
		{0, with("exp", now.Add(-2*time.Second).Unix()), 401, "expired at"},
		{0, with("nbf", now.Add(5*time.Second).Unix()), 401, "not valid before"},
		{0, with("exp", now.Add(time.Minute).Unix()), 200, ""},
	}
	envs := map[time.Duration]*env{}
	for _, tt := range tests {
		e := envs[tt.leeway]
		if e == nil {
			e = startSecret(t, service.Config{JWT: service.JWTConfig{Leeway: tt.leeway}})
			envs[tt.leeway] = e
		}
		detail := e.expectStatus("/events/a", bearer(mint(t, jwt.SigningMethodHS256, testSecret, tt.claims)), tt.want)
		if !strings.Contains(detail, tt.detail) {
			t.Errorf("leeway %s, claims %v: detail %q, want it to say %q", tt.leeway, tt.claims, detail, tt.detail)
		}
	}
}

// TestJWTAudienceIssuer: when configured, aud must include the audience
// and iss must be the issuer; a token without them is refused.
func TestJWTAudienceIssuer(t *testing.T) {
	e := startSecret(t, service.Config{JWT: service.JWTConfig{Audience: "natsse-test", Issuer: "https://issuer.test"}})
	with := func(kv ...any) string {
		c := claimsFor()
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return mint(t, jwt.SigningMethodHS256, testSecret, c)
	}
	const aud, iss = "natsse-test", "https://issuer.test"
	e.expectStatus("/events/a", bearer(with("aud", aud, "iss", iss)), 200)
	e.expectStatus("/events/a", bearer(with("aud", []string{"other", aud}, "iss", iss)), 200)
	for _, tok := range []string{
		with("aud", "other", "iss", iss),
		with("iss", iss),
		with("aud", []string{}, "iss", iss),
	} {
		if d := e.expectStatus("/events/a", bearer(tok), 401); !strings.Contains(d, "aud") {
			t.Errorf("detail %q does not name aud", d)
		}
	}
	for _, tok := range []string{
		with("aud", aud, "iss", "https://other.test"),
		with("aud", aud),
	} {
		if d := e.expectStatus("/events/a", bearer(tok), 401); !strings.Contains(d, "iss") {
			t.Errorf("detail %q does not name iss", d)
		}
	}
}

// TestJWTConfigInvalid: settings that cannot work stop New.
func TestJWTConfigInvalid(t *testing.T) {
	ec := ecKey(t, elliptic.P256())
	for name, cfg := range map[string]service.JWTConfig{
		"two sources":            {Secret: testSecret, JWKSURL: "http://127.0.0.1:1/jwks"},
		"three sources":          {Secret: testSecret, PublicKey: &ec.PublicKey, JWKSURL: "http://127.0.0.1:1/jwks"},
		"audience without a key": {Audience: "a"},
		"issuer without a key":   {Issuer: "i"},
		"negative leeway":        {Secret: testSecret, Leeway: -time.Second},
		"unsupported key":        {PublicKey: "not a key"},
	} {
		if _, err := service.New(service.Config{JWT: cfg}, nil); err == nil || !strings.Contains(err.Error(), "jwt") {
			t.Errorf("%s: New: %v, want a jwt error", name, err)
		}
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	rsaPriv := rsaKey(t)
	ec := ecKey(t, elliptic.P256())
	p224 := ecKey(t, elliptic.P224())
	privDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"}, NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ec.PublicKey, ec)
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	for name, in := range map[string][]byte{
		"PKIX RSA":    pemOf(t, &rsaPriv.PublicKey),
		"PKCS1 RSA":   block("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaPriv.PublicKey)),
		"certificate": block("CERTIFICATE", certDER),
	} {
		if _, err := service.ParsePublicKeyPEM(in); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, tt := range map[string]struct {
		in   []byte
		says string
	}{
		"private key": {block("PRIVATE KEY", privDER), "public key only"},
		"not PEM":     {[]byte("hello"), "no PEM block"},
		"P-224":       {pemOf(t, &p224.PublicKey), "P-224"},
		"other block": {block("CERTIFICATE REQUEST", []byte{1}), "not a public key"},
	} {
		if _, err := service.ParsePublicKeyPEM(tt.in); err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: got %v, want an error saying %q", name, err, tt.says)
		}
	}
}
