package service_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service"
)

// natsCluster is three nats-servers with JetStream, routed to each other
// on loopback: the production shape of compose.yaml, in the test process.
type natsCluster struct {
	t      *testing.T
	nodes  []*natsNode
	nc     *nats.Conn // the test's own connection, to every node
	js     jetstream.JetStream
	routes []routeProxy // with startClusterRouted(t, true)
}

// routeProxy carries the routes node from dials to node to.
type routeProxy struct {
	from, to int
	proxy    *proxy
}

type natsNode struct {
	name string
	srv  *server.Server
	url  string
}

// startCluster starts the three servers and waits until JetStream has a
// meta leader that knows every peer.
func startCluster(t *testing.T) *natsCluster { return startClusterRouted(t, false) }

// startClusterRouted starts the cluster; with proxied, every route runs
// through a proxy of its own (c.routes), so that a test can cut the
// routes.
func startClusterRouted(t *testing.T, proxied bool) *natsCluster {
	t.Helper()
	ports := clusterPorts(t, 3)
	routeURL := func(hostport string) *url.URL { return &url.URL{Scheme: "nats", Host: hostport} }
	routes := make([]*url.URL, len(ports))
	for i, p := range ports {
		routes[i] = routeURL(net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	}
	c := &natsCluster{t: t}
	for i, port := range ports {
		nodeRoutes := routes // a route to itself is recognised and dropped
		advertise := ""
		if proxied {
			// Node i reaches node j through a proxy of its own; nothing
			// reaches a cluster port directly (the advertised address
			// refuses connections, so no route is made past the proxies).
			nodeRoutes = nil
			for j, p := range ports {
				if j != i {
					px := startProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
					c.routes = append(c.routes, routeProxy{from: i, to: j, proxy: px})
					nodeRoutes = append(nodeRoutes, routeURL(px.addr()))
				}
			}
			advertise = "127.0.0.1:1"
		}
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "natsse-test", Host: "127.0.0.1", Port: port, Advertise: advertise},
			Routes:     nodeRoutes,
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("%s not accepting clients within 10s", opts.ServerName)
		}
		c.nodes = append(c.nodes, &natsNode{name: opts.ServerName, srv: srv, url: srv.ClientURL()})
	}
	c.nc = c.connect(nil)
	c.js, _ = jetstream.New(c.nc)
	waitFor(t, "a JetStream meta leader that knows all three servers", func() bool {
		m := c.metaLeader()
		return m != nil && len(m.srv.JetStreamClusterPeers()) == len(c.nodes)
	})
	return c
}

// clusterPorts finds n free ports for the routes, outside the ephemeral
// range so that no outgoing connection takes one before its server does.
func clusterPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for range 200 {
		if len(ports) == n {
			return ports
		}
		p := 20_000 + rand.IntN(10_000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		held = append(held, l)
		ports = append(ports, p)
	}
	t.Fatalf("no %d free ports in 20000-29999", n)
	return nil
}

// connect opens a connection to every node, first first (nil: any order),
// that reconnects forever and quickly, as natsse's connected mode does.
func (c *natsCluster) connect(first *natsNode) *nats.Conn {
	c.t.Helper()
	urls := make([]string, 0, len(c.nodes))
	var opts []nats.Option
	if first != nil {
		urls = append(urls, first.url)
		opts = append(opts, nats.DontRandomize())
	}
	for _, n := range c.nodes {
		if n != first {
			urls = append(urls, n.url)
		}
	}
	return c.connectURLs(urls, opts...)
}

// connectURLs opens a connection to urls with natsse's options (pings
// every few seconds, reconnecting forever) and extra ones.
func (c *natsCluster) connectURLs(urls []string, extra ...nats.Option) *nats.Conn {
	c.t.Helper()
	opts := append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, service.ConnOptions(service.DefaultNATSPing)...)
	nc, err := nats.Connect(strings.Join(urls, ","), append(opts, extra...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// metaLeader is the server leading JetStream's meta group (which creates
// consumers), nil during an election.
func (c *natsCluster) metaLeader() *natsNode {
	for _, n := range c.nodes {
		if n.srv.JetStreamIsLeader() {
			return n
		}
	}
	return nil
}

func (c *natsCluster) node(name string) *natsNode {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no server named %q", name)
	return nil
}

// createStream creates EVENTS on events.> with three replicas, retrying
// while the meta leader is still placing peers.
func (c *natsCluster) createStream() {
	c.t.Helper()
	waitFor(c.t, "the R3 stream to be created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Replicas: 3})
		return err == nil
	})
}

// waitReplicated waits until the stream has a leader and both followers are
// current, and returns the leader's name.
func (c *natsCluster) waitReplicated() string {
	c.t.Helper()
	var leader string
	waitFor(c.t, "the stream's leader and two current replicas", func() bool {
		info := c.streamInfo()
		if info == nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, p := range info.Cluster.Replicas {
			if !p.Current {
				return false
			}
		}
		leader = info.Cluster.Leader
		return true
	})
	return leader
}

// clusterRoles names the server of each role: the stream's leader, the
// JetStream meta leader (which creates consumers) and the third one; and,
// once natsse runs, the one hosting its upstream consumer.
type clusterRoles struct{ streamLeader, metaLeader, other, upstream *natsNode }

// roles waits until the stream is replicated and gives each server one
// role, moving the stream's leader off the meta leader if needed.
func (c *natsCluster) roles() clusterRoles {
	c.t.Helper()
	r := clusterRoles{streamLeader: c.node(c.waitReplicated()), metaLeader: c.metaLeader()}
	if r.metaLeader == nil {
		c.t.Fatal("no meta leader")
	}
	if r.streamLeader == r.metaLeader {
		r.streamLeader = c.without(r.metaLeader)
		c.moveStreamLeader(r.streamLeader)
	}
	r.other = c.without(r.streamLeader, r.metaLeader)
	return r
}

// without returns the first server that is none of these.
func (c *natsCluster) without(these ...*natsNode) *natsNode {
	for _, n := range c.nodes {
		if !slices.Contains(these, n) {
			return n
		}
	}
	c.t.Fatal("no server left")
	return nil
}

// moveStreamLeader asks the stream's leader to step down in favour of to.
func (c *natsCluster) moveStreamLeader(to *natsNode) {
	c.t.Helper()
	req := []byte(`{"placement":{"preferred":"` + to.name + `"}}`)
	waitFor(c.t, "the stream's leader to move to "+to.name, func() bool {
		if c.waitReplicated() == to.name {
			return true
		}
		_, _ = c.nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.EVENTS", req, 2*time.Second)
		return false
	})
}

// streamInfo returns the stream's info, nil while it cannot be read.
func (c *natsCluster) streamInfo() *jetstream.StreamInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, "EVENTS")
	if err != nil {
		return nil
	}
	return s.CachedInfo()
}

// stored is one message as JetStream keeps it.
type stored struct {
	seq     uint64
	subject string
	data    string
}

// storedMessages reads the whole stream, message by message from its
// leader (no consumer, so no meta leader needed): the truth the clients
// are held to.
func (c *natsCluster) storedMessages() []stored {
	c.t.Helper()
	var s jetstream.Stream
	c.retry("looking up the stream", func(ctx context.Context) (err error) {
		s, err = c.js.Stream(ctx, "EVENTS")
		return err
	})
	var out []stored
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		c.retry(fmt.Sprintf("reading message %d", seq), func(ctx context.Context) error {
			m, err := s.GetMsg(ctx, seq)
			if err == nil {
				out = append(out, stored{seq: m.Sequence, subject: m.Subject, data: string(m.Data)})
			}
			return err
		})
	}
	return out
}

// retry calls f until it succeeds, through leader elections, for at most
// patience.
func (c *natsCluster) retry(what string, f func(ctx context.Context) error) {
	c.t.Helper()
	if err := retry(f); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

func retry(f func(ctx context.Context) error) error {
	deadline := time.Now().Add(patience())
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := f(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(25 * time.Millisecond) // back off while a leader is elected
	}
}

// consumerHosts maps each consumer on the stream to the server hosting it.
func (c *natsCluster) consumerHosts() map[string]string {
	c.t.Helper()
	var hosts map[string]string
	c.retry("listing the stream's consumers", func(ctx context.Context) error {
		s, err := c.js.Stream(ctx, "EVENTS")
		if err != nil {
			return err
		}
		hosts = map[string]string{}
		list := s.ListConsumers(ctx)
		for info := range list.Info() {
			if info.Cluster == nil || info.Cluster.Leader == "" {
				return fmt.Errorf("consumer %s has no leader yet", info.Name)
			}
			hosts[info.Name] = info.Cluster.Leader
		}
		return list.Err()
	})
	return hosts
}

// newConsumerHost returns the server hosting the one consumer that is not
// in before: natsse's upstream, when natsse just started.
func (c *natsCluster) newConsumerHost(before map[string]string) *natsNode {
	c.t.Helper()
	var fresh []string
	for name, host := range c.consumerHosts() {
		if _, ok := before[name]; !ok {
			fresh = append(fresh, host)
		}
	}
	if len(fresh) != 1 {
		c.t.Fatalf("%d new consumers on the stream, want natsse's upstream alone", len(fresh))
	}
	return c.node(fresh[0])
}

// publisher publishes through leader elections and reconnects: each message
// is retried until JetStream acknowledges it, and carries a message ID so
// that a retry of a message stored before its ack was lost is dropped as a
// duplicate instead of being stored twice.
type publisher struct {
	js      jetstream.JetStream
	retries int
}

// publish stores message i on subject, or fails after patience.
func (p *publisher) publish(i int, subject string) error {
	attempts := 0
	err := retry(func(ctx context.Context) error {
		attempts++
		_, err := p.js.Publish(ctx, subject, []byte(seqPayload(i)), jetstream.WithMsgID("m"+strconv.Itoa(i)))
		return err
	})
	p.retries += attempts - 1
	if err != nil {
		return fmt.Errorf("publish %d on %s: not acknowledged: %w", i, subject, err)
	}
	return nil
}

// publishRange publishes messages from..to-1 on subjectOf(i), calling at(i)
// after each acknowledgement.
func (p *publisher) publishRange(from, to int, subjectOf func(i int) string, at func(i int)) error {
	for i := from; i < to; i++ {
		if err := p.publish(i, subjectOf(i)); err != nil {
			return err
		}
		if at != nil {
			at(i)
		}
	}
	return nil
}

// replica is one natsse process on the cluster, serving over HTTP on a
// listener the test can cut like a kill -9 would.
type replica struct {
	svc  *service.Server
	nc   *nats.Conn
	url  string
	ln   *killableListener
	stop func()
}

// serve starts natsse on its own connection to the cluster, connected to
// first first, and waits until it serves the stream.
func (c *natsCluster) serve(cfg service.Config, first *natsNode) *replica {
	c.t.Helper()
	return c.serveOn(cfg, c.connect(first))
}

// serveOn starts natsse on the connection nc, and waits until it serves
// the stream.
func (c *natsCluster) serveOn(cfg service.Config, nc *nats.Conn) *replica {
	c.t.Helper()
	cfg.WriteTimeout = testWriteTimeout(cfg.WriteTimeout)
	if cfg.UpstreamIdle == 0 {
		cfg.UpstreamIdle = -1 // as in startOn
	}
	svc, err := service.New(cfg, nc)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { svc.Run(ctx) })
	hs := httptest.NewUnstartedServer(svc)
	ln := &killableListener{Listener: hs.Listener}
	hs.Listener = ln
	hs.Start()
	r := &replica{svc: svc, nc: nc, url: hs.URL, ln: ln}
	r.stop = sync.OnceFunc(func() {
		ln.kill()
		svc.Close()
		hs.Close()
		cancel()
		wg.Wait()
		nc.Close()
	})
	c.t.Cleanup(r.stop)
	select {
	case <-svc.Started():
	case <-time.After(patience()):
		c.t.Fatal("natsse did not find its stream")
	}
	return r
}

// kill ends the replica the way kill -9 does for its clients: every
// connection is reset at once, nothing more is written, no final flush.
func (r *replica) kill() { r.stop() }

// killableListener remembers the connections it accepted so that they can
// all be reset at once, hijacked ones included.
type killableListener struct {
	net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	killed bool
}

func (l *killableListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed {
		conn.Close()
		return nil, net.ErrClosed
	}
	l.conns = append(l.conns, conn)
	return conn, nil
}

func (l *killableListener) kill() {
	l.mu.Lock()
	l.killed = true
	conns := l.conns
	l.mu.Unlock()
	l.Listener.Close()
	for _, conn := range conns {
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // close with a reset, as the kernel does for a killed process
		}
		conn.Close()
	}
}
