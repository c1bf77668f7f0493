package service

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// reqNote is what a request's debug line says (docs/operations.md, "Logs"):
// natsse keeps one only while it logs at debug, so that the info-level
// path pays nothing but a bool check.
type reqNote struct {
	start    time.Time
	path     string
	subjects []string
	outcome  string
	position uint64
	hasPos   bool
	// stream: an SSE stream opened; it logs the line when it ends.
	stream bool
}

type noteKey struct{}

// noting starts a request's debug line; r is unchanged at info level.
func (s *Server) noting(r *http.Request) (*http.Request, *reqNote) {
	if !s.debug {
		return r, nil
	}
	n := &reqNote{start: time.Now(), path: r.URL.EscapedPath(), outcome: "answered"}
	return r.WithContext(context.WithValue(r.Context(), noteKey{}, n)), n
}

// note returns r's debug line, nil at info level.
func (s *Server) note(r *http.Request) *reqNote {
	if !s.debug {
		return nil
	}
	n, _ := r.Context().Value(noteKey{}).(*reqNote)
	return n
}

// noteOutcome records how r was answered, at debug level.
func (s *Server) noteOutcome(r *http.Request, outcome string) {
	if n := s.note(r); n != nil {
		n.outcome = outcome
	}
}

// logRequest writes the debug line of a request that is not a stream (a
// stream writes its own when it ends). The query is left out: it may hold
// a token.
func (s *Server) logRequest(n *reqNote) {
	if n == nil || n.stream {
		return
	}
	s.writeNote(n)
}

func (s *Server) writeNote(n *reqNote) {
	attrs := []slog.Attr{slog.String("path", n.path), slog.String("outcome", n.outcome)}
	if n.subjects != nil {
		attrs = append(attrs, slog.Any("subjects", n.subjects))
	}
	if n.hasPos {
		attrs = append(attrs, slog.Uint64("position", n.position))
	}
	attrs = append(attrs, slog.Duration("duration", time.Since(n.start)))
	s.log.LogAttrs(context.Background(), slog.LevelDebug, "request", attrs...)
}

// logStreamEnd writes the debug line of a stream when it ends: why, and
// the position it reached.
func (s *Server) logStreamEnd(ss *sseStream, reason string) {
	n := ss.note
	if n == nil {
		return
	}
	n.outcome, n.position, n.hasPos = "stream "+reason, ss.pos, true
	s.writeNote(n)
}

// statusOutcome is a status as a debug line's outcome.
func statusOutcome(status int) string { return strconv.Itoa(status) }
