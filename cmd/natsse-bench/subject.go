package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/natsse/natsse/subjects"
)

// requestSubjects maps a request target ("/events/a/b?subject=x.y") to the
// NATS subjects or patterns it subscribes to, the way natsse does (docs/protocol.md,
// "Paths and subjects"), so the ceiling server and the clients' expectations agree with it.
func requestSubjects(target string) ([]string, error) {
	path, query, _ := strings.Cut(target, "?")
	var subs []string
	if path != "/sse" {
		s, err := subjects.FromPath(path)
		if err != nil {
			return nil, err
		}
		subs = append(subs, s)
	}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("query %q: %v", query, err)
		}
		for _, s := range q["subject"] {
			if err := subjects.ValidatePattern(s); err != nil {
				return nil, err
			}
		}
		subs = append(subs, q["subject"]...)
	}
	if len(subs) == 0 {
		return nil, fmt.Errorf("target %q names no subject", target)
	}
	return subs, nil
}
