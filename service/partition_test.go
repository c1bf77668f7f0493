package service_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service"
)

// The partition tests cut links without closing them, as a network does:
// the cluster's routes and natsse's NATS connection run through proxies
// that can be frozen (they stop forwarding; nothing is closed). The cut is
// never healed: every client must get every stored message exactly once,
// in order, while the partition lasts.

// TestPartitionServerCutOff: natsse's NATS server is cut off from the other
// two (natsse still reaches every server). That server still answers for
// the stream, first as a leader that hears from no one, then for a replica
// without a leader, while nothing new reaches it. natsse must notice and
// move to a server of the majority. A second natsse that can reach only
// the cut-off server must not claim to be ready.
func TestPartitionServerCutOff(t *testing.T) {
	cases := []struct {
		name   string
		cutOff func(r clusterRoles) *natsNode
	}{
		{"the stream leader", streamLeader},
		{"a follower of the stream", other},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { serverCutOff(t, tc.cutOff) })
	}
}

func serverCutOff(t *testing.T, pick func(r clusterRoles) *natsNode) {
	c := startClusterRouted(t, true)
	c.createStream()
	roles := c.roles()
	cut := pick(roles)
	// The test publishes and reads on the majority's side.
	c.nc = c.connect(c.without(cut))
	c.js, _ = jetstream.New(c.nc)

	r := c.serve(service.Config{}, cut)
	stuck := c.serveOn(service.Config{}, c.connectURLs([]string{cut.url}, nats.IgnoreDiscoveredServers()))
	fs := clusterFollowers(t, r.url)

	faultMidway(t, c, fs, func() func() {
		t.Logf("cutting %s (stream leader %s, meta leader %s) off from the other servers",
			cut.name, roles.streamLeader.name, roles.metaLeader.name)
		i := slices.Index(c.nodes, cut)
		for _, rp := range c.routes {
			if rp.from == i || rp.to == i {
				rp.proxy.freeze()
			}
		}
		return nil // the partition lasts
	})

	if got := r.nc.ConnectedServerName(); got == cut.name {
		t.Errorf("natsse is still connected to the cut-off server %s", got)
	}
	for _, f := range fs {
		if n := f.streamsOpened(); n != 1 {
			t.Errorf("%s: %d streams opened, want the first kept open", f.path, n)
		}
	}

	// The cut-off server answers for the stream itself by now, or soon:
	// without a leader. This is when natsse used to report ready again.
	x := c.connectURLs([]string{cut.url}, nats.IgnoreDiscoveredServers())
	xjs, _ := jetstream.New(x)
	waitFor(t, cut.name+" to answer for the stream without a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := xjs.Stream(ctx, "EVENTS")
		return err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader == ""
	})
	if got := stuck.nc.ConnectedServerName(); got != cut.name {
		t.Fatalf("the natsse that knows only %s is connected to %s", cut.name, got)
	}
	// Sample its readiness over a few of its checks (one a second).
	for range 6 {
		status, body := get(t, stuck.url+"/readyz")
		if status != http.StatusServiceUnavailable {
			t.Errorf("/readyz of the natsse stuck on the cut-off server: %d %q, want 503", status, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	_, body := get(t, stuck.url+"/readyz")
	t.Logf("/readyz of the natsse stuck on %s: %s", cut.name, body)
}

// TestPartitionNATSLinkDead: natsse's link to its NATS server dies without
// a FIN or an RST; the server and the cluster are fine. natsse must notice
// within seconds (its pings go unanswered, its checks time out) and
// reconnect to another server.
func TestPartitionNATSLinkDead(t *testing.T) {
	c := startCluster(t)
	c.createStream()
	roles := c.roles()
	server := roles.streamLeader
	u, err := url.Parse(server.url)
	if err != nil {
		t.Fatal(err)
	}
	link := startProxy(t, u.Host)
	urls := []string{link.url()}
	for _, n := range c.nodes {
		if n != server {
			urls = append(urls, n.url)
		}
	}
	r := c.serveOn(service.Config{}, c.connectURLs(urls, nats.DontRandomize()))
	if got := r.nc.ConnectedUrl(); got != link.url() {
		t.Fatalf("natsse is connected to %s, want %s (the proxy to %s)", got, link.url(), server.name)
	}
	fs := clusterFollowers(t, r.url)

	faultMidway(t, c, fs, func() func() {
		t.Logf("freezing natsse's link to %s", server.name)
		link.freeze()
		return nil // the link stays dead
	})

	if got := r.nc.ConnectedUrl(); got == link.url() {
		t.Errorf("natsse is still on the dead link to %s", server.name)
	}
	for _, f := range fs {
		if n := f.streamsOpened(); n != 1 {
			t.Errorf("%s: %d streams opened, want the first kept open", f.path, n)
		}
	}
}

// TestPartitionMovedOntoCutOff: a move can land on a server that is cut
// off, as when natsse, on a server of the majority, moved because its
// stream check timed out during the election the cut caused, and the next
// server of its list was the cut-off one. There the upstream cannot start
// (the consumer's creation needs the meta leader, out of reach), so no
// stream check runs that could move natsse on: natsse must move again, to
// a server of the majority, and deliver every event exactly once, in order.
//
// By construction: natsse's link to its first server dies at the moment
// the second one (the stream's leader) is cut off, and natsse's pings are
// off, so that, as in an election, only its stream check notices; it moves
// to the next server of its list: the cut-off one.
func TestPartitionMovedOntoCutOff(t *testing.T) {
	c := startClusterRouted(t, true)
	c.createStream()
	roles := c.roles()
	first, cut, healthy := roles.other, roles.streamLeader, roles.metaLeader
	c.nc = c.connect(healthy)
	c.js, _ = jetstream.New(c.nc)
	u, err := url.Parse(first.url)
	if err != nil {
		t.Fatal(err)
	}
	link := startProxy(t, u.Host)
	r := c.serveOn(service.Config{}, c.connectURLs([]string{link.url(), cut.url, healthy.url},
		nats.DontRandomize(), nats.PingInterval(time.Hour)))
	if got := r.nc.ConnectedUrl(); got != link.url() {
		t.Fatalf("natsse is connected to %s, want %s (the proxy to %s)", got, link.url(), first.name)
	}
	fs := clusterFollowers(t, r.url)

	faultMidway(t, c, fs, func() func() {
		t.Logf("cutting %s (the stream's leader) off from the other servers, and natsse's link to %s", cut.name, first.name)
		i := slices.Index(c.nodes, cut)
		for _, rp := range c.routes {
			if rp.from == i || rp.to == i {
				rp.proxy.freeze()
			}
		}
		link.freeze()
		return nil // the partition lasts
	})

	if got := r.nc.ConnectedServerName(); got == cut.name || r.nc.ConnectedUrl() == link.url() {
		t.Errorf("natsse is connected to %s (%s), want a server of the majority", got, r.nc.ConnectedUrl())
	}
	for _, f := range fs {
		if n := f.streamsOpened(); n != 1 {
			t.Errorf("%s: %d streams opened, want the first kept open", f.path, n)
		}
	}
}

func get(t *testing.T, target string) (int, string) {
	t.Helper()
	resp, err := http.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
