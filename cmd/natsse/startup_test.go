package main_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/embedded"
)

// startNATSServer runs a nats-server with JetStream on a free port for
// natsse to connect to, with the streams given already created.
func startNATSServer(t *testing.T, streams ...jetstream.StreamConfig) (string, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience())
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: "upstream"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	js := jetStream(t, srv.ClientURL())
	for _, sc := range streams {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatalf("create stream %s: %v", sc.Name, err)
		}
	}
	return srv.ClientURL(), js
}

// expectRefusal checks that natsse exited with code 1 after one line
// "natsse: <name>: ..." that holds every one of want.
func expectRefusal(t *testing.T, out string, err error, name string, want ...string) {
	t.Helper()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("got %v, want exit code 1\n%s", err, out)
	}
	var lines []string
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "natsse: ") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "natsse: "+name+": ") {
		t.Fatalf("want one line natsse: %s: ..., got %q\n%s", name, lines, out)
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("the line does not say %q: %s", w, lines[0])
		}
	}
}

// TestBinaryRefusesStreamItCannotCreate: a stream JetStream refuses to
// create stops natsse with one line naming the setting and JetStream's
// reason, instead of "waiting for the stream" forever: subjects another
// stream holds, and more storage than there is.
func TestBinaryRefusesStreamItCannotCreate(t *testing.T) {
	url, _ := startNATSServer(t, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"events.>"}})
	out, err := runNatsse(t, []string{"NATS_URL=" + url, "NATSSE_ANONYMOUS=true", "NATSSE_STREAM_CREATE=true"})
	expectRefusal(t, out, err, "NATSSE_STREAM_SUBJECTS", "overlap", "events.>")

	out, err = runNatsse(t, []string{"NATSSE_STREAM_MAX_BYTES=1000TiB"})
	expectRefusal(t, out, err, "NATSSE_STREAM_MAX_BYTES", "insufficient", "lower NATSSE_STREAM_MAX_BYTES")
}

// TestBinaryRefusesSubjectsOutsideTheStream: in connected mode, served
// subjects outside an existing stream's subjects stop natsse at its first
// look at the stream, with one line naming NATSSE_SUBJECTS and the
// stream's subjects.
func TestBinaryRefusesSubjectsOutsideTheStream(t *testing.T) {
	url, _ := startNATSServer(t, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
	out, err := runNatsse(t, []string{"NATS_URL=" + url, "NATSSE_ANONYMOUS=true", "NATSSE_SUBJECTS=events.a,orders.>"})
	expectRefusal(t, out, err, "NATSSE_SUBJECTS", `"orders.>"`, "(events.>)")
}

// TestBinaryMissingStreamCommand: connected mode without the stream (and
// without NATSSE_STREAM_CREATE) waits, /readyz 503, and says once, however
// often it looks again, the nats command that creates the stream; created
// as it says, the stream is served.
func TestBinaryMissingStreamCommand(t *testing.T) {
	url, js := startNATSServer(t)
	// Each look is a debug line; the command is a warning, once.
	p := startNatsse(t, "NATS_URL="+url, "NATSSE_ANONYMOUS=true", "NATSSE_SUBJECTS=orders.>", "NATSSE_STREAM=ORDERS", "NATSSE_STREAM_MAX_AGE=1h", "NATSSE_LOG_LEVEL=debug")
	deadline := time.Now().Add(patience())
	for strings.Count(p.stderr.String(), `"msg":"waiting for the stream"`) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("natsse did not look for the stream 3 times:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := `"command":"nats stream add ORDERS --subjects 'orders.>' --storage file --replicas 1 --max-age 1h --max-bytes 1073741824 --max-consumers 20000 --defaults"`
	if n := strings.Count(p.stderr.String(), want); n != 1 {
		t.Errorf("the log has %d lines with %s, want 1", n, want)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage,
		Replicas: 1, MaxAge: time.Hour, MaxBytes: 1 << 30, MaxConsumers: 20000}); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(p.stderr.String(), `"msg":"serving stream"`) {
		if time.Now().After(deadline) {
			t.Fatalf("natsse did not serve the stream once it was created:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBinaryWarnsUnknownSettings: each NATSSE_* variable natsse does not
// know is warned about once, with the closest known one when there is one.
func TestBinaryWarnsUnknownSettings(t *testing.T) {
	p := startNatsse(t, "NATSSE_CORS_ORIGIN=https://app.example.com", "NATSSE_NO_SUCH_THING_AT_ALL=1")
	logs := p.stderr.String()
	for _, want := range []string{
		`"msg":"unknown setting NATSSE_CORS_ORIGIN is ignored: did you mean NATSSE_CORS_ORIGINS?"`,
		`"msg":"unknown setting NATSSE_NO_SUCH_THING_AT_ALL is ignored (natsse -h lists the settings)"`,
	} {
		if n := strings.Count(logs, want); n != 1 {
			t.Errorf("%d lines with %s, want 1\n%s", n, want, logs)
		}
	}
	if n := strings.Count(logs, "unknown setting"); n != 2 {
		t.Errorf("%d unknown-setting warnings, want 2\n%s", n, logs)
	}
}
