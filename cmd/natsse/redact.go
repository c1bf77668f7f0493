package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/natsse/natsse/service"
)

// redactURLs redacts each URL of a comma-separated list before it is
// logged: a NATS URL can hold a user and password, or a token in the
// user's place, which url.URL.Redacted would keep (docs/security.md,
// "Secrets in logs"). A bare host:port is read as nats.go reads it.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "nats://" + p
		}
		parts[i] = service.RedactURL(p)
	}
	return strings.Join(parts, ",")
}

// checkNATSURL refuses a NATS_URL that does not parse, without printing it:
// the part that does not parse may be the password.
func (c config) checkNATSURL() error {
	if c.embedded() {
		return nil
	}
	parts := strings.Split(c.NATSURL, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "nats://" + p
		}
		_, err := url.Parse(p)
		if err == nil {
			continue
		}
		why := "it does not parse"
		// url.Parse's own reasons may quote a piece of the URL.
		if ue, ok := errors.AsType[*url.Error](err); ok && !strings.ContainsAny(ue.Err.Error(), `"'`) {
			why = ue.Err.Error()
		}
		return fmt.Errorf("NATS_URL: URL %d of %d is not a URL like nats://user:password@host:4222 (%s); it is not shown, as it may hold a password", i+1, len(parts), why)
	}
	return nil
}
