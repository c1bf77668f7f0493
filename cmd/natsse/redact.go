package main

import (
	"net/url"
	"strings"
)

// redactURLs hides the user info of each URL in a comma-separated list
// before it is logged: a NATS URL can hold a user and password, or a token
// in the user's place, which url.URL.Redacted would keep.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
