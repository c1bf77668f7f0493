package main_test

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestBinaryEmbeddedCredentials: with credentials, the embedded NATS listens
// on every interface; a client without them (or with wrong ones) is refused,
// one with them publishes, and natsse, whose own in-process connection
// authenticates with them, delivers the event over SSE. The secret is in no
// log line, and the banner's publish example names the variable instead.
func TestBinaryEmbeddedCredentials(t *testing.T) {
	const secret = "Sup3r-s3cret-value"
	for _, tc := range []struct {
		name    string
		env     []string
		right   nats.Option
		wrong   nats.Option
		publish string // the banner's example after "nats --server <url>"
	}{
		{"user and password", []string{"NATSSE_EMBEDDED_USER=alice", "NATSSE_EMBEDDED_PASSWORD=" + secret},
			nats.UserInfo("alice", secret), nats.UserInfo("alice", "guess"),
			" --user alice --password '<NATSSE_EMBEDDED_PASSWORD>' pub events.demo hello"},
		{"token", []string{"NATSSE_EMBEDDED_TOKEN=" + secret},
			nats.Token(secret), nats.Token("guess"),
			" --token '<NATSSE_EMBEDDED_TOKEN>' pub events.demo hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// At debug level nats-server's own lines (failed logins among them) are logged too.
			p := startNatsse(t, append([]string{"NATSSE_EMBEDDED_LISTEN=0.0.0.0:0", "NATSSE_LOG_LEVEL=debug"}, tc.env...)...)

			for what, opts := range map[string][]nats.Option{"no credentials": nil, "wrong credentials": {tc.wrong}} {
				nc, err := nats.Connect(p.natsURL, opts...)
				if err == nil {
					nc.Close()
					t.Errorf("NATS client with %s: connected, want it refused", what)
				} else if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("NATS client with %s: %v, want %v", what, err, nats.ErrAuthorization)
				}
			}

			js := jetStream(t, p.natsURL, tc.right)
			s := openStream(t, "http://"+p.httpAddr+"/events/demo", nil)
			checkStreamHeaders(t, s.resp)
			s.expectRetry(t, 200)
			publish(t, js, "events.demo", 1)
			s.expectMessage(t, 1)

			if want := "nats --server " + p.natsURL + tc.publish; p.publish != want {
				t.Errorf("banner publish example:\n got %s\nwant %s", p.publish, want)
			}
			if out := p.stdout.String() + p.stderr.String(); strings.Contains(out, secret) {
				t.Errorf("the output holds the secret:\n%s", out)
			}
		})
	}
}

// TestBinaryRefusesOpenEmbeddedNATS: an embedded NATS listening beyond
// loopback without credentials, or with half of them, stops startup with one
// line naming the variable, before the store directory is created.
func TestBinaryRefusesOpenEmbeddedNATS(t *testing.T) {
	for _, tc := range []struct {
		name string // the variable the line must name
		env  []string
	}{
		{"NATSSE_EMBEDDED_LISTEN", []string{"NATSSE_EMBEDDED_LISTEN=0.0.0.0:0"}},
		{"NATSSE_EMBEDDED_LISTEN", []string{"NATSSE_EMBEDDED_LISTEN=:0"}},
		{"NATSSE_EMBEDDED_PASSWORD", []string{"NATSSE_EMBEDDED_LISTEN=0.0.0.0:0", "NATSSE_EMBEDDED_USER=alice"}},
	} {
		t.Run(strings.Join(tc.env, " "), func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "store")
			out, err := runRefused(t, append(tc.env, "NATSSE_STORE_DIR="+store))
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() <= 0 {
				t.Fatalf("got %v, want a non-zero exit\n%s", err, out)
			}
			if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tc.name) {
				t.Errorf("output %q, want one line naming %s", out, tc.name)
			}
			if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("NATSSE_STORE_DIR: %v, want it not created", err)
			}
		})
	}
}

// runRefused runs the binary with env, expecting it to refuse to start, and
// returns its output and exit error. Should it start serving instead, the test
// fails at once rather than waiting for an exit that never comes.
func runRefused(t *testing.T, env []string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), natsseBinary(t))
	cmd.Env = append(baseEnv(t), env...)
	out := newLogWatch()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start natsse: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		return out.String(), err
	case <-out.ready:
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("natsse started, want it refused:\n%s", out.String())
	case <-time.After(patience()):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("natsse neither exited nor got ready:\n%s", out.String())
	}
	return "", nil
}

// TestBinaryEmbeddedLoopbackNeedsNoCredentials: the default setup (loopback,
// no credentials) serves publishers that give none.
func TestBinaryEmbeddedLoopbackNeedsNoCredentials(t *testing.T) {
	p := startNatsse(t)
	if want := "nats --server " + p.natsURL + " pub events.demo hello"; p.publish != want {
		t.Errorf("banner publish example: got %q, want %q", p.publish, want)
	}
	js := jetStream(t, p.natsURL)
	s := openStream(t, "http://"+p.httpAddr+"/events/demo", http.Header{"Last-Event-ID": {"0"}})
	s.expectRetry(t, 200)
	publish(t, js, "events.demo", 1)
	s.expectMessage(t, 1)
}
