package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The processes the proxy tests run: the natsse binary, built from this
// repository, and the proxies. Everything listens on loopback ports the
// kernel picks, keeps its files in the test's temporary directories, and is
// killed and waited for when the test ends.

func TestMain(m *testing.M) {
	code := m.Run()
	if natsseBin.dir != "" {
		os.RemoveAll(natsseBin.dir)
	}
	os.Exit(code)
}

// natsseBin is ../cmd/natsse built once per test process, without -race:
// the binary is the subject here, its own tests race-check it.
var natsseBin struct {
	once      sync.Once
	dir, path string
	err       error
	out       []byte
}

func natsseBinary(t *testing.T) string {
	t.Helper()
	natsseBin.once.Do(func() {
		natsseBin.dir, natsseBin.err = os.MkdirTemp("", "natsse-deploy-")
		if natsseBin.err != nil {
			return
		}
		natsseBin.path = filepath.Join(natsseBin.dir, "natsse")
		cmd := exec.Command("go", "build", "-o", natsseBin.path, "./cmd/natsse")
		cmd.Dir = ".."
		natsseBin.out, natsseBin.err = cmd.CombinedOutput()
	})
	if natsseBin.err != nil {
		t.Fatalf("go build ./cmd/natsse: %v\n%s", natsseBin.err, natsseBin.out)
	}
	return natsseBin.path
}

// patience is the context every wait of a test is bounded by: go test's
// deadline less time to clean up (5 minutes without one), never a guess at
// how long something takes.
func patience(t *testing.T) context.Context {
	d, ok := t.Deadline()
	if !ok {
		d = time.Now().Add(5 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(t.Context(), d.Add(-15*time.Second))
	t.Cleanup(cancel)
	return ctx
}

// proc is a process of the test, its output kept for the test's log.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *lineLog
	exited chan struct{}
	err    error
}

// start starts cmd, which must have been made with t.Context(): it is killed
// when the test ends (and if the test process dies: Pdeathsig), and waited for
// before the test's temporary directories go.
// out, when not nil, is where its output goes (with watchers already set).
func start(t *testing.T, name string, cmd *exec.Cmd, out *lineLog) *proc {
	t.Helper()
	if out == nil {
		out = newLineLog()
	}
	p := &proc{name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		<-p.exited // t.Context() was cancelled: the process was killed
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// lineLog keeps a process's output and hands each line to watchers.
type lineLog struct {
	mu       sync.Mutex
	all      bytes.Buffer
	partial  []byte
	watchers []func(line []byte) bool
}

func newLineLog() *lineLog { return &lineLog{} }

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(b)
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := l.partial[:i]
		kept := l.watchers[:0]
		for _, w := range l.watchers {
			if !w(line) {
				kept = append(kept, w)
			}
		}
		l.watchers = kept
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

// watch calls w with every line from now on until it returns true.
func (l *lineLog) watch(w func(line []byte) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watchers = append(l.watchers, w)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// natsse is a running natsse binary.
type natsse struct {
	*proc
	httpAddr string // host:port it serves HTTP on
	natsURL  string // its embedded NATS server (embedded mode)
	basePath string
}

// startNatsse starts natsse in embedded mode on loopback ports 0 with a
// fresh store, plus env, and waits for its ready line ("natsse ready", or
// "natsse listening, not ready yet" for one that cannot serve yet).
func startNatsse(t *testing.T, ctx context.Context, env ...string) *natsse {
	t.Helper()
	var base []string
	for _, kv := range os.Environ() {
		// A NATS_URL of the developer's shell would switch to connected mode.
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "NATSSE_") {
			base = append(base, kv)
		}
	}
	base = append(base,
		"NATSSE_HTTP_ADDR=127.0.0.1:0",
		"NATSSE_EMBEDDED_LISTEN=127.0.0.1:0",
		"NATSSE_STORE_DIR="+t.TempDir(),
		"NATSSE_LOG_FORMAT=json",
		// A test's reader starved of CPU on a busy machine is not a client
		// that stopped reading.
		"NATSSE_WRITE_TIMEOUT=1h",
	)
	cmd := exec.CommandContext(t.Context(), natsseBinary(t))
	cmd.Env = append(base, env...)
	type ready struct {
		Msg      string `json:"msg"`
		HTTPAddr string `json:"http_addr"`
		NATSURL  string `json:"nats_url"`
	}
	readyc := make(chan ready, 1)
	out := newLineLog()
	out.watch(func(line []byte) bool {
		var r ready
		if json.Unmarshal(line, &r) != nil || (r.Msg != "natsse ready" && !strings.HasPrefix(r.Msg, "natsse listening, not ready yet")) {
			return false
		}
		readyc <- r
		return true
	})
	p := &natsse{proc: start(t, "natsse", cmd, out)}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "NATSSE_BASE_PATH="); ok {
			p.basePath = v
		}
	}
	select {
	case r := <-readyc:
		p.httpAddr, p.natsURL = r.HTTPAddr, r.NATSURL
	case <-p.exited:
		t.Fatalf("natsse exited before it was ready: %v\n%s", p.err, p.out.String())
	case <-ctx.Done():
		t.Fatalf("natsse did not log its ready line\n%s", p.out.String())
	}
	if _, _, err := net.SplitHostPort(p.httpAddr); err != nil || strings.HasSuffix(p.httpAddr, ":0") {
		t.Fatalf("natsse's ready line names http_addr %q", p.httpAddr)
	}
	return p
}

// metric reads one unlabelled series from natsse's /metrics, straight from
// natsse.
func (n *natsse) metric(t *testing.T, ctx context.Context, name string) float64 {
	t.Helper()
	body, status := get(t, ctx, http.DefaultClient, "http://"+n.httpAddr+n.basePath+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("natsse /metrics: %d", status)
	}
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("natsse /metrics has no %s", name)
	return 0
}

// get GETs url and returns the body and status; a transport error fails t.
func get(t *testing.T, ctx context.Context, c *http.Client, url string) (string, int) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b), resp.StatusCode
}

// freePort is a loopback port nothing listens on now, for a proxy whose
// configuration must name its port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// event is one block of an SSE stream; Retry is -1 without a retry field.
type event struct {
	ID    string
	HasID bool
	Data  string
	Retry int
}

// sse is an open stream whose blocks a goroutine reads until it ends; the
// last value sent carries the error that ended it.
type sse struct {
	url    string
	resp   *http.Response
	events chan sseBlock
}

type sseBlock struct {
	ev  event
	err error
}

// openSSE GETs url with header through c. The response is closed, and its
// reader has returned, when the test ends.
func openSSE(t *testing.T, ctx context.Context, c *http.Client, url string, header http.Header) *sse {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	s := &sse{url: url, resp: resp, events: make(chan sseBlock, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(resp.Body)
		for {
			ev, err := readBlock(r)
			s.events <- sseBlock{ev, err}
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

// readBlock reads the next block (lines up to an empty one) of an SSE body,
// skipping comments (natsse's heartbeats) and empty blocks.
func readBlock(r *bufio.Reader) (event, error) {
	ev := event{Retry: -1}
	var data []string
	fields := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF && (line != "" || fields > 0) {
				err = io.ErrUnexpectedEOF
			}
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if fields == 0 {
				continue
			}
			ev.Data = strings.Join(data, "\n")
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		fields++
		switch name {
		case "id":
			ev.ID, ev.HasID = value, true
		case "data":
			data = append(data, value)
		case "retry":
			n, err := strconv.Atoi(value)
			if err != nil {
				return ev, fmt.Errorf("retry: %q", value)
			}
			ev.Retry = n
		}
	}
}

// next is the stream's next block; nothing before ctx ends fails t.
func (s *sse) next(t *testing.T, ctx context.Context) (event, error) {
	t.Helper()
	select {
	case b := <-s.events:
		return b.ev, b.err
	case <-ctx.Done():
		t.Fatalf("%s: nothing received (a proxy buffering the stream never passes it on)", s.url)
		return event{}, nil
	}
}

// expectRetry: the first block, natsse's retry: line, came through.
func (s *sse) expectRetry(t *testing.T, ctx context.Context) {
	t.Helper()
	ev, err := s.next(t, ctx)
	if err != nil || ev.Retry < 0 || ev.HasID || ev.Data != "" {
		t.Fatalf("%s: first block %+v (%v), want natsse's retry: line", s.url, ev, err)
	}
}

// expectEvent: the next block is event i as publish sends it.
func (s *sse) expectEvent(t *testing.T, ctx context.Context, i int) {
	t.Helper()
	ev, err := s.next(t, ctx)
	if err != nil {
		t.Fatalf("%s: want event %d, got %v", s.url, i, err)
	}
	if ev.ID != strconv.Itoa(i) || !ev.HasID || ev.Data != payload(i) {
		t.Fatalf("%s: got %+v, want id %d data %s", s.url, ev, i, payload(i))
	}
}

// expectSoftRefusal: natsse's soft refusal (a retry: line, then the end of
// the response), not a stream.
func (s *sse) expectSoftRefusal(t *testing.T, ctx context.Context) {
	t.Helper()
	s.expectRetry(t, ctx)
	if ev, err := s.next(t, ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("%s: after the retry: line got %+v (%v), want the end of a soft refusal", s.url, ev, err)
	}
}

func payload(i int) string { return "m" + strconv.Itoa(i) }

// connsTo lists the local ports of the TCP connections the process pid holds
// to port on this machine, from /proc: how a test sees whether a proxy keeps
// its upstream connections alive.
func connsTo(t *testing.T, pid, port int) map[int]bool {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("read the sockets of pid %d: %v", pid, err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "01" || !inodes[f[9]] { // 01: ESTABLISHED
				continue
			}
			_, rport, _ := strings.Cut(f[2], ":")
			_, lport, _ := strings.Cut(f[1], ":")
			r, err1 := strconv.ParseInt(rport, 16, 32)
			l, err2 := strconv.ParseInt(lport, 16, 32)
			if err1 == nil && err2 == nil && int(r) == port {
				ports[int(l)] = true
			}
		}
	}
	return ports
}
