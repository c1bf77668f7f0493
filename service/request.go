package service

import (
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/natsse/natsse/service/cursors"
	"github.com/natsse/natsse/service/refusal"
	"github.com/natsse/natsse/subjects"
)

// request is a validated stream request: what the client asked for, never
// changed once parsed (what it is allowed is an access.Grant; where a named
// cursor stands, the position openCursor returns).
type request struct {
	patterns    []string
	position    uint64
	hasPosition bool
	since       *time.Time
	envelope    bool
	durable     string // a named cursor (?durable=); "" for none
}

// parseRequest validates everything a request says, before any credential
// or stream is looked at (400 comes first: docs/protocol.md, "Errors").
func (s *Server) parseRequest(r *http.Request, path string) (request, error) {
	var req request
	q := r.URL.Query()
	if path != "/sse" {
		subject, err := subjects.FromPath(path)
		if err != nil {
			return req, refusal.New(http.StatusBadRequest, "%s", err)
		}
		req.patterns = append(req.patterns, subject)
	}
	for _, p := range q["subject"] {
		if err := subjects.ValidatePattern(p); err != nil {
			return req, refusal.New(http.StatusBadRequest, "query parameter subject=%q: %s", p, err)
		}
		if !slices.Contains(req.patterns, p) {
			req.patterns = append(req.patterns, p)
		}
	}
	if len(req.patterns) == 0 {
		return req, refusal.New(http.StatusBadRequest, "no subject: add ?subject=<NATS subject> (repeatable) or use the path /events/...")
	}
	if len(req.patterns) > s.cfg.MaxSubjects {
		return req, refusal.New(http.StatusBadRequest, "%d subjects requested; at most %d per stream (NATSSE_MAX_SUBJECTS): use a wildcard or more streams", len(req.patterns), s.cfg.MaxSubjects)
	}
	if err := parsePosition(r, &req); err != nil {
		return req, err
	}
	switch env := q.Get("envelope"); env {
	case "":
	case "json":
		req.envelope = true
	default:
		return req, refusal.New(http.StatusBadRequest, "envelope=%q is not known: use envelope=json or leave it out", env)
	}
	if names, ok := q["durable"]; ok {
		durable, err := parseDurable(names)
		if err != nil {
			return req, err
		}
		req.durable = durable
	}
	return req, nil
}

// parseDurable checks ?durable=: one name of 1 to 64 of A-Z a-z 0-9 _ -.
func parseDurable(values []string) (string, error) {
	if len(values) != 1 {
		return "", refusal.New(http.StatusBadRequest, "%d durable parameters given; give one cursor name", len(values))
	}
	name := values[0]
	if !cursors.ValidName(name) {
		return "", refusal.New(http.StatusBadRequest, "durable=%q is not a cursor name: use 1 to 64 characters of A-Z a-z 0-9 _ -", name)
	}
	return name, nil
}

// parsePosition applies the precedence of docs/protocol.md, "Resuming": Last-Event-ID header,
// then lastEventId, then since; an empty value counts as absent.
func parsePosition(r *http.Request, req *request) error {
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
			return refusal.New(http.StatusBadRequest, "since=%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration (5m, 1h30m)", v)
		}
		req.since = &t
	}
	return nil
}

func setPosition(req *request, v, where string) error {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return refusal.New(http.StatusBadRequest, "%s is %q; it must be an event id: a non-negative decimal integer (the stream sequence)", where, v)
	}
	req.position, req.hasPosition = n, true
	return nil
}

// JetStream compares start times in Unix nanoseconds, an int64: a time
// outside these would wrap (docs/protocol.md, "Resuming").
var (
	earliestSince = time.Unix(0, 1).UTC()
	latestSince   = time.Unix(0, math.MaxInt64).UTC()
)

// parseSince reads an RFC 3339 time or a duration back from now, clamped
// to what JetStream can compare: before 1970 is everything stored, after
// 2262 nothing yet.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		switch {
		case t.Before(earliestSince):
			t = earliestSince
		case t.After(latestSince):
			t = latestSince
		}
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
