package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const secret = "0123456789abcdef0123456789abcdef"

// keyFiles writes an ECDSA key pair as PEM files and returns their paths.
func keyFiles(t *testing.T) (public, private string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	priv, _ := x509.MarshalPKCS8PrivateKey(k)
	dir := t.TempDir()
	public, private = filepath.Join(dir, "pub.pem"), filepath.Join(dir, "priv.pem")
	for path, b := range map[string]*pem.Block{public: {Type: "PUBLIC KEY", Bytes: pub}, private: {Type: "PRIVATE KEY", Bytes: priv}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return public, private
}

// TestJWTSettingsRefused: JWT settings that cannot work stop startup with
// one line naming the variable.
func TestJWTSettingsRefused(t *testing.T) {
	_, private := keyFiles(t)
	cases := []struct {
		env   map[string]string
		names []string
	}{
		{map[string]string{"NATSSE_JWT_SECRET": secret, "NATSSE_JWKS_URL": "https://id.example/jwks"}, []string{"NATSSE_JWT_SECRET", "NATSSE_JWKS_URL", "exactly one"}},
		{map[string]string{"NATSSE_JWT_SECRET": secret, "NATSSE_JWT_PUBLIC_KEY": private}, []string{"NATSSE_JWT_SECRET", "NATSSE_JWT_PUBLIC_KEY"}},
		{map[string]string{"NATSSE_JWT_AUDIENCE": "app"}, []string{"NATSSE_JWT_AUDIENCE"}},
		{map[string]string{"NATSSE_JWT_ISSUER": "https://id.example"}, []string{"NATSSE_JWT_ISSUER"}},
		{map[string]string{"NATSSE_JWT_SECRET": secret, "NATSSE_JWT_LEEWAY": "-1s"}, []string{"NATSSE_JWT_LEEWAY"}},
		{map[string]string{"NATSSE_JWT_LEEWAY": "soon"}, []string{"NATSSE_JWT_LEEWAY"}},
		{map[string]string{"NATSSE_JWKS_URL": "ftp://id.example/jwks"}, []string{"NATSSE_JWKS_URL"}},
		{map[string]string{"NATSSE_JWKS_URL": "https://id.example/jwks", "NATSSE_JWKS_REFRESH": "0s"}, []string{"NATSSE_JWKS_REFRESH"}},
		{map[string]string{"NATSSE_JWT_PUBLIC_KEY": "/nonexistent/key.pem"}, []string{"NATSSE_JWT_PUBLIC_KEY", "no such file"}},
		{map[string]string{"NATSSE_JWT_PUBLIC_KEY": private}, []string{"NATSSE_JWT_PUBLIC_KEY", "public key only"}},
		{map[string]string{"NATSSE_JWT_SECRET": secret, "NATSSE_JWT_COOKIE": "my token"}, []string{"NATSSE_JWT_COOKIE"}},
		{map[string]string{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_JWT_AUDIENCE": "app"}, []string{"NATSSE_JWT_AUDIENCE"}},
	}
	for _, c := range cases {
		_, err := loadConfig(c.env)
		for _, name := range c.names {
			if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v: got %v, want one line saying %s", c.env, err, name)
			}
		}
	}
}

// TestJWTSettingsAccepted: a key source alone is enough for connected mode,
// and the defaults are those of the README.
func TestJWTSettingsAccepted(t *testing.T) {
	public, _ := keyFiles(t)
	for _, env := range []map[string]string{
		{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_JWT_SECRET": secret},
		{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_JWT_PUBLIC_KEY": public},
		{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_JWKS_URL": "https://id.example/.well-known/jwks.json"},
		{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_JWT_SECRET": secret, "NATSSE_ANONYMOUS": "true"},
	} {
		c, err := loadConfig(env)
		if err != nil {
			t.Errorf("%v: %v", env, err)
			continue
		}
		jc, err := c.jwtConfig()
		if err != nil || !jc.Enabled() || jc.Leeway != 30*time.Second || jc.Cookie != "natsse_token" || jc.JWKSRefresh != 10*time.Minute {
			t.Errorf("%v: got %+v, %v; want JWT on, leeway 30s, cookie natsse_token, refresh 10m", env, jc, err)
		}
	}
	c, err := loadConfig(map[string]string{})
	if jc, _ := c.jwtConfig(); err != nil || jc.Enabled() {
		t.Errorf("no settings: JWT enabled %v (%v), want embedded mode anonymous", jc.Enabled(), err)
	}
}
