package service

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/natsse/natsse/subjects"
)

// request is a validated stream request.
type request struct {
	patterns    []string
	position    uint64
	hasPosition bool
	since       *time.Time
	envelope    bool
	auth        *claims // set once the token is verified; nil when access control is off
	// durable names a cursor (?durable=); scope says whose: empty for
	// anonymous requests, the token's sub when auth is on (set by
	// authorize), so two users never share a cursor.
	durable string
	scope   string
	cursor  *cursor // set by openCursor
}

// parseRequest validates everything a request says, before any credential
// or stream is looked at (400 comes first: docs/protocol.md, "Errors").
func (s *Server) parseRequest(r *http.Request, path string) (request, *problem) {
	var req request
	q := r.URL.Query()
	if path != "/sse" {
		subject, err := subjects.FromPath(path)
		if err != nil {
			return req, newProblem(http.StatusBadRequest, "%s", err)
		}
		req.patterns = append(req.patterns, subject)
	}
	for _, p := range q["subject"] {
		if err := subjects.ValidatePattern(p); err != nil {
			return req, newProblem(http.StatusBadRequest, "query parameter subject=%q: %s", p, err)
		}
		if !slices.Contains(req.patterns, p) {
			req.patterns = append(req.patterns, p)
		}
	}
	if len(req.patterns) == 0 {
		return req, newProblem(http.StatusBadRequest, "no subject: add ?subject=<NATS subject> (repeatable) or use the path /events/...")
	}
	if len(req.patterns) > s.cfg.MaxSubjects {
		return req, newProblem(http.StatusBadRequest, "%d subjects requested; at most %d per stream (NATSSE_MAX_SUBJECTS): use a wildcard or more streams", len(req.patterns), s.cfg.MaxSubjects)
	}
	if p := parsePosition(r, &req); p != nil {
		return req, p
	}
	switch env := q.Get("envelope"); env {
	case "":
	case "json":
		req.envelope = true
	default:
		return req, newProblem(http.StatusBadRequest, "envelope=%q is not known: use envelope=json or leave it out", env)
	}
	if names, ok := q["durable"]; ok {
		if p := parseDurable(names, &req); p != nil {
			return req, p
		}
	}
	return req, nil
}

// parsePosition applies the precedence of docs/protocol.md, "Resuming": Last-Event-ID header,
// then lastEventId, then since; an empty value counts as absent.
func parsePosition(r *http.Request, req *request) *problem {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return setPosition(req, v, "the Last-Event-ID header")
	}
	q := r.URL.Query()
	if v := q.Get("lastEventId"); v != "" {
		return setPosition(req, v, "the query parameter lastEventId")
	}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, time.Now())
		if err != nil {
			return newProblem(http.StatusBadRequest, "since=%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration (5m, 1h30m)", v)
		}
		req.since = &t
	}
	return nil
}

func setPosition(req *request, v, where string) *problem {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return newProblem(http.StatusBadRequest, "%s is %q; it must be an event id: a non-negative decimal integer (the stream sequence)", where, v)
	}
	req.position, req.hasPosition = n, true
	return nil
}

// parseSince reads an RFC 3339 time or a duration back from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return time.Time{}, err
	}
	if d < 0 {
		return time.Time{}, errors.New("negative duration")
	}
	return now.Add(-d), nil
}
