package examples_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/natsse/natsse/service/ssetest"
)

// TestGoExamples runs the Go publisher (every message of the test goes
// through it, and it must print the stored id) and the Go subscriber, which
// must print each event with its id and type, and resume across a natsse
// restart that refuses its reconnects for a while, without loss or repeat.
func TestGoExamples(t *testing.T) {
	checkResume(t, func(t *testing.T, url string) *subscriber {
		cmd := exec.CommandContext(t.Context(), build(t, "./subscriber"), "-last-event-id", "0", url)
		return startSubscriber(t, "the Go subscriber", cmd, parseJSONLines)
	}, goPublish)
}

// TestNodeExample runs node/subscribe.js (npm eventsource) through the same
// restart.
func TestNodeExample(t *testing.T) {
	node := needCommand(t, "node", "apt-get install -y nodejs npm && npm ci --prefix examples/node")
	if _, err := os.Stat("node/node_modules/eventsource/package.json"); err != nil {
		need(t, "examples/node/node_modules", "npm ci --prefix examples/node")
	}
	checkResume(t, func(t *testing.T, url string) *subscriber {
		cmd := exec.CommandContext(t.Context(), node, "subscribe.js", "--last-event-id", "0", "--types", "greeting", url)
		cmd.Dir = "node"
		return startSubscriber(t, "the Node subscriber", cmd, parseJSONLines)
	}, goPublish)
}

// TestPythonExample runs python/subscribe.py (standard library only)
// through the same restart.
func TestPythonExample(t *testing.T) {
	python := needCommand(t, "python3", "apt-get install -y python3")
	checkResume(t, func(t *testing.T, url string) *subscriber {
		cmd := exec.CommandContext(t.Context(), python, "python/subscribe.py", "--last-event-id", "0", url)
		return startSubscriber(t, "the Python subscriber", cmd, parseJSONLines)
	}, goPublish)
}

// TestShellExamples runs shell/subscribe.sh (curl) through the same
// restart, with every message published by shell/publish.sh (nats pub -J),
// which must print the stored sequence.
func TestShellExamples(t *testing.T) {
	needCommand(t, "bash", "apt-get install -y bash")
	needCommand(t, "curl", "apt-get install -y curl")
	needCommand(t, "nats", "go install github.com/nats-io/natscli/nats@v0.5.1")
	publish := func(t *testing.T, natsURL string, i int) {
		t.Helper()
		m := message(i)
		cmd := exec.CommandContext(t.Context(), "shell/publish.sh", "events.demo", m.Data, eventType(i))
		cmd.Env = append(os.Environ(), "NATS_URL="+natsURL, "NO_COLOR=1")
		cmd.WaitDelay = patience()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("publish.sh: %v\n%s", err, out)
		}
		if seq := natsPubSequence.FindSubmatch(out); seq == nil || string(seq[1]) != strconv.Itoa(i) {
			t.Fatalf("publish.sh printed %q, want the stored sequence %d", out, i)
		}
	}
	checkResume(t, func(t *testing.T, url string) *subscriber {
		cmd := exec.CommandContext(t.Context(), "shell/subscribe.sh", url, "0")
		return startSubscriber(t, "the shell subscriber", cmd, parseSSE)
	}, publish)
}

// parseSSE reads the event stream the shell subscriber prints, with the
// test's own SSE parser.
func parseSSE(r io.Reader, events chan<- event) {
	sr := ssetest.NewReader(r)
	for {
		ev, err := sr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				events <- event{Event: "unparsable output", Data: err.Error()}
			}
			return
		}
		if !ev.HasData {
			continue // the retry: of each connection
		}
		typ := ev.Event
		if typ == "" {
			typ = "message"
		}
		events <- event{ID: sr.LastEventID(), Event: typ, Data: ev.Data}
	}
}
