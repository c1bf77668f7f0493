package main_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryRefusesBadStreamSettings: stream and CORS settings that used to
// leave natsse half-started (no stream, /readyz 503 forever) or silently
// wrong (an origin that never matches) stop it with one
// line naming the variable and exit code 1, before the store directory is
// created or NATS started.
func TestBinaryRefusesBadStreamSettings(t *testing.T) {
	for _, kv := range []string{"NATSSE_STREAM_MAX_AGE=-1h", "NATSSE_STREAM=bad.name", "NATSSE_STREAM_REPLICAS=3", "NATSSE_STREAM_SUBJECTS=>",
		// An origin no browser sends, which would never match; served
		// subjects outside the stream natsse creates.
		"NATSSE_CORS_ORIGINS=https://app.example.com/", "NATSSE_CORS_ORIGINS=app.example.com", "NATSSE_CORS_ORIGINS=https://app.example.com/sse",
		"NATSSE_SUBJECTS=orders.>",
	} {
		name, _, _ := strings.Cut(kv, "=")
		store := filepath.Join(t.TempDir(), "store")
		out, err := runRefused(t, []string{kv, "NATSSE_STORE_DIR=" + store})
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("%s: got %v, want exit code 1\n%s", kv, err, out)
		}
		if line := strings.TrimSpace(out); strings.Contains(line, "\n") || !strings.HasPrefix(line, "natsse: "+name+":") {
			t.Errorf("%s: want one line natsse: %s: ..., got:\n%s", kv, name, out)
		}
		if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the store directory was created (%v)", kv, err)
		}
	}
}
