package main

import (
	"fmt"
	"net/url"
	"strings"
)

// requestSubjects maps a request target ("/events/a/b?subject=x.y") to the
// NATS subjects or patterns it subscribes to, the way natsse does (CONTRACT
// §2): path segments, percent-decoded, joined with "."; every "subject" query
// value added; "/sse" names no subject by itself. It validates only what the
// tools need: the ceiling server and the clients' expectations must agree with
// natsse on well-formed requests, not reproduce its error messages.
func requestSubjects(target string) ([]string, error) {
	path, query, _ := strings.Cut(target, "?")
	var subs []string
	if path != "/sse" {
		if len(path) < 2 || path[0] != '/' {
			return nil, fmt.Errorf("path %q names no subject", path)
		}
		segs := strings.Split(path[1:], "/")
		for i, s := range segs {
			tok, err := url.PathUnescape(s)
			if err != nil || tok == "" || strings.ContainsAny(tok, ". \t\r\n/") {
				return nil, fmt.Errorf("path segment %q is not a subject token", s)
			}
			segs[i] = tok
		}
		subs = append(subs, strings.Join(segs, "."))
	}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("query %q: %v", query, err)
		}
		subs = append(subs, q["subject"]...)
	}
	if len(subs) == 0 {
		return nil, fmt.Errorf("target %q names no subject", target)
	}
	return subs, nil
}

// subjectMatch reports whether the literal subject matches the pattern, with
// NATS semantics for "*" (one token) and a final ">" (one or more tokens). It
// walks both strings token by token without allocating, since the ceiling
// server calls it for every message and wildcard connection.
func subjectMatch(pattern, subject string) bool {
	for {
		var pt, st string
		pt, pattern, _ = cutDot(pattern)
		if pt == ">" && pattern == "" {
			return subject != ""
		}
		if subject == "" {
			return false
		}
		st, subject, _ = cutDot(subject)
		if pt != "*" && pt != st {
			return false
		}
		if pattern == "" {
			return subject == ""
		}
	}
}

// cutDot splits off the first token of a subject.
func cutDot(s string) (tok, rest string, found bool) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// isWildcard reports whether a subject pattern has a "*" or ">" token.
func isWildcard(p string) bool {
	for p != "" {
		var t string
		t, p, _ = cutDot(p)
		if t == "*" || t == ">" {
			return true
		}
	}
	return false
}
