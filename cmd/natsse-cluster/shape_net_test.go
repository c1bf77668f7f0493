package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service"
)

// testBin holds the binaries, built once per test process.
var testBin struct {
	once sync.Once
	dir  string
	bin  binaries
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testBin.dir != "" {
		os.RemoveAll(testBin.dir)
	}
	os.Exit(code)
}

// buildOnce builds nats-server (go.mod's version) and natsse, without
// -race even when the tests run with it: the binaries are the subjects.
func buildOnce(t *testing.T) binaries {
	t.Helper()
	testBin.once.Do(func() {
		testBin.dir, testBin.err = os.MkdirTemp("", "natsse-cluster-")
		if testBin.err == nil {
			testBin.bin, testBin.err = build(testBin.dir)
		}
	})
	if testBin.err != nil {
		t.Fatal(testBin.err)
	}
	return testBin.bin
}

// testShape is compose.yaml's shape running in namespaces of the test's own.
type testShape struct {
	t     *testing.T
	net   *testNet
	procs map[string]*hostProc
	order []string
	hc    *http.Client // in the client namespace
	nc    *nats.Conn   // the publisher's
	js    jetstream.JetStream
}

// startShape starts every process of compose.yaml's shape, each in its own
// namespace, with extra environment for some (a mutation check), and waits
// until all are healthy.
func startShape(t *testing.T, extraEnv map[string][]string) *testShape {
	t.Helper()
	requireNetns(t)
	bin := buildOnce(t)
	c, err := readCompose("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	procs, err := shape(c, namespaces{}, bin, state)
	if err != nil {
		t.Fatal(err)
	}
	s := &testShape{t: t, net: newTestNet(t), procs: map[string]*hostProc{}}
	s.hc = s.net.httpClient(2 * time.Second)
	t.Cleanup(func() {
		for _, name := range slices.Backward(s.order) {
			s.procs[name].signal(t, syscall.SIGKILL)
		}
		if t.Failed() {
			for _, name := range s.order {
				t.Logf("---- %s log:\n%s", name, s.procs[name].logTail(40))
			}
		}
	})
	for _, p := range procs {
		p.env = append(p.env, extraEnv[p.name]...)
		hp := &hostProc{proc: p, ns: s.net.ns(p.name), logPath: filepath.Join(state, p.name+".log")}
		for _, dep := range p.after {
			s.awaitHealthy(dep, s.procs[dep].health)
		}
		hp.start(t)
		s.procs[p.name] = hp
		s.order = append(s.order, p.name)
	}
	for _, name := range s.order {
		s.awaitHealthy(name, s.procs[name].health)
	}
	return s
}

// awaitHealthy waits until url answers 200 from the client namespace.
func (s *testShape) awaitHealthy(name, url string) {
	s.t.Helper()
	if url == "" {
		return
	}
	deadline := time.Now().Add(patience())
	for {
		if resp, err := s.hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !s.procs[name].running() {
			s.t.Fatalf("%s exited:\n%s", name, s.procs[name].logTail(20))
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: %s not 200 within %v:\n%s", name, url, patience(), s.procs[name].logTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// natsNodes are the nats-server services, in order.
func (s *testShape) natsNodes() []string {
	var out []string
	for _, name := range s.order {
		if s.procs[name].kind == "nats" {
			out = append(out, name)
		}
	}
	return out
}

// connectPublisher connects the test's publisher to the nats nodes but
// those in avoid, from the client namespace.
func (s *testShape) connectPublisher(avoid ...string) {
	s.t.Helper()
	var urls []string
	for _, name := range s.natsNodes() {
		if !slices.Contains(avoid, name) {
			urls = append(urls, "nats://"+namespaces{}.probe(name, natsClientPort))
		}
	}
	opts := append([]nats.Option{
		nats.SetCustomDialer(natsDialer(s.net.dialer("client"))),
		nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond),
		nats.IgnoreDiscoveredServers(),
	}, service.ConnOptions(service.DefaultNATSPing)...)
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(nc.Close)
	s.nc = nc
	s.js, _ = jetstream.New(nc)
}

// natsNodeOf names the nats node a natsse replica is connected to (its
// monitoring /connz lists the replica's address), "" if none says so.
func (s *testShape) natsNodeOf(natsse string) string {
	s.t.Helper()
	for _, name := range s.natsNodes() {
		resp, err := s.hc.Get("http://" + namespaces{}.probe(name, 8222) + "/connz")
		if err != nil {
			continue // cut off
		}
		var connz struct {
			Connections []struct {
				IP   string `json:"ip"`
				Name string `json:"name"`
			} `json:"connections"`
		}
		err = json.NewDecoder(resp.Body).Decode(&connz)
		resp.Body.Close()
		if err != nil {
			s.t.Fatalf("%s /connz: %v", name, err)
		}
		for _, c := range connz.Connections {
			if c.IP == hosts[natsse]["front"] && c.Name == "natsse" {
				return name
			}
		}
	}
	return ""
}

// metric reads one unlabelled metric of a natsse replica, -1 if unreadable.
func (s *testShape) metric(natsse, name string) float64 {
	resp, err := s.hc.Get("http://" + namespaces{}.probe(natsse, 8080) + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// stored is one message as JetStream keeps it.
type stored struct {
	seq     uint64
	subject string
	data    string
}

// storedMessages reads the whole stream message by message: the truth the
// clients are held to.
func (s *testShape) storedMessages() []stored {
	s.t.Helper()
	var st jetstream.Stream
	s.retry("looking up the stream", func(ctx context.Context) (err error) {
		st, err = s.js.Stream(ctx, "EVENTS")
		return err
	})
	var out []stored
	for seq := uint64(1); seq <= st.CachedInfo().State.LastSeq; seq++ {
		s.retry(fmt.Sprintf("reading message %d", seq), func(ctx context.Context) error {
			m, err := st.GetMsg(ctx, seq)
			if err == nil {
				out = append(out, stored{seq: m.Sequence, subject: m.Subject, data: string(m.Data)})
			}
			return err
		})
	}
	return out
}

func (s *testShape) retry(what string, f func(ctx context.Context) error) {
	s.t.Helper()
	if err := retry(f); err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

// retry calls f until it succeeds, through leader elections and
// reconnects, for at most patience.
func retry(f func(ctx context.Context) error) error {
	deadline := time.Now().Add(patience())
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := f(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// publish stores message i, retried until JetStream acknowledges it; its
// message ID drops a retry of a message stored before its ack was lost.
func (s *testShape) publish(i int) (retries int) {
	s.t.Helper()
	attempts := 0
	err := retry(func(ctx context.Context) error {
		attempts++
		_, err := s.js.Publish(ctx, subjectOf(i), []byte("m"+strconv.Itoa(i)), jetstream.WithMsgID("m"+strconv.Itoa(i)))
		return err
	})
	if err != nil {
		s.t.Fatalf("publish %d: not acknowledged: %v", i, err)
	}
	return attempts - 1
}

// subjectOf spreads messages over two subjects of one wildcard and a third
// outside it.
func subjectOf(i int) string {
	return [...]string{"events.orders.eu", "events.orders.us", "events.audit"}[i%3]
}

// waitFor polls cond until it holds, for at most patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience())
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, patience())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
