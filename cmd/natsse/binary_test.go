package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service/ssetest"
)

// TestBinarySubscribeResumeShutdown runs the real binary in embedded mode:
// publish through its NATS port, replay from Last-Event-ID 0, live delivery,
// a stream without position, then SIGTERM ends the streams and the process.
func TestBinarySubscribeResumeShutdown(t *testing.T) {
	p := startNatsse(t)
	js := jetStream(t, p.natsURL)

	for i := 1; i <= 3; i++ {
		publish(t, js, "events.demo", i)
	}

	replay := openStream(t, "http://"+p.httpAddr+"/events/demo", http.Header{"Last-Event-ID": {"0"}})
	checkStreamHeaders(t, replay.resp)
	replay.expectRetry(t, 200)
	for i := 1; i <= 3; i++ {
		replay.expectMessage(t, i)
	}
	publish(t, js, "events.demo", 4)
	replay.expectMessage(t, 4)

	// Without a position the subscription begins before the headers are
	// sent: a message published once Dial returned is delivered, and only it.
	live := openStream(t, "http://"+p.httpAddr+"/events/demo", nil)
	checkStreamHeaders(t, live.resp)
	live.expectRetry(t, 200)
	publish(t, js, "events.demo", 5)
	live.expectMessage(t, 5)
	replay.expectMessage(t, 5)

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	replay.expectEnd(t)
	live.expectEnd(t)
	p.expectExit(t, 0, 10*time.Second)
}

func TestBinaryVersion(t *testing.T) {
	out, err := runNatsse(t, nil, "--version")
	if err != nil {
		t.Fatalf("natsse --version: %v\n%s", err, out)
	}
	if strings.TrimSpace(out) == "" {
		t.Error("natsse --version printed nothing")
	}
}

func TestBinaryHelp(t *testing.T) {
	out, err := runNatsse(t, nil, "-h")
	if err != nil {
		t.Fatalf("natsse -h: %v\n%s", err, out)
	}
	if !strings.Contains(out, "NATSSE_HTTP_ADDR") {
		t.Errorf("natsse -h does not list NATSSE_HTTP_ADDR:\n%s", out)
	}
}

func TestBinaryBadSetting(t *testing.T) {
	out, err := runNatsse(t, []string{"NATSSE_HEARTBEAT=banana"})
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() <= 0 {
		t.Fatalf("NATSSE_HEARTBEAT=banana: got %v, want a non-zero exit\n%s", err, out)
	}
	named := false
	for line := range strings.Lines(out) {
		named = named || strings.Contains(line, "NATSSE_HEARTBEAT")
	}
	if !named {
		t.Errorf("no output line names NATSSE_HEARTBEAT:\n%s", out)
	}
}

// natsseBin is the binary built from this directory, once per test process.
var natsseBin struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// natsseBinary builds ./ into a temporary directory the first time it is
// called and returns the path. It is built without -race even when the tests
// run with it: the binary is the subject, and its own tests race-check the
// packages. (The directory outlives the test process: without a TestMain,
// which other test files of this package may need, nothing can remove it.)
func natsseBinary(t *testing.T) string {
	t.Helper()
	natsseBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "natsse-e2e-")
		if err != nil {
			natsseBin.err = err
			return
		}
		natsseBin.path = filepath.Join(dir, "natsse")
		cmd := exec.Command("go", "build", "-o", natsseBin.path, ".")
		natsseBin.out, natsseBin.err = cmd.CombinedOutput()
	})
	if natsseBin.err != nil {
		t.Fatalf("go build: %v\n%s", natsseBin.err, natsseBin.out)
	}
	return natsseBin.path
}

// baseEnv is the test process's environment without NATS and natsse
// settings (a NATS_URL of the developer's shell would switch natsse to
// connected mode), plus ports 0 and a fresh store so that nothing is shared.
func baseEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "NATSSE_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"NATSSE_HTTP_ADDR=127.0.0.1:0",
		"NATSSE_EMBEDDED_LISTEN=127.0.0.1:0",
		"NATSSE_STORE_DIR="+t.TempDir(),
		"NATSSE_LOG_FORMAT=json",
		"NATSSE_RETRY=200ms",
		// A test's reader starved of CPU on a busy machine is not a client
		// that stopped reading; tests of the write timeout set their own.
		"NATSSE_WRITE_TIMEOUT=1h",
	)
}

// runNatsse runs the binary to its end with extra environment and arguments
// and returns its combined output.
func runNatsse(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience())
	defer cancel()
	cmd := exec.CommandContext(ctx, natsseBinary(t), args...)
	cmd.Env = append(baseEnv(t), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("natsse %s did not exit:\n%s", strings.Join(args, " "), out)
	}
	return string(out), err
}

// natsse is a running binary.
type natsse struct {
	cmd      *exec.Cmd
	httpAddr string // host:port of the HTTP listener
	natsURL  string // the embedded NATS server's client URL
	publish  string // the ready line's publish example
	version  string // the ready line's version and revision
	revision string
	ready    readyLine // the whole ready line
	stdout   *logWatch
	stderr   *logWatch
	exited   chan struct{} // closed once the process was waited for
	waitErr  error
}

// startNatsse starts the binary in embedded mode with baseEnv plus env and
// waits until it logs "natsse ready". The process is killed when the test
// ends, and its output is logged if the test failed.
func startNatsse(t *testing.T, env ...string) *natsse {
	t.Helper()
	return startNatsseLimited(t, 0, env...)
}

// startNatsseLimited is startNatsse with the open-file limit (soft and
// hard) set to nofile, as `ulimit -n` does; 0 keeps the test's.
func startNatsseLimited(t *testing.T, nofile int, env ...string) *natsse {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), natsseBinary(t))
	if nofile > 0 {
		cmd = exec.CommandContext(t.Context(), "sh", "-c", `ulimit -n "$1" && exec "$0"`, natsseBinary(t), strconv.Itoa(nofile))
	}
	p := &natsse{
		cmd:    cmd,
		stdout: newLogWatch(),
		stderr: newLogWatch(),
		exited: make(chan struct{}),
	}
	p.cmd.Env = append(baseEnv(t), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start natsse: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	// t.Context is cancelled before cleanups run, which kills the process
	// if it is still running; this waits for it.
	t.Cleanup(func() {
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			t.Errorf("natsse did not exit after it was killed")
		}
		if t.Failed() {
			t.Logf("natsse stdout:\n%s\nnatsse stderr:\n%s", p.stdout.String(), p.stderr.String())
		}
	})

	select {
	case ready := <-p.stderr.ready:
		p.httpAddr, p.natsURL, p.publish = ready.HTTPAddr, ready.NATSURL, ready.Publish
		p.ready = ready
		p.version, p.revision = ready.Version, ready.Revision
	case <-p.exited:
		t.Fatalf("natsse exited before it was ready: %v", p.waitErr)
	case <-time.After(patience()):
		t.Fatal(`natsse did not log "natsse ready"`)
	}
	if p.httpAddr == "" || strings.HasSuffix(p.httpAddr, ":0") || !strings.HasPrefix(p.natsURL, "nats://") {
		t.Fatalf("ready line: got http_addr %q nats_url %q, want the bound HTTP address and a nats:// URL", p.httpAddr, p.natsURL)
	}
	if strings.HasSuffix(p.natsURL, ":4222") {
		// nats-server reads Port 0 as "the default, 4222"; -1 is a random port.
		t.Errorf("NATSSE_EMBEDDED_LISTEN=127.0.0.1:0: got nats_url %q, want a random port, not the default", p.natsURL)
	}
	return p
}

// expectExit waits for the process to exit with code within d.
func (p *natsse) expectExit(t *testing.T, code int, d time.Duration) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("natsse did not exit within %v", d)
	}
	if got := p.cmd.ProcessState.ExitCode(); got != code {
		t.Errorf("exit code: got %d (%v), want %d", got, p.waitErr, code)
	}
}

// readyLine holds the attributes of the "natsse ready" log line.
type readyLine struct {
	Msg      string `json:"msg"`
	HTTPAddr string `json:"http_addr"`
	NATSURL  string `json:"nats_url"`
	Publish  string `json:"publish"`
	// The banner's other hints: the page, HTTP publishing, subscribing.
	Page        string `json:"page"`
	PublishHTTP string `json:"publish_http"`
	Subscribe   string `json:"subscribe"`
	Version     string `json:"version"`
	Revision    string `json:"revision"`
}

// logWatch keeps the output of the process and reports the first JSON log
// line with msg "natsse ready".
type logWatch struct {
	ready chan readyLine // receives the ready line once

	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	seen    bool
}

func newLogWatch() *logWatch { return &logWatch{ready: make(chan readyLine, 1)} }

func (w *logWatch) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(b)
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		var l readyLine
		if !w.seen && json.Unmarshal(w.partial[:i], &l) == nil && (l.Msg == "natsse ready" || strings.HasPrefix(l.Msg, "natsse listening, not ready yet")) {
			w.seen = true
			w.ready <- l
		}
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}

func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// jetStream connects to url with opts for publishing; the connection closes
// when the test ends.
func jetStream(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

// publish publishes payload(i) to subject and checks that it was stored as
// sequence i of the stream EVENTS.
func publish(t *testing.T, js jetstream.JetStream, subject string, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience())
	defer cancel()
	ack, err := js.Publish(ctx, subject, []byte(payload(i)))
	if err != nil {
		t.Fatalf("publish %d to %s: %v", i, subject, err)
	}
	if ack.Stream != "EVENTS" || ack.Sequence != uint64(i) {
		t.Fatalf("publish %d: stored in %s as %d, want EVENTS %d", i, ack.Stream, ack.Sequence, i)
	}
}

func payload(i int) string { return "m" + strconv.Itoa(i) }

// checkStreamHeaders checks the status and headers of docs/protocol.md, "The stream".
func checkStreamHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: status %d, want 200", resp.Request.URL, resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: header %s: got %q, want %q", resp.Request.URL, k, got, want)
		}
	}
	if got := resp.Header.Get("Connection"); resp.ProtoMajor == 1 && resp.ProtoMinor == 1 && got != "keep-alive" {
		t.Errorf("%s: header Connection on %s: got %q, want keep-alive", resp.Request.URL, resp.Proto, got)
	}
}

// stream is an open SSE response whose blocks a goroutine reads into events
// until the stream ends; the last value sent carries the error that ended it.
type stream struct {
	resp   *http.Response
	events chan streamEvent
}

type streamEvent struct {
	ev  ssetest.Event
	err error
}

// openStream opens url with header; the response is closed, and its reader
// goroutine has returned, when the test ends.
func openStream(t *testing.T, url string, header http.Header) *stream {
	t.Helper()
	return openStreamWith(t, http.DefaultClient, url, header)
}

// openStreamWith is openStream through client.
func openStreamWith(t *testing.T, client *http.Client, url string, header http.Header) *stream {
	t.Helper()
	resp, r, err := ssetest.DialWith(t.Context(), client, url, header)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return readStream(t, resp, r)
}

// readStream reads the blocks of an open response in a goroutine.
func readStream(t *testing.T, resp *http.Response, r *ssetest.Reader) *stream {
	s := &stream{resp: resp, events: make(chan streamEvent, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := r.Next()
			s.events <- streamEvent{ev, err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		<-done
	})
	return s
}

// next returns the next block, failing the test if none comes within
// patience.
func (s *stream) next(t *testing.T) (ssetest.Event, error) {
	t.Helper()
	select {
	case e := <-s.events:
		return e.ev, e.err
	case <-time.After(patience()):
		t.Fatalf("%s: nothing received", s.resp.Request.URL)
		return ssetest.Event{}, nil
	}
}

// expectRetry checks that the next block is exactly "retry: ms".
func (s *stream) expectRetry(t *testing.T, ms int) {
	t.Helper()
	ev, err := s.next(t)
	if err != nil {
		t.Fatalf("%s: want retry: %d, got %v", s.resp.Request.URL, ms, err)
	}
	if want := (ssetest.Event{Retry: ms}); !reflect.DeepEqual(ev, want) {
		t.Errorf("%s: first block: got %+v, want only retry: %d", s.resp.Request.URL, ev, ms)
	}
}

// expectMessage checks that the next block is message i: id i, data m<i>.
func (s *stream) expectMessage(t *testing.T, i int) {
	t.Helper()
	ev, err := s.next(t)
	if err != nil {
		t.Fatalf("%s: want id %d, got %v", s.resp.Request.URL, i, err)
	}
	want := ssetest.Event{ID: strconv.Itoa(i), HasID: true, Data: payload(i), HasData: true, Retry: -1}
	if ev.ID != want.ID || !ev.HasID || ev.Data != want.Data || !ev.HasData || ev.Event != "" || ev.Retry != -1 {
		t.Errorf("%s: got %+v, want %+v", s.resp.Request.URL, ev, want)
	}
}

// expectEnd checks that the stream ends cleanly (io.EOF, not in the middle of
// a block) within 10 s, without another message.
func (s *stream) expectEnd(t *testing.T) {
	t.Helper()
	for {
		ev, err := s.next(t)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Errorf("%s: the stream ended with %v, want io.EOF after a complete block", s.resp.Request.URL, err)
			return
		}
		if ev.HasData {
			t.Errorf("%s: got %+v, want the end of the stream", s.resp.Request.URL, ev)
		}
	}
}
