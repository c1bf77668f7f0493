package main_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryNATSURLNotPrinted: a NATS_URL with a password that does not
// parse stops natsse with one line naming NATS_URL, without the password
// (Go's url.Parse error quotes the whole URL).
func TestBinaryNATSURLNotPrinted(t *testing.T) {
	for _, u := range []string{"nats://alice:S3cretPW@[::1", "nats://alice:S3cretPW@host:4222,nats://bob:S3cretPW@[::1"} {
		out, err := runRefused(t, []string{"NATS_URL=" + u, "NATSSE_ANONYMOUS=true"})
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("NATS_URL=%s: got %v, want exit code 1\n%s", u, err, out)
		}
		if !strings.Contains(out, "NATS_URL") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("NATS_URL=%s: want one line naming NATS_URL, got:\n%s", u, out)
		}
		if strings.Contains(out, "S3cretPW") {
			t.Errorf("NATS_URL=%s: the password is printed:\n%s", u, out)
		}
	}
}
