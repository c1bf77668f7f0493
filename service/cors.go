package service

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/natsse/natsse/service/refusal"
)

// corsRequestHeaders are what polyfills add to a stream request.
const corsRequestHeaders = "Authorization, Last-Event-ID, Cache-Control"

// corsPublishHeaders are what a publish may add (docs/protocol.md,
// "Publishing over HTTP").
const corsPublishHeaders = "Content-Type, SSE-Event, Idempotency-Key"

// cors sets the CORS headers for an allowed Origin and answers preflight
// requests (204, with the headers only for an allowed origin). It reports
// whether the request was a preflight and has been answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	wildcard := slices.Contains(s.cfg.CORSOrigins, "*")
	if len(s.cfg.CORSOrigins) > 0 && !wildcard {
		h.Add("Vary", "Origin")
	}
	origin := r.Header.Get("Origin")
	allowed := origin != "" && (wildcard || slices.Contains(s.cfg.CORSOrigins, origin))
	if origin != "" && !allowed && !sameOrigin(r, origin) {
		s.origins.refused(origin)
	}
	if allowed {
		if wildcard {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	if r.Method != http.MethodOptions {
		return false
	}
	// Only a CORS preflight is answered; any other OPTIONS is a method
	// natsse does not serve (docs/protocol.md, "Errors").
	if origin == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		s.refuse(w, r, refusal.New(http.StatusMethodNotAllowed, "%s is not supported here: use GET (a CORS preflight sends Origin and Access-Control-Request-Method)", r.Method))
		return true
	}
	if allowed {
		methods, headers := "GET", corsRequestHeaders
		if s.cfg.Publish != PublishOff {
			methods, headers = "GET, POST", corsRequestHeaders+", "+corsPublishHeaders
		}
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", headers)
		h.Set("Access-Control-Max-Age", "600")
	}
	if s.debug {
		s.noteOutcome(r, "204 preflight")
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

// sameOrigin says whether a request's Origin is natsse's own (the page at
// <base>/ publishing): its fetch metadata says so, or the Origin names the
// Host asked for.
func sameOrigin(r *http.Request, origin string) bool {
	if r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	_, host, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(host, r.Host)
}

// maxOriginsLogged bounds the refused origins remembered: Origin is
// whatever a client sends.
const maxOriginsLogged = 100

// refusedOrigins logs a cross-origin request from an origin not in
// NATSSE_CORS_ORIGINS once per origin, for the first maxOriginsLogged
// origins (docs/operations.md, "Logs"): the browser hides the answer from
// the page, and a missing or mistyped origin is the usual cause.
type refusedOrigins struct {
	log  *slog.Logger
	mu   sync.Mutex
	seen map[string]struct{}
}

func (o *refusedOrigins) refused(origin string) {
	if len(origin) > 256 {
		origin = origin[:256]
	}
	o.mu.Lock()
	_, seen := o.seen[origin]
	full := len(o.seen) >= maxOriginsLogged
	if !seen && !full {
		o.seen[origin] = struct{}{}
	}
	o.mu.Unlock()
	if seen || full {
		return
	}
	msg := "cross-origin request from an origin not in NATSSE_CORS_ORIGINS: the browser keeps the answer from its page; if the page is yours, add its origin (scheme://host[:port]) to NATSSE_CORS_ORIGINS (logged once per origin)"
	if len(o.seen) == maxOriginsLogged {
		msg += "; more origins are not logged"
	}
	o.log.Info(msg, "origin", origin)
}
