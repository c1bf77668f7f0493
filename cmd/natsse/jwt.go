package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"

	"github.com/natsse/natsse/service"
)

// jwtSources lists the key sources that are set, by variable name.
func (c config) jwtSources() []string {
	var set []string
	for _, s := range []struct{ name, value string }{
		{"NATSSE_JWT_SECRET", c.JWTSecret}, {"NATSSE_JWT_PUBLIC_KEY", c.JWTPublicKey}, {"NATSSE_JWKS_URL", c.JWKSURL},
	} {
		if s.value != "" {
			set = append(set, s.name)
		}
	}
	return set
}

// checkJWT refuses JWT settings that cannot work.
func (c config) checkJWT() error {
	sources := c.jwtSources()
	switch {
	case len(sources) > 1:
		return fmt.Errorf("%s and %s are both set: set exactly one key source", sources[0], sources[1])
	case len(sources) == 0 && c.JWTAudience != "":
		return fmt.Errorf("NATSSE_JWT_AUDIENCE is set but no key source is: set NATSSE_JWT_SECRET, NATSSE_JWT_PUBLIC_KEY or NATSSE_JWKS_URL")
	case len(sources) == 0 && c.JWTIssuer != "":
		return fmt.Errorf("NATSSE_JWT_ISSUER is set but no key source is: set NATSSE_JWT_SECRET, NATSSE_JWT_PUBLIC_KEY or NATSSE_JWKS_URL")
	case c.JWTLeeway < 0:
		return fmt.Errorf("NATSSE_JWT_LEEWAY: %s must not be negative", c.JWTLeeway)
	case c.JWKSRefresh <= 0:
		return fmt.Errorf("NATSSE_JWKS_REFRESH: %s must be positive", c.JWKSRefresh)
	case c.JWKSMinInterval < 0:
		return fmt.Errorf("NATSSE_JWKS_MIN_INTERVAL: %s must not be negative", c.JWKSMinInterval)
	case (&http.Cookie{Name: c.JWTCookie, Value: "x"}).Valid() != nil:
		return fmt.Errorf("NATSSE_JWT_COOKIE: %q is not a cookie name", c.JWTCookie)
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("NATSSE_JWKS_URL: %s is not an http(s) URL", redactURLs(c.JWKSURL))
		}
	}
	_, err := c.jwtConfig()
	return err
}

// jwtConfig is the service's JWT configuration; it reads the public key
// file.
func (c config) jwtConfig() (service.JWTConfig, error) {
	jc := service.JWTConfig{
		Secret: []byte(c.JWTSecret), JWKSURL: c.JWKSURL, JWKSRefresh: c.JWKSRefresh, JWKSMinInterval: c.JWKSMinInterval,
		Leeway: c.JWTLeeway, Audience: c.JWTAudience, Issuer: c.JWTIssuer, Cookie: c.JWTCookie,
	}
	if c.JWTPublicKey != "" {
		b, err := os.ReadFile(c.JWTPublicKey)
		if err != nil {
			return jc, fmt.Errorf("NATSSE_JWT_PUBLIC_KEY: %w", err)
		}
		if jc.PublicKey, err = service.ParsePublicKeyPEM(b); err != nil {
			return jc, fmt.Errorf("NATSSE_JWT_PUBLIC_KEY: %s: %w", c.JWTPublicKey, err)
		}
	}
	return jc, nil
}

// access says who may subscribe and who may publish, for the banner.
func access(c config, svc *service.Server) string {
	who := svc.AccessControl() + ": a token whose natsse claim allows the subjects is required"
	if len(c.jwtSources()) == 0 {
		who = "anonymous: anyone can subscribe to every served subject (set NATSSE_JWT_SECRET, NATSSE_JWT_PUBLIC_KEY or NATSSE_JWKS_URL to require tokens)"
	}
	switch c.publish() {
	case service.PublishAnonymous:
		who += "; anyone can publish over HTTP (NATSSE_PUBLISH=anonymous)"
	case service.PublishToken:
		who += "; publishing over HTTP needs a token whose natsse claim lists the subject in publish"
	}
	return who
}

// tokenHeader is the banner's curl option that sends a token, if needed.
func tokenHeader(c config) string {
	if len(c.jwtSources()) == 0 {
		return ""
	}
	return `-H "Authorization: Bearer $TOKEN" `
}

// warnAccess points out access settings that work but are probably not
// what was meant.
func warnAccess(log *slog.Logger, c config) {
	if c.Anonymous && len(c.jwtSources()) > 0 {
		log.Warn("NATSSE_ANONYMOUS=true is ignored: JWT verification is configured, so requests without a token get 401")
	}
	if n := len(c.JWTSecret); n > 0 && n < 32 {
		log.Warn(fmt.Sprintf("NATSSE_JWT_SECRET is %d bytes; HS256 needs 32 or more to resist guessing (RFC 7518 §3.2)", n))
	}
	switch {
	case c.publish() == service.PublishAnonymous && len(c.jwtSources()) > 0:
		log.Warn("NATSSE_PUBLISH=anonymous: anyone who reaches natsse can publish to every served subject without a token, although subscribing needs one; set NATSSE_PUBLISH=token to require a token with a natsse.publish claim")
	case c.publish() == service.PublishAnonymous && !c.embedded():
		log.Warn("NATSSE_PUBLISH=anonymous: anyone who reaches natsse can publish to every served subject of your NATS cluster; set NATSSE_PUBLISH=token (with JWT settings) to require a token")
	}
	if !c.embedded() && (c.EmbeddedUser != "" || c.EmbeddedPassword != "" || c.EmbeddedToken != "") {
		log.Warn("NATSSE_EMBEDDED_USER, NATSSE_EMBEDDED_PASSWORD and NATSSE_EMBEDDED_TOKEN are ignored: NATS_URL is set (connected mode), whose credentials are NATS_USER and NATS_PASSWORD, NATS_TOKEN, NATS_CREDS or NATS_NKEY")
	}
}
