package service

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServeHTTP routes by exact path: a few reserved paths, every other path is
// a subject. No path is cleaned or redirected (docs/protocol.md, "Paths and subjects").
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.RequestURI) > s.cfg.MaxURLBytes {
		s.refuse(w, newProblem(http.StatusBadRequest, "the URL is %d bytes; at most %d (NATSSE_MAX_URL_BYTES): request fewer subjects", len(r.RequestURI), s.cfg.MaxURLBytes))
		return
	}
	if s.cors(w, r) {
		return
	}
	path, ok := s.stripBase(r.URL.EscapedPath())
	if !ok {
		s.refuse(w, newProblem(http.StatusNotFound, "nothing is served outside %s/", s.cfg.BasePath))
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
			s.refuse(w, newProblem(http.StatusNotFound, "metrics are served on their own port (NATSSE_METRICS_ADDR)"))
			return
		}
		s.MetricsHandler().ServeHTTP(w, r)
	case "/":
		s.plain(w, r, http.StatusOK, "natsse: GET /events/<subject tokens separated by /> streams JetStream messages as Server-Sent Events")
	default:
		s.subscribe(w, r, path)
	}
}

// MetricsHandler serves the Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
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
		s.refuse(w, newProblem(http.StatusMethodNotAllowed, "%s is not supported here: use GET", r.Method))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}

func (s *Server) refuse(w http.ResponseWriter, p *problem) {
	if p.Status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET")
	}
	s.metrics.requests.WithLabelValues(http.StatusText(p.Status)).Inc()
	writeProblem(w, p)
}

// subscribe checks a stream request in the order of docs/protocol.md, "Errors"
// (400, 401, 404, 403), then serves the stream.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method != http.MethodGet {
		s.refuse(w, newProblem(http.StatusMethodNotAllowed, "%s cannot open a stream: use GET (EventSource does)", r.Method))
		return
	}
	req, p := s.parseRequest(r, path)
	if p != nil {
		s.refuse(w, p)
		return
	}
	auth, err := s.authenticate(r)
	if errors.As(err, &p) {
		s.refuse(w, p)
		return
	}
	st := s.hub.state.Load()
	if err != nil || st == nil {
		// Until the keys and the stream are known, whether the token is
		// valid and the subject served is unknown: come back later.
		s.softRefusal(w, r)
		return
	}
	req.auth = auth
	for _, pattern := range req.patterns {
		if !st.servesPattern(pattern) {
			s.refuse(w, newProblem(http.StatusNotFound, "subject %q is not served; served subjects: %s", pattern, strings.Join(st.served, ", ")))
			return
		}
	}
	if p := authorize(req); p != nil {
		s.refuse(w, p)
		return
	}
	if p := authorizeDurable(&req); p != nil {
		s.refuse(w, p)
		return
	}
	sub := newSubscriber(req.patterns, req.envelope, s.cfg.QueueEvents, r.RemoteAddr)
	sub.shard = s.hub.shard()
	sub.client = s.clientAddr(r)
	if !s.register(sub) {
		s.softRefusal(w, r)
		return
	}
	if p, ok := s.openCursor(r.Context(), &req, sub); !ok {
		s.unregister(sub)
		if p != nil {
			s.refuse(w, p)
		} else {
			s.softRefusal(w, r)
		}
		return
	}
	s.serveStream(w, r, req, sub)
}

// softRefusal opens the stream and closes it at once with a jittered retry,
// so EventSource comes back later (perhaps to another replica) instead of
// giving up as it does on any status but 200. An HTTP/1.1 connection closes
// with it: a refused client holds no idle connection.
func (s *Server) softRefusal(w http.ResponseWriter, r *http.Request) {
	s.metrics.requests.WithLabelValues("soft_refusal").Inc()
	setStreamHeaders(w, r)
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(http.StatusOK)
	jitter := time.Duration(rand.Int64N(int64(s.cfg.Retry) + 1))
	_, _ = w.Write(retryLine(s.cfg.Retry + jitter))
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

// serveStream sends the headers and the retry line at once, then events
// until the client leaves or the server ends the stream. An HTTP/1.1
// connection is taken over and served by a goroutine of its own, so that
// net/http's per-connection buffers and reader go away.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, req request, sub *subscriber) {
	s.metrics.requests.WithLabelValues("stream").Inc()
	st := &stream{srv: s, sub: sub, since: req.since, began: time.Now(), auth: req.auth, cursor: req.cursor}
	live := false
	switch {
	case req.hasPosition:
		// Even a position the ring holds may have been purged from the
		// stream: it is compared with the stream's bounds first.
		st.pos, st.check = req.position, true
	case req.since == nil:
		// Subscribe before the headers go out: a message published the
		// moment they arrive is delivered.
		st.pos, live = s.hub.attachLive(sub)
	}
	setStreamHeaders(w, r)
	// HTTP/1.1 over TLS stays in net/http: a *tls.Conn cannot take a batch
	// in one writev nor be watched by the epoll hang-up watcher, and TLS
	// clients mostly speak HTTP/2, which stays in net/http anyway.
	if r.ProtoMajor == 1 && r.TLS == nil && !s.cfg.NoHijack {
		if out, err := hijack(w); err == nil {
			st.out = out
			s.setAbort(sub, out.abort)
			ctx, hungUp := context.WithCancel(context.Background())
			out.unwatch = s.hangups.add(out.conn, hungUp)
			go func() {
				defer s.conns.release(out.conn) // after runStream closed it
				defer hungUp()
				s.runStream(ctx, st, live)
			}()
			return
		}
	}
	out := &httpSink{w: w, rc: http.NewResponseController(w)}
	st.out = out
	s.setAbort(sub, out.abort)
	w.WriteHeader(http.StatusOK)
	s.runStream(r.Context(), st, live)
}

// runStream serves st until it ends, then releases it.
func (s *Server) runStream(ctx context.Context, st *stream, live bool) {
	defer s.unregister(st.sub)
	defer st.cursor.finish()
	defer st.out.done()
	expired, stopExpiry := s.watchExpiry(st)
	defer stopExpiry()
	st.cursor.start(ctx)
	if age := s.cfg.MaxStreamAge; age > 0 {
		t := time.AfterFunc(age-age/5+time.Duration(rand.Int64N(int64(age/5)*2+1)), st.sub.close)
		defer t.Stop()
	}
	if err := st.writeRaw(retryLine(s.cfg.Retry)); err != nil {
		return
	}
	err := st.run(ctx, live)
	reason := endReason(err)
	if errors.Is(err, errReplayBusy) {
		jitter := time.Duration(rand.Int64N(int64(s.cfg.Retry) + 1))
		err = st.writeRaw(retryLine(s.cfg.Retry + jitter))
	}
	if errors.Is(err, errStopped) && expired() {
		reason = "token_expired"
		err = st.writeRaw(expiredEvent(st.auth.Expires))
	}
	s.metrics.ended.WithLabelValues(reason).Inc()
	if err != nil && !errors.Is(err, errStopped) && !errors.Is(err, context.Canceled) && s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("stream ended", "sub", st.sub, "pos", st.pos, "err", err)
	}
}
