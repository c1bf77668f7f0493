package service

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/natsse/natsse/service/access"
	"github.com/natsse/natsse/service/fanout"
)

// subscribe opens an SSE stream, or refuses the request.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, path string) {
	ss, err := s.open(r, path)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	s.serve(w, r, ss)
}

// open checks a stream request in the order of docs/protocol.md, "Errors"
// (400, 401, 404, 403), counts it, and gets its named cursor ready. Every
// check returns a refusal, or another error for the soft refusal.
func (s *Server) open(r *http.Request, path string) (*sseStream, error) {
	if r.Method != http.MethodGet {
		return nil, s.methodNotAllowed(path, r.Method+" cannot open a stream: use GET (EventSource does)")
	}
	req, err := s.parseRequest(r, path)
	if err != nil {
		return nil, err
	}
	if n := s.note(r); n != nil {
		n.subjects = req.patterns
		n.position, n.hasPos = req.position, req.hasPosition
	}
	grant, st, err := s.authorize(r, req)
	if err != nil {
		return nil, err
	}
	ss := s.newSSEStream(r, req, grant, st)
	if err := s.streams.add(ss); err != nil {
		return nil, err
	}
	if err := s.openCursor(r.Context(), req, ss); err != nil {
		s.streams.remove(ss)
		return nil, err
	}
	return ss, nil
}

// authorize verifies the token, finds the served stream that captures
// the request's subjects, and checks them against what the token allows.
func (s *Server) authorize(r *http.Request, req request) (access.Grant, *servedStream, error) {
	claims, err := s.access.Authenticate(r)
	if err != nil {
		return access.Grant{}, nil, err
	}
	st, err := s.served.route(req.patterns)
	if err != nil {
		return access.Grant{}, nil, err
	}
	grant, err := s.access.Authorize(claims, req.patterns, req.durable)
	return grant, st, err
}

// openCursor gets the request's named cursor, if any, and starts ss where
// the request says: its own position first, else the cursor's stored one;
// a position from either is checked against the stream first.
func (s *Server) openCursor(ctx context.Context, req request, ss *sseStream) error {
	pos, has := req.position, req.hasPosition
	if req.durable != "" {
		c, stored, known, err := ss.src.cursors.Open(ctx, req.durable, ss.grant.Scope, ss.client, req.patterns, ss.sub.Close, func() { s.streams.abort(ss) })
		if err != nil {
			return err
		}
		ss.cursor = c
		if !has && known {
			pos, has = stored, true
		}
	}
	if has {
		ss.pos, ss.check = pos, true
	}
	return nil
}

// serve sends the headers and the retry line at once, then events until
// the client leaves or the server ends the stream. An HTTP/1.1 connection
// is taken over and served by a goroutine of its own, so that net/http's
// per-connection buffers and reader go away.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, ss *sseStream) {
	s.metrics.requests.WithLabelValues("stream").Inc()
	if n := s.note(r); n != nil {
		n.stream, ss.note = true, n
	}
	// The stream's upstream runs while it has readers; an idle one gets
	// its ring at the stream's end now (docs/how-it-works.md).
	ss.release = ss.src.upstream.Want(r.Context())
	live := false
	if !ss.check && ss.since == nil {
		// Subscribe before the headers go out: a message published the
		// moment they arrive is delivered.
		ss.pos, live = ss.src.core.AttachLive(ss.sub)
	}
	setStreamHeaders(w, r)
	// HTTP/1.1 over TLS stays in net/http: a *tls.Conn cannot take a batch
	// in one writev nor be watched by the epoll hang-up watcher, and TLS
	// clients mostly speak HTTP/2, which stays in net/http anyway.
	if r.ProtoMajor == 1 && r.TLS == nil && !s.cfg.NoHijack {
		if out, err := hijack(w); err == nil {
			ss.out = out
			s.streams.setAbort(ss, out.abort)
			ctx, hungUp := context.WithCancel(context.Background())
			out.unwatch = s.hangups.add(out.conn, hungUp)
			go func() {
				defer s.conns.release(out.conn) // after runStream closed it
				defer hungUp()
				s.runStream(ctx, ss, live)
			}()
			return
		}
	}
	out := &httpSink{w: w, rc: http.NewResponseController(w)}
	ss.out = out
	s.streams.setAbort(ss, out.abort)
	w.WriteHeader(http.StatusOK)
	s.runStream(r.Context(), ss, live)
}

// runStream serves ss until it ends, then releases it.
func (s *Server) runStream(ctx context.Context, ss *sseStream, live bool) {
	defer s.streams.remove(ss)
	defer ss.release()
	defer ss.cursor.Finish()
	defer ss.out.done()
	expired, stopExpiry := watchExpiry(ss)
	defer stopExpiry()
	ss.cursor.Start(ctx)
	if age := s.cfg.MaxStreamAge; age > 0 {
		t := time.AfterFunc(age-age/5+time.Duration(rand.Int64N(int64(age/5)*2+1)), ss.sub.Close)
		defer t.Stop()
	}
	if err := ss.writeRaw(fanout.RetryLine(s.cfg.Retry)); err != nil {
		// Every stream that started is counted when it ends, also one
		// whose client was gone before its first write (docs/operations.md,
		// "What to alert on").
		s.metrics.ended.WithLabelValues(endReason(err)).Inc()
		s.logStreamEnd(ss, endReason(err))
		return
	}
	err := ss.run(ctx, live)
	reason := endReason(err)
	if errors.Is(err, errReplayBusy) {
		err = ss.writeRaw(fanout.RetryLine(s.jitteredRetry()))
	}
	if errors.Is(err, errStopped) && expired() {
		reason = "token_expired"
		err = ss.writeRaw(fanout.ExpiredEvent(ss.grant.Expires))
	}
	s.metrics.ended.WithLabelValues(reason).Inc()
	s.logStreamEnd(ss, reason)
	if err != nil && !errors.Is(err, errStopped) && !errors.Is(err, context.Canceled) && s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("stream ended", "stream", ss, "pos", ss.pos, "err", err)
	}
}
