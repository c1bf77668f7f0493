package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The fault tests give each process of the shape a host of its own: a
// network namespace made by the test, joined to the others by veth pairs
// on bridges in one more namespace of the test's own. The addresses exist
// only inside those namespaces; none of them has a route out, so no packet
// leaves them. Three networks keep the links the faults cut apart:
//
//	front  10.213.0.0/24  clients, natsse and the publisher to NATS and HAProxy
//	routes 10.213.1.0/24  the NATS cluster's routes
//	lb     10.213.2.0/24  HAProxy to the natsse replicas
var hosts = map[string]map[string]string{
	"nats1":   {"front": "10.213.0.11", "routes": "10.213.1.11"},
	"nats2":   {"front": "10.213.0.12", "routes": "10.213.1.12"},
	"nats3":   {"front": "10.213.0.13", "routes": "10.213.1.13"},
	"natsse1": {"front": "10.213.0.21", "lb": "10.213.2.21"},
	"natsse2": {"front": "10.213.0.22", "lb": "10.213.2.22"},
	"lb":      {"front": "10.213.0.30", "lb": "10.213.2.30"},
	"client":  {"front": "10.213.0.100"},
}

// namespaces places the shape on hosts: the routes on their network,
// HAProxy's servers on the lb network, everything else on front.
type namespaces struct{}

func (namespaces) places(svc string) bool { _, ok := hosts[svc]; return ok }
func (namespaces) listen(svc string, port int) string {
	switch {
	case strings.HasPrefix(svc, "nats") && !strings.HasPrefix(svc, "natsse"):
		return namespaces{}.dial(svc, port)
	case svc == "lb":
		return net.JoinHostPort(hosts[svc]["front"], fmt.Sprint(port))
	}
	return fmt.Sprintf(":%d", port) // natsse: front for clients, lb for HAProxy
}
func (namespaces) dial(svc string, port int) string {
	network := "front"
	if hosts[svc]["routes"] != "" && port == 6222 {
		network = "routes"
	} else if hosts[svc]["lb"] != "" && svc != "lb" {
		network = "lb"
	}
	return net.JoinHostPort(hosts[svc][network], fmt.Sprint(port))
}
func (namespaces) probe(svc string, port int) string {
	return net.JoinHostPort(hosts[svc]["front"], fmt.Sprint(port))
}
func (namespaces) source(svc string) string {
	if ip := hosts[svc]["lb"]; ip != "" {
		return ip
	}
	return hosts[svc]["front"]
}

var netSeq atomic.Int32

// testNet is one test's network: its namespaces and the bridges joining them.
type testNet struct {
	t      *testing.T
	prefix string
}

// requireNetns skips the test (fails it, with NATSSE_NETNS_REQUIRED=1)
// unless it runs as root with ip netns and haproxy.
func requireNetns(t *testing.T) {
	t.Helper()
	skip := func(reason string) {
		t.Helper()
		if os.Getenv("NATSSE_NETNS_REQUIRED") == "1" {
			t.Fatalf("NATSSE_NETNS_REQUIRED=1, but %s", reason)
		}
		t.Skip(reason)
	}
	if os.Geteuid() != 0 {
		skip("not root: the fault tests make network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("no ip command (iproute2): " + err.Error())
	}
	if _, err := findHAProxy(); err != nil {
		skip(err.Error())
	}
	name := fmt.Sprintf("natsse-probe-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		skip(fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
}

// newTestNet makes the hub namespace with a bridge per network, and a
// namespace per host linked to the bridges of its networks. Everything is
// removed when the test ends, after the processes (registered later, so
// stopped first).
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	n := &testNet{t: t, prefix: fmt.Sprintf("natsse%d-%d-", os.Getpid(), netSeq.Add(1))}
	made := []string{}
	t.Cleanup(func() {
		for _, ns := range made {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		}
	})
	hub := n.ns("hub")
	n.ip("netns", "add", hub)
	made = append(made, hub)
	n.ip("-n", hub, "link", "set", "lo", "up")
	for _, network := range []string{"front", "routes", "lb"} {
		n.ip("-n", hub, "link", "add", "br-"+network, "type", "bridge")
		n.ip("-n", hub, "link", "set", "br-"+network, "up")
	}
	for host, nets := range hosts {
		ns := n.ns(host)
		n.ip("netns", "add", ns)
		made = append(made, ns)
		n.ip("-n", ns, "link", "set", "lo", "up")
		for network, addr := range nets {
			// The hub's end is named host-network, the host's end network.
			n.ip("-n", hub, "link", "add", n.link(host, network), "type", "veth", "peer", "name", network, "netns", ns)
			n.ip("-n", hub, "link", "set", n.link(host, network), "master", "br-"+network, "up")
			n.ip("-n", ns, "addr", "add", addr+"/24", "dev", network)
			n.ip("-n", ns, "link", "set", network, "up")
		}
	}
	return n
}

func (n *testNet) ns(host string) string { return n.prefix + host }

func (n *testNet) link(host, network string) string { return host + "-" + network }

func (n *testNet) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// cut takes host's link to network down at the bridge: packets stop both
// ways, nothing is closed or reset, as when a cable is pulled.
func (n *testNet) cut(host, network string) {
	n.t.Helper()
	n.ip("-n", n.ns("hub"), "link", "set", n.link(host, network), "down")
}

// dialer dials from host's namespace: the test process cannot join one,
// but a thread can (setns), and a socket stays in the namespace it was
// made in whichever thread uses it afterwards.
func (n *testNet) dialer(host string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	path := filepath.Join("/var/run/netns", n.ns(host))
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			conn net.Conn
			err  error
		}
		ch := make(chan result, 1)
		go func() {
			// Never unlocked: the thread, moved to another namespace, ends
			// with this goroutine instead of running others.
			runtime.LockOSThread()
			f, err := os.Open(path)
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, fmt.Errorf("setns %s: %w", path, err)}
				return
			}
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			ch <- result{conn, err}
		}()
		r := <-ch
		return r.conn, r.err
	}
}

// httpClient is a client in the client namespace.
func (n *testNet) httpClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: n.dialer("client")}}
}

// natsDialer is a nats.CustomDialer in the client namespace.
type natsDialer func(ctx context.Context, network, addr string) (net.Conn, error)

func (d natsDialer) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return d(ctx, network, addr)
}

// hostProc is one process of the shape running in its host's namespace.
type hostProc struct {
	proc
	ns      string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// start runs the process (again) in its namespace, its output appended to
// its log file.
func (p *hostProc) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- %s start\n", time.Now().Format(time.RFC3339Nano))
	// ip netns exec execs the command: the pid is the process's own.
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.ns}, p.argv...)...)
	cmd.Env = append(cleanEnv(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
}

// signal sends sig and waits until the process has exited (SIGKILL after
// patience, so that a stuck process cannot outlive the test).
func (p *hostProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(patience()):
		_ = cmd.Process.Kill()
		<-exited
		t.Errorf("%s did not exit on %v", p.name, sig)
	}
}

func (p *hostProc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return false
	default:
		return p.cmd != nil
	}
}

// logTail is the end of the process's log, for a failed test, without
// nats-server's retries of a cut route (a line every 2s per route).
func (p *hostProc) logTail(lines int) string {
	data, _ := os.ReadFile(p.logPath)
	var all [][]byte
	for _, line := range bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n")) {
		if !bytes.Contains(line, []byte("Error trying to connect to route")) {
			all = append(all, line)
		}
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}
