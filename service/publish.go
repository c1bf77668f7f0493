package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service/access"
	"github.com/natsse/natsse/service/refusal"
	"github.com/natsse/natsse/subjects"
)

// publishTimeout bounds the wait for JetStream's acknowledgement, as
// nats.go's own JetStream default does.
const publishTimeout = 5 * time.Second

// Request headers a publish reads (docs/protocol.md, "Publishing over HTTP").
const (
	headerEvent          = "SSE-Event"       // copied to the NATS header of the same name
	headerIdempotencyKey = "Idempotency-Key" // copied to Nats-Msg-Id
)

// published is the answer to a stored publish.
type published struct {
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

// publish stores the body of a POST as one message on the path's subject
// and answers 201 only after JetStream acknowledged it, so a failed
// publish is never reported as stored (docs/protocol.md, "Publishing over
// HTTP").
func (s *Server) publish(w http.ResponseWriter, r *http.Request, path string) {
	ack, err := s.store(w, r, path)
	if err != nil {
		s.refusePublish(w, r, err)
		return
	}
	outcome := "stored"
	if ack.Duplicate {
		outcome = "duplicate"
	}
	if n := s.note(r); n != nil {
		n.outcome, n.position, n.hasPos = "201 "+outcome, ack.Sequence, true
	}
	s.metrics.published.WithLabelValues(outcome).Inc()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(published{Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate})
}

// store checks a publish in the order of a stream request (400, 401, 404,
// 403: docs/protocol.md, "Errors"), then whether NATS can take it (503)
// and its size (413), and stores it.
func (s *Server) store(w http.ResponseWriter, r *http.Request, path string) (*jetstream.PubAck, error) {
	if s.cfg.Publish == PublishOff || path == "/sse" {
		return nil, s.methodNotAllowed(path, "POST publishes only on a subject path, with NATSSE_PUBLISH on: use GET")
	}
	if s.crossOrigin != nil {
		if err := s.crossOrigin.Check(r); err != nil {
			return nil, refusal.New(http.StatusForbidden, "a page of another origin (%q) may publish only when NATSSE_CORS_ORIGINS lists it", r.Header.Get("Origin"))
		}
	}
	subject, err := subjects.FromPath(path)
	if err != nil {
		return nil, refusal.New(http.StatusBadRequest, "%s", err)
	}
	if !subjects.IsLiteral(subject) {
		return nil, refusal.New(http.StatusBadRequest, "cannot publish to %q: a message goes to one subject, without the wildcards * and >", subject)
	}
	event := r.Header.Get(headerEvent)
	if event == "reset" || event == "expired" {
		return nil, refusal.New(http.StatusBadRequest, "%s: %q is an event type natsse sends itself (docs/protocol.md): choose another", headerEvent, event)
	}
	var claims *access.Claims
	if s.cfg.Publish == PublishToken {
		if claims, err = s.access.AuthenticatePublish(r); err != nil {
			return nil, err
		}
	}
	st, err := s.served.route([]string{subject})
	if errors.Is(err, refusal.ErrSoft) {
		return nil, unavailable("the stream of %q has not been found yet, or does not exist now, so it cannot be stored", subject)
	}
	if err != nil {
		return nil, err
	}
	if s.cfg.Publish == PublishToken {
		if err := s.access.AuthorizePublish(claims, subject); err != nil {
			return nil, err
		}
	}
	if !s.nc.IsConnected() {
		return nil, unavailable("NATS is not connected; nothing was stored")
	}
	limit := s.nc.MaxPayload()
	if r.ContentLength > limit {
		return nil, tooLarge(r.ContentLength, limit)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(-1, limit)
	}
	if err != nil {
		return nil, refusal.New(http.StatusBadRequest, "the body could not be read: %v", err)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if event != "" {
		msg.Header.Set(headerEvent, event)
	}
	if key := r.Header.Get(headerIdempotencyKey); key != "" {
		msg.Header.Set(jetstream.MsgIDHeader, key)
	}
	// A client that hangs up does not abandon a publish half way: it is
	// acknowledged or it fails, within publishTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), publishTimeout)
	defer cancel()
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(st.name))
	switch {
	case err == nil:
		return ack, nil
	case errors.Is(err, nats.ErrMaxPayload):
		return nil, refusal.New(http.StatusRequestEntityTooLarge, "the message is larger than NATS takes (max_payload %d bytes, headers included); nothing was stored", limit)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, unavailable("JetStream did not acknowledge within %s: the message may or may not be stored; publish it again with the same %s to store it once", publishTimeout, headerIdempotencyKey)
	default:
		return nil, unavailable("JetStream did not store the message: %v", err)
	}
}

func tooLarge(size, limit int64) error {
	if size < 0 {
		return refusal.New(http.StatusRequestEntityTooLarge, "the body is larger than NATS takes: at most %d bytes (max_payload); nothing was stored", limit)
	}
	return refusal.New(http.StatusRequestEntityTooLarge, "the body is %d bytes; NATS takes at most %d (max_payload); nothing was stored", size, limit)
}

// unavailable is the 503 of a publish NATS cannot take now: unlike a
// stream request, a publish is answered by status, and Retry-After says
// when to try again.
func unavailable(format string, args ...any) error {
	return refusal.New(http.StatusServiceUnavailable, format, args...)
}

// refusePublish answers a publish that was not stored: with its problem,
// or 503 for anything transient (keys not fetched yet).
func (s *Server) refusePublish(w http.ResponseWriter, r *http.Request, err error) {
	var p *refusal.Problem
	if !errors.As(err, &p) {
		p = refusal.New(http.StatusServiceUnavailable, "cannot publish now: %v", err)
	}
	if p.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.jitteredRetry().Seconds()))))
	}
	s.metrics.published.WithLabelValues(outcome(p.Status)).Inc()
	if s.debug {
		s.noteOutcome(r, statusOutcome(p.Status))
	}
	p.Write(w)
}

// allow is what the Allow header of a 405 at path lists.
func (s *Server) allow(path string) string {
	if s.cfg.Publish != PublishOff && path != "/sse" && !reserved(path) {
		return "GET, POST"
	}
	return "GET"
}

// methodNotAllowed is the 405 at path, with the methods that work there.
func (s *Server) methodNotAllowed(path, detail string) error {
	p := refusal.New(http.StatusMethodNotAllowed, "%s", detail)
	p.Allow = s.allow(path)
	return p
}

// reserved reports whether path is one of the paths that are not subjects.
func reserved(path string) bool {
	return slices.Contains([]string{"/", "/healthz", "/readyz", "/metrics", "/sse"}, path)
}

// crossOriginProtection refuses publishes from pages of origins that
// NATSSE_CORS_ORIGINS does not list (a form on any site can POST to
// natsse); nil when it lists "*", which allows every origin.
func crossOriginProtection(origins []string) *http.CrossOriginProtection {
	if slices.Contains(origins, "*") {
		return nil
	}
	c := http.NewCrossOriginProtection()
	for _, o := range origins {
		// An origin it cannot parse is never sent by a browser either.
		_ = c.AddTrustedOrigin(o)
	}
	return c
}

// root answers <base>/: the live page when NATSSE_UI is on, else one line
// that says how to use natsse.
func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	if s.page == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		what := "JetStream messages"
		if served := s.served.servedSubjects(); served != nil {
			what = "the messages of " + strings.Join(served, ", ")
		}
		s.plain(w, r, http.StatusOK, fmt.Sprintf("natsse: GET %s/<subject tokens separated by /> streams %s as Server-Sent Events; see docs/protocol.md", s.cfg.BasePath, what))
		return
	}
	s.page.ServeHTTP(w, r)
}
