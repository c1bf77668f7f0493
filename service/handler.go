package service

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/natsse/natsse/service/fanout"
	"github.com/natsse/natsse/service/refusal"
)

// ServeHTTP routes by exact path: a few reserved paths, every other path is
// a subject. No path is cleaned or redirected (docs/protocol.md, "Paths and
// subjects").
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.debug {
		var n *reqNote
		r, n = s.noting(r)
		defer s.logRequest(n)
	}
	if len(r.RequestURI) > s.cfg.MaxURLBytes {
		s.refuse(w, r, refusal.New(http.StatusBadRequest, "the URL is %d bytes; at most %d (NATSSE_MAX_URL_BYTES): request fewer subjects", len(r.RequestURI), s.cfg.MaxURLBytes))
		return
	}
	if s.cors(w, r) {
		return
	}
	path, ok := s.stripBase(r.URL.EscapedPath())
	if !ok {
		s.refuse(w, r, refusal.New(http.StatusNotFound, "nothing is served outside %s/", s.cfg.BasePath))
		return
	}
	switch path {
	case "/healthz":
		s.plain(w, r, http.StatusOK, "ok")
	case "/readyz":
		ready, why := s.Ready()
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		s.plain(w, r, status, why)
	case "/metrics":
		if s.cfg.MetricsOnOwnPort {
			s.refuse(w, r, refusal.New(http.StatusNotFound, "metrics are served on their own port (NATSSE_METRICS_ADDR)"))
			return
		}
		s.MetricsHandler().ServeHTTP(w, r)
	case "/":
		s.root(w, r)
	default:
		if r.Method == http.MethodPost {
			s.publish(w, r, path)
			return
		}
		s.subscribe(w, r, path)
	}
}

// MetricsHandler serves the Prometheus metrics, to GET and HEAD only.
func (s *Server) MetricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.refuse(w, r, refusal.New(http.StatusMethodNotAllowed, "%s is not supported here: use GET", r.Method))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) stripBase(path string) (string, bool) {
	if s.cfg.BasePath == "" {
		return path, true
	}
	rest, ok := strings.CutPrefix(path, s.cfg.BasePath)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	if rest == "" {
		rest = "/"
	}
	return rest, true
}

func (s *Server) plain(w http.ResponseWriter, r *http.Request, status int, body string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.refuse(w, r, refusal.New(http.StatusMethodNotAllowed, "%s is not supported here: use GET", r.Method))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.debug {
		s.noteOutcome(r, statusOutcome(status))
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}

// refuse answers a request natsse will not serve, the one place where a
// refusal becomes an answer: a problem as it is, anything else softly.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var p *refusal.Problem
	if !errors.As(err, &p) {
		s.softRefusal(w, r)
		return
	}
	s.metrics.requests.WithLabelValues(outcome(p.Status)).Inc()
	if s.debug {
		s.noteOutcome(r, statusOutcome(p.Status))
	}
	p.Write(w)
}

// softRefusal opens the stream and closes it at once with a jittered retry,
// so EventSource comes back later (perhaps to another replica) instead of
// giving up as it does on any status but 200 (docs/protocol.md, "The soft
// refusal"). An HTTP/1.1 connection closes with it: a refused client holds
// no idle connection.
func (s *Server) softRefusal(w http.ResponseWriter, r *http.Request) {
	s.metrics.requests.WithLabelValues("soft_refusal").Inc()
	if s.debug {
		s.noteOutcome(r, "soft_refusal")
	}
	setStreamHeaders(w, r)
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(fanout.RetryLine(s.jitteredRetry()))
}

// jitteredRetry is a retry between Retry and twice that, so that refused
// clients do not all come back in the same instant.
func (s *Server) jitteredRetry() time.Duration {
	return s.cfg.Retry + time.Duration(rand.Int64N(int64(s.cfg.Retry)+1))
}

func setStreamHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 {
		h.Set("Connection", "keep-alive")
	}
}
