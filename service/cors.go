package service

import (
	"net/http"
	"slices"

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
	w.WriteHeader(http.StatusNoContent)
	return true
}
