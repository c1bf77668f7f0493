package examples_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natsse/natsse/service/ssetest"
)

// patience bounds every wait for something an example must do
// (ssetest.Patience).
var patience = ssetest.Patience

// binDir holds the binaries built for the tests; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "natsse-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// builds holds one build per package, shared by the tests.
var builds sync.Map // package path -> *built

type built struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

// build builds the main package pkg (a path relative to this directory)
// once and returns the binary's path. It is built without -race even when
// the tests run with it: the programs are the subject, not the test.
func build(t *testing.T, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &built{})
	b := v.(*built)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, filepath.Base(pkg))
		b.out, b.err = exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, b.err, b.out)
	}
	return b.path
}

// need skips the test with the command that installs what is missing, or
// fails it when NATSSE_EXAMPLES_REQUIRED=1 (as in CI, which installs it).
func need(t *testing.T, missing, install string) {
	t.Helper()
	if os.Getenv("NATSSE_EXAMPLES_REQUIRED") == "1" {
		t.Fatalf("%s missing and NATSSE_EXAMPLES_REQUIRED=1: %s", missing, install)
	}
	t.Skipf("%s missing: %s", missing, install)
}

// needCommand returns the path of the command name, or skips (see need).
func needCommand(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		need(t, name, install)
	}
	return path
}

// natsse is a running natsse binary in embedded mode.
type natsse struct {
	cmd      *exec.Cmd
	httpAddr string // host:port of the HTTP listener
	natsURL  string // the embedded NATS server's client URL
	log      *syncBuffer
	exited   chan struct{}
}

// startNatsse starts natsse in embedded mode on random ports with its
// JetStream store in store (so a second one on the same store continues the
// stream), plus env, and waits until it logs "natsse ready".
func startNatsse(t *testing.T, store string, env ...string) *natsse {
	t.Helper()
	var base []string
	for _, kv := range os.Environ() {
		// A NATS_URL in the developer's shell would switch to connected mode.
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "NATSSE_") {
			base = append(base, kv)
		}
	}
	p := &natsse{
		cmd:    exec.CommandContext(t.Context(), build(t, "../cmd/natsse")),
		log:    &syncBuffer{},
		exited: make(chan struct{}),
	}
	p.cmd.Env = append(append(base,
		"NATSSE_HTTP_ADDR=127.0.0.1:0",
		"NATSSE_EMBEDDED_LISTEN=127.0.0.1:0",
		"NATSSE_STORE_DIR="+store,
		"NATSSE_LOG_FORMAT=json",
		"NATSSE_RETRY=200ms",
	), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.log
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start natsse: %v", err)
	}
	ready := make(chan readyLine, 1)
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stderr, p.log))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l readyLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "natsse ready" {
				ready <- l
			}
		}
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		<-p.exited // t.Context is cancelled before cleanups run: the process was killed
		if t.Failed() {
			t.Logf("natsse output:\n%s", p.log)
		}
	})
	select {
	case l := <-ready:
		p.httpAddr, p.natsURL = l.HTTPAddr, l.NATSURL
	case <-p.exited:
		t.Fatalf("natsse exited before it was ready:\n%s", p.log)
	case <-time.After(patience()):
		t.Fatalf(`natsse did not log "natsse ready":\n%s`, p.log)
	}
	return p
}

// readyLine holds the attributes of natsse's "natsse ready" log line.
type readyLine struct {
	Msg      string `json:"msg"`
	HTTPAddr string `json:"http_addr"`
	NATSURL  string `json:"nats_url"`
}

// stop ends natsse as an orchestrator does (SIGTERM) and waits until it has
// exited, so its store can be opened by another.
func (p *natsse) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM natsse: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(patience()):
		t.Fatal("natsse did not exit after SIGTERM")
	}
}

// syncBuffer is a bytes.Buffer for several writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// front stands where a load balancer or the address of a single natsse
// would: clients connect to it, and it forwards each connection to the
// natsse of the moment. While there is none it resets every connection at
// once, as a machine whose natsse is restarting does, which is the case
// where Firefox's EventSource gives up for good.
type front struct {
	ln      net.Listener
	refused chan struct{} // one value per refused connection, dropped when full

	mu     sync.Mutex
	target string // natsse's host:port; "" refuses
}

func newFront(t *testing.T, target string) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{ln: ln, target: target, refused: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait() // the forwarded connections end with natsse, killed before
	})
	return f
}

// url is the front's address as an http URL with path.
func (f *front) url(path string) string { return "http://" + f.ln.Addr().String() + path }

func (f *front) serve(c net.Conn) {
	f.mu.Lock()
	target := f.target
	f.mu.Unlock()
	var up net.Conn
	var err error
	if target != "" {
		up, err = net.Dial("tcp", target)
	}
	if target == "" || err != nil {
		c.(*net.TCPConn).SetLinger(0) // close with a reset, not a clean end
		c.Close()
		select {
		case f.refused <- struct{}{}:
		default:
		}
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done // either side ended: end both
	c.Close()
	up.Close()
	<-done
}

// refuse makes the front reset new connections.
func (f *front) refuse() { f.forward("") }

// forward sends new connections to target.
func (f *front) forward(target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target = target
}

// waitRefused waits until the front has refused a connection since the
// last call: a client tried to reconnect while natsse was away.
func (f *front) waitRefused(t *testing.T, who string) {
	t.Helper()
	select {
	case <-f.refused:
	case <-time.After(patience()):
		t.Fatalf("%s did not try to reconnect while natsse was down", who)
	}
}

// event is an event as the subscriber examples print it.
type event struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	Data  string `json:"data"`
}

func (e event) String() string { return fmt.Sprintf("%s %s %q", e.ID, e.Event, e.Data) }

// message i of the tests: "m<i>", every even one with the SSE-Event type
// greeting, the third on two lines (natsse sends two data: lines).
func message(i int) event {
	e := event{ID: strconv.Itoa(i), Event: "message", Data: "m" + strconv.Itoa(i)}
	if i%2 == 0 {
		e.Event = "greeting"
	}
	if i == 3 {
		e.Data += "\nsecond line"
	}
	return e
}

// eventType is the SSE-Event header for message i, "" for none.
func eventType(i int) string {
	if e := message(i).Event; e != "message" {
		return e
	}
	return ""
}

// goPublish publishes message i to events.demo with the Go publisher example
// and checks that it says it was stored as id i.
func goPublish(t *testing.T, natsURL string, i int) {
	t.Helper()
	m := message(i)
	cmd := exec.CommandContext(t.Context(), build(t, "./publisher"), "-subject", "events.demo", "-event", eventType(i), m.Data)
	cmd.Env = append(os.Environ(), "NATS_URL="+natsURL)
	cmd.WaitDelay = patience()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("publisher: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("published to events.demo: stream EVENTS, id %d\n", i); string(out) != want {
		t.Fatalf("publisher printed %q, want %q", out, want)
	}
}

// subscriber is a running subscriber example whose output is parsed into
// events.
type subscriber struct {
	name   string
	events chan event
	stderr *syncBuffer
	next   int // how many events were checked
}

// startSubscriber starts cmd (in its own process group, so that a shell
// script's curl ends with it) and reads its standard output with parse.
func startSubscriber(t *testing.T, name string, cmd *exec.Cmd, parse func(io.Reader, chan<- event)) *subscriber {
	t.Helper()
	s := &subscriber{name: name, events: make(chan event, 100), stderr: &syncBuffer{}}
	cmd.Stderr = s.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		parse(stdout, s.events)
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(s.events)
	}()
	t.Cleanup(func() {
		<-done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, s.stderr)
		}
	})
	return s
}

// parseJSONLines reads the JSON lines the Go, Node and Python subscribers
// print.
func parseJSONLines(r io.Reader, events chan<- event) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			e = event{Event: "unparsable line", Data: sc.Text()}
		}
		events <- e
	}
}

// expect checks that the next events the subscriber prints are messages
// first to last, each once, in order; it fails at the first one that
// differs, so a lost or repeated event fails at once.
func (s *subscriber) expect(t *testing.T, first, last int) {
	t.Helper()
	for i := first; i <= last; i++ {
		want := message(i)
		select {
		case got, ok := <-s.events:
			if !ok {
				t.Fatalf("%s exited before event %d", s.name, i)
			}
			if got != want {
				t.Fatalf("%s: event %d of the test: got %v, want %v", s.name, s.next+1, got, want)
			}
			s.next++
		case <-time.After(patience()):
			t.Fatalf("%s: event %v did not arrive", s.name, want)
		}
	}
}

// checkResume runs the scenario every subscriber example must pass. The
// subscriber starts from the beginning (last id 0) through a front, gets
// messages 1-3; natsse stops while the front resets the subscriber's
// reconnects; a new natsse starts on the same store, messages 4-6 are
// published while the front still refuses (so the subscriber can only get
// them by resuming), then the front forwards again and the subscriber must
// print 4-6 and the live 7, each once.
func checkResume(t *testing.T, start func(t *testing.T, url string) *subscriber, publish func(t *testing.T, natsURL string, i int)) {
	store := t.TempDir()
	a := startNatsse(t, store)
	f := newFront(t, a.httpAddr)
	s := start(t, f.url("/events/demo"))
	for i := 1; i <= 3; i++ {
		publish(t, a.natsURL, i)
	}
	s.expect(t, 1, 3)

	f.refuse()
	a.stop(t)
	f.waitRefused(t, s.name)
	b := startNatsse(t, store)
	for i := 4; i <= 6; i++ {
		publish(t, b.natsURL, i)
	}
	f.forward(b.httpAddr)
	s.expect(t, 4, 6)
	publish(t, b.natsURL, 7)
	s.expect(t, 7, 7)
}

// natsPubSequence matches what `nats pub -J` prints about the stored message.
var natsPubSequence = regexp.MustCompile(`Sequence: (\d+)`)
