package service

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/natsse/natsse/subjects"
)

// claims is what a verified token allows. A request's claims are nil when
// access control is off.
type claims struct {
	// Subject is the token's sub; named cursors are scoped by it.
	Subject string
	// Subscribe holds the patterns every requested subject must lie inside.
	Subscribe []string
	// Durables are the named cursors the token may use.
	Durables []string
	// Expires is the token's exp; zero when it has none.
	Expires time.Time

	hasClaim bool // the token has a natsse claim
}

// AllowsDurable reports whether the named cursor name may be used: any name
// when access control is off (c is nil), else only the names listed in the
// token's natsse.durable.
func (c *claims) AllowsDurable(name string) bool {
	return c == nil || slices.Contains(c.Durables, name)
}

// accessTokenParam is the query parameter that can carry a token, for the
// native EventSource, which cannot set headers.
const accessTokenParam = "access_token"

// tokenFrom finds the request's token: the Authorization header, else the
// cookie, else the query parameter; the first present is the one used, and
// an empty cookie or parameter counts as absent. from says where the token
// was found, for details and logs; err is a present but malformed header.
func (s *Server) tokenFrom(r *http.Request) (token, from string, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", "the Authorization header", errors.New(`the Authorization header is not "Bearer <token>"`)
		}
		return token, "the Authorization header", nil
	}
	if c, err := r.Cookie(s.cfg.JWT.Cookie); err == nil && c.Value != "" {
		return c.Value, "the cookie " + s.cfg.JWT.Cookie, nil
	}
	if v := r.URL.Query().Get(accessTokenParam); v != "" {
		return v, "the query parameter " + accessTokenParam, nil
	}
	return "", "", nil
}

// authenticate verifies the request's token (after 400, before 404:
// docs/protocol.md, "Errors"). The error is a 401 *problem, or errKeysUnavailable while the keys
// cannot be known yet. Claims are nil when access control is off.
func (s *Server) authenticate(r *http.Request) (*claims, error) {
	if s.auth == nil {
		return nil, nil
	}
	token, from, err := s.tokenFrom(r)
	if err != nil {
		return nil, s.unauthorized(r, from, err.Error())
	}
	if token == "" {
		return nil, s.unauthorized(r, "", "no token: send one as Authorization: Bearer <token>, in the cookie "+s.cfg.JWT.Cookie+", or as ?"+accessTokenParam+"=<token>")
	}
	c, err := s.auth.verify(r.Context(), token)
	if errors.Is(err, errKeysUnavailable) {
		return nil, err
	}
	if err != nil {
		return nil, s.unauthorized(r, from, "the token from "+from+" is not accepted: "+err.Error())
	}
	return c, nil
}

// unauthorized logs why a token was refused, never the token itself.
func (s *Server) unauthorized(r *http.Request, from, detail string) *problem {
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "token refused",
			slog.String("remote", r.RemoteAddr), slog.String("from", from), slog.String("reason", detail))
	}
	return newProblem(http.StatusUnauthorized, "%s", detail)
}

// authorize checks the requested subjects against the token's natsse claim
// (after 404, so only served subjects get a 403: docs/protocol.md,
// "Errors").
func authorize(req request) *problem {
	c := req.auth
	if c == nil {
		return nil
	}
	if !c.hasClaim {
		return newProblem(http.StatusForbidden, `the token has no natsse claim; its issuer must add {"natsse":{"subscribe":["<subject pattern>", ...]}}`)
	}
	if outside, ok := subjects.AllInside(req.patterns, c.Subscribe); !ok {
		allowed := "no subject"
		if len(c.Subscribe) > 0 {
			allowed = strings.Join(c.Subscribe, ", ")
		}
		return newProblem(http.StatusForbidden, "subject %q is not allowed by this token, which allows: %s; each requested subject must lie inside one of them", outside, allowed)
	}
	return nil
}

// authorizeDurable checks a named cursor against the token's natsse.durable
// and scopes it to the token's sub, so two users never share a cursor
// (docs/protocol.md, "Named cursors"). A token without sub gets a scope of its own, apart from
// anonymous cursors.
func authorizeDurable(req *request) *problem {
	if req.durable == "" || req.auth == nil {
		return nil
	}
	if !req.auth.AllowsDurable(req.durable) {
		return newProblem(http.StatusForbidden, "the token does not allow the named cursor %q: list it in the natsse.durable claim", req.durable)
	}
	req.scope = "sub:" + req.auth.Subject
	return nil
}
