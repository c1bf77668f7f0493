package main_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natsse/natsse/service/natsversion"
)

// natsServerVersions are the releases the NATS version test runs natsse
// against: the newest patch of the oldest supported minor release, and the
// newest release.
var natsServerVersions = []string{"v2.10.27", "v2.15.3"}

// TestNATSServerVersions runs natsse in connected mode against real
// nats-server processes of the oldest supported and the newest release,
// built from the module proxy: subscribe, publish, resume and reset work on
// both; named cursors work where the server has what they need and are
// refused with a 501 that names the version where it has not. It needs the
// module proxy and a few minutes to build the servers the first time, so
// it runs when NATSSE_NATS_VERSIONS=1 (as CI sets).
func TestNATSServerVersions(t *testing.T) {
	if os.Getenv("NATSSE_NATS_VERSIONS") != "1" {
		t.Skip("set NATSSE_NATS_VERSIONS=1 to build nats-server " + strings.Join(natsServerVersions, " and ") + " and run natsse against them")
	}
	for _, v := range natsServerVersions {
		t.Run(v, func(t *testing.T) { againstNATSServer(t, v) })
	}
}

func againstNATSServer(t *testing.T, version string) {
	bin := natsServerBinary(t, version)
	port := freePort(t)
	ns := exec.CommandContext(t.Context(), bin, "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Process.Kill(); _ = ns.Wait() })
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	waitDial(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))

	p := startNatsse(t, "NATS_URL="+url, "NATSSE_ANONYMOUS=true", "NATSSE_STREAM_CREATE=true")
	base := "http://" + p.httpAddr
	waitReady(t, base)
	if !strings.Contains(p.stderr.String(), strings.TrimPrefix(version, "v")) {
		t.Errorf("the log does not name the server's version %s:\n%s", version, p.stderr.String())
	}
	js := jetStream(t, url)
	for i := 1; i <= 3; i++ {
		publish(t, js, "events.v", i)
	}
	resumed := openStream(t, base+"/events/v", http.Header{"Last-Event-ID": {"1"}})
	resumed.expectRetry(t, 200)
	resumed.expectMessage(t, 2)
	resumed.expectMessage(t, 3)
	publish(t, js, "events.v", 4)
	resumed.expectMessage(t, 4)

	cursor := base + "/events/v?durable=versions"
	supported := natsversion.AtLeast(version, natsversion.NamedCursors)
	if !supported {
		resp, err := http.Get(cursor)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Status int
			Detail string
		}
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotImplemented || !strings.Contains(p.Detail, natsversion.NamedCursors) {
			t.Errorf("?durable= on nats-server %s: %d %q, want 501 naming nats-server %s", version, resp.StatusCode, p.Detail, natsversion.NamedCursors)
		}
		return
	}
	first := openStream(t, cursor, nil)
	first.expectRetry(t, 200)
	publish(t, js, "events.v", 5)
	first.expectMessage(t, 5)
	first.resp.Body.Close()
	publish(t, js, "events.v", 6)
	again := openStream(t, cursor, nil)
	again.expectRetry(t, 200)
	again.expectMessage(t, 6)
}

// natsServerBinary builds nats-server at version into the user's cache (once
// per machine) and returns its path.
func natsServerBinary(t *testing.T, version string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "natsse-test", "nats-server-"+version)
	bin := filepath.Join(dir, "nats-server")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", "github.com/nats-io/nats-server/v2@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install nats-server %s: %v\n%s", version, err, out)
	}
	return bin
}

// waitDial waits until something accepts connections on addr.
func waitDial(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(patience())
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady waits until natsse's /readyz answers 200.
func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(patience())
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz never answered 200 (last: %v)", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
