// Package access decides who may open which SSE stream (docs/protocol.md,
// "Access control"). With a key source configured (a secret, a public key
// or a JWKS), every stream request needs a JWT that verifies (signature
// with the key's one algorithm, exp and nbf with the leeway, aud and iss
// when configured) and whose natsse claim allows every requested subject
// and the named cursor, if any. What it allows is a Grant: the cursor's
// scope (the token's sub, so that two users never share a cursor) and the
// token's expiry, which ends the stream. Refusals are refusal problems
// (401, 403); keys that cannot be known yet are a soft refusal. Without a
// key source (a nil *Verifier) everyone may subscribe to everything served.
package access

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/natsse/natsse/service/refusal"
	"github.com/natsse/natsse/subjects"
)

// Claims is what a verified token allows.
type Claims struct {
	// Subject is the token's sub; named cursors are scoped by it.
	Subject string
	// Subscribe holds the patterns every requested subject must lie inside.
	Subscribe []string
	// Durables are the named cursors the token may use.
	Durables []string
	// Publish holds the patterns a subject published over HTTP must lie
	// inside.
	Publish []string
	// Expires is the token's exp; zero when it has none.
	Expires time.Time

	hasClaim bool // the token has a natsse claim
}

// Grant is what a request was allowed.
type Grant struct {
	// Scope is whose named cursor it uses: empty for anonymous requests.
	Scope string
	// Expires is the token's exp (zero: none); the stream ends at End, exp
	// plus the leeway, once a reconnect with the token would get a 401, so
	// that the client does not loop on a token natsse still takes.
	Expires, End time.Time
}

// accessTokenParam is the query parameter that can carry a token, for the
// native EventSource, which cannot set headers.
const accessTokenParam = "access_token"

// tokenFrom finds the request's token: the Authorization header, else the
// cookie (when cookie is true), else the query parameter; the first present
// is the one used, and an empty cookie or parameter counts as absent. from
// says where the token was found, for details and logs; err is a present
// but malformed header.
func (v *Verifier) tokenFrom(r *http.Request, cookie bool) (token, from string, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", "the Authorization header", errors.New(`the Authorization header is not "Bearer <token>"`)
		}
		return token, "the Authorization header", nil
	}
	if c, err := r.Cookie(v.cfg.Cookie); cookie && err == nil && c.Value != "" {
		return c.Value, "the cookie " + v.cfg.Cookie, nil
	}
	if q := r.URL.Query().Get(accessTokenParam); q != "" {
		return q, "the query parameter " + accessTokenParam, nil
	}
	return "", "", nil
}

// Authenticate verifies the request's token (after 400, before 404:
// docs/protocol.md, "Errors"). The error is a 401 *refusal.Problem, or
// wraps refusal.ErrSoft while the keys cannot be known yet. Claims are nil
// when access control is off (v is nil).
func (v *Verifier) Authenticate(r *http.Request) (*Claims, error) {
	return v.authenticate(r, true)
}

// AuthenticatePublish is Authenticate for a publish, which never takes the
// token from the cookie: a browser sends the cookie with any request to
// natsse, a form posted by another site included, so a cookie would let
// any page the user visits publish as the user (docs/security.md,
// "Publishing").
func (v *Verifier) AuthenticatePublish(r *http.Request) (*Claims, error) {
	return v.authenticate(r, false)
}

func (v *Verifier) authenticate(r *http.Request, cookie bool) (*Claims, error) {
	if v == nil {
		return nil, nil
	}
	token, from, err := v.tokenFrom(r, cookie)
	if err != nil {
		return nil, v.unauthorized(r, from, err.Error())
	}
	if token == "" {
		where := "Authorization: Bearer <token>, in the cookie " + v.cfg.Cookie + ", or as ?" + accessTokenParam + "=<token>"
		if !cookie {
			where = "Authorization: Bearer <token> or as ?" + accessTokenParam + "=<token> (a cookie does not authorize a publish)"
		}
		return nil, v.unauthorized(r, "", "no token: send one as "+where)
	}
	c, err := v.verify(r.Context(), token)
	if errors.Is(err, errKeysUnavailable) {
		return nil, fmt.Errorf("%w: %w", refusal.ErrSoft, err)
	}
	if err != nil {
		return nil, v.unauthorized(r, from, "the token from "+from+" is not accepted: "+err.Error())
	}
	return c, nil
}

// unauthorized logs why a token was refused, never the token itself.
func (v *Verifier) unauthorized(r *http.Request, from, detail string) error {
	if v.log.Enabled(r.Context(), slog.LevelDebug) {
		v.log.LogAttrs(r.Context(), slog.LevelDebug, "token refused",
			slog.String("remote", r.RemoteAddr), slog.String("from", from), slog.String("reason", detail))
	}
	return refusal.New(http.StatusUnauthorized, "%s", detail)
}

// Authorize checks the requested subjects and named cursor (durable, ""
// for none) against the token's natsse claim (after 404, so only served
// subjects get a 403: docs/protocol.md, "Errors"). With access control off
// (v or c nil) everything is allowed.
func (v *Verifier) Authorize(c *Claims, patterns []string, durable string) (Grant, error) {
	if v == nil || c == nil {
		return Grant{}, nil
	}
	if !c.hasClaim {
		return Grant{}, refusal.New(http.StatusForbidden, `the token has no natsse claim; its issuer must add {"natsse":{"subscribe":["<subject pattern>", ...]}}`)
	}
	if outside, ok := subjects.AllInside(patterns, c.Subscribe); !ok {
		allowed := "no subject"
		if len(c.Subscribe) > 0 {
			allowed = strings.Join(c.Subscribe, ", ")
		}
		return Grant{}, refusal.New(http.StatusForbidden, "subject %q is not allowed by this token, which allows: %s; each requested subject must lie inside one of them", outside, allowed)
	}
	g := Grant{Expires: c.Expires}
	if !c.Expires.IsZero() {
		g.End = c.Expires.Add(v.cfg.Leeway)
	}
	if durable == "" {
		return g, nil
	}
	// A named cursor is scoped to the token's sub, so two users never share
	// a cursor (docs/protocol.md, "Named cursors"). Tokens without a sub
	// would all share one scope, and so each other's cursors: refused.
	if !slices.Contains(c.Durables, durable) {
		return Grant{}, refusal.New(http.StatusForbidden, "the token does not allow the named cursor %q: list it in the natsse.durable claim", durable)
	}
	if c.Subject == "" {
		return Grant{}, refusal.New(http.StatusForbidden, "the token has no sub, and named cursors are kept per sub: its issuer must set sub to use the named cursor %q", durable)
	}
	g.Scope = "sub:" + c.Subject
	return g, nil
}

// AuthorizePublish checks a subject to publish to against the token's
// natsse claim, with the rules of subscribe (after 404, like Authorize).
// With access control off (v or c nil) everything is allowed.
func (v *Verifier) AuthorizePublish(c *Claims, subject string) error {
	if v == nil || c == nil {
		return nil
	}
	if len(c.Publish) == 0 {
		return refusal.New(http.StatusForbidden, `the token allows no publishing; its issuer must add {"natsse":{"publish":["<subject pattern>", ...]}}`)
	}
	if !subjects.InsideAny(subject, c.Publish) {
		return refusal.New(http.StatusForbidden, "publishing to %q is not allowed by this token, which allows: %s", subject, strings.Join(c.Publish, ", "))
	}
	return nil
}
