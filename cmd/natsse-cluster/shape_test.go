package main

import (
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestShapeFollowsCompose keeps compose.yaml and the process shape in step:
// the same services, natsse with the same settings, nats-server with the
// same flags, HAProxy with the same file; only hostnames, ports and paths
// differ, and they point where the other processes listen.
func TestShapeFollowsCompose(t *testing.T) {
	c, err := readCompose("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bin := binaries{nats: "/bin/nats-server", natsse: "/bin/natsse", haproxy: "/bin/haproxy"}
	procs, err := shape(c, loopback{}, bin, "/state")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]proc{}
	var names []string
	for _, p := range procs {
		byName[p.name] = p
		names = append(names, p.name)
	}
	var want []string
	for name := range c.Services {
		want = append(want, name)
	}
	slices.Sort(want)
	if got := slices.Sorted(slices.Values(names)); !slices.Equal(got, want) {
		t.Fatalf("process shape %v, compose services %v", got, want)
	}
	started := map[string]bool{}
	for _, p := range procs {
		for _, dep := range p.after {
			if !started[dep] {
				t.Errorf("%s starts before %s, which it depends on", p.name, dep)
			}
		}
		started[p.name] = true
	}

	// Where each process listens, to check that the others point there.
	listens := map[string]string{} // host:port -> service
	kinds := map[string]int{}
	for _, p := range procs {
		kinds[p.kind]++
		switch p.kind {
		case "nats":
			a, port := flagValue(p.argv, "-a"), flagValue(p.argv, "-p")
			listens[net.JoinHostPort(a, port)] = p.name + " client"
			listens[strings.TrimPrefix(flagValue(p.argv, "--cluster"), "nats://")] = p.name + " cluster"
			listens[net.JoinHostPort(a, flagValue(p.argv, "-m"))] = p.name + " monitor"
		case "natsse":
			listens[envValue(p.env, "NATSSE_HTTP_ADDR")] = p.name + " http"
		case "haproxy":
			listens[envValue(p.env, "NATSSE_LB_BIND")] = p.name + " http"
		}
	}
	if kinds["nats"] != 3 || kinds["natsse"] != 2 || kinds["haproxy"] != 1 {
		t.Errorf("kinds %v, want 3 nats, 2 natsse, 1 haproxy", kinds)
	}
	n := 0
	for range listens {
		n++
	}
	if n != 3*3+2+1 {
		t.Errorf("%d distinct listen addresses, want 12 (no two processes on one port): %v", n, listens)
	}
	points := func(who, addr, want string) {
		t.Helper()
		if got := listens[addr]; got != want {
			t.Errorf("%s points to %s, where %q listens, want %s", who, addr, got, want)
		}
	}

	for _, p := range procs {
		s := c.Services[p.name]
		switch p.kind {
		case "nats":
			// The compose command's flags, in order, then -a and -p.
			got := p.argv[1:]
			if len(got) != len(s.Command)-1+4 {
				t.Errorf("%s: %q, want compose's %q with -a and -p", p.name, got, s.Command)
				continue
			}
			for i, arg := range s.Command[1:] {
				switch {
				case strings.HasPrefix(arg, "-"):
					if got[i] != arg {
						t.Errorf("%s: argument %d is %q, compose has %q", p.name, i+1, got[i], arg)
					}
				case arg == "/data":
					if got[i] != filepath.Join("/state", "data", p.name+"-data") {
						t.Errorf("%s: store %q, want its own under the state directory", p.name, got[i])
					}
				case strings.Contains(arg, "nats://"):
					for _, u := range strings.Split(got[i], ",") {
						if s.Command[i] == "--routes" {
							peer := listens[strings.TrimPrefix(u, "nats://")]
							if !strings.HasSuffix(peer, " cluster") || strings.HasPrefix(peer, p.name+" ") {
								t.Errorf("%s: route %s leads to %q, want another node's cluster port", p.name, u, peer)
							}
						}
					}
				}
			}
			if routes := strings.Split(flagValue(p.argv, "--routes"), ","); len(routes) != 2 {
				t.Errorf("%s: routes %v, want the two other nodes", p.name, routes)
			}
		case "natsse":
			env := map[string]string{}
			for _, kv := range p.env {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			for k, v := range s.Environment {
				switch k {
				case "NATS_URL":
					urls := strings.Split(env[k], ",")
					if len(urls) != len(strings.Split(v, ",")) {
						t.Errorf("%s NATS_URL %q, compose %q", p.name, env[k], v)
					}
					for i, u := range urls {
						points(p.name+" NATS_URL", strings.TrimPrefix(u, "nats://"), "nats"+string(rune('1'+i))+" client")
					}
				case "NATSSE_TRUSTED_PROXIES":
					if env[k] != "127.0.0.1" {
						t.Errorf("%s %s = %q, want HAProxy's address 127.0.0.1", p.name, k, env[k])
					}
				default:
					if env[k] != v {
						t.Errorf("%s %s = %q, compose has %q", p.name, k, env[k], v)
					}
				}
				delete(env, k)
			}
			delete(env, "NATSSE_HTTP_ADDR")
			if len(env) != 0 {
				t.Errorf("%s: settings compose does not have: %v", p.name, env)
			}
			if p.health != "http://"+envValue(p.env, "NATSSE_HTTP_ADDR")+"/readyz" {
				t.Errorf("%s: health %s, want /readyz where it listens", p.name, p.health)
			}
		case "haproxy":
			cfg, err := filepath.Abs(filepath.Join(c.dir, c.Configs["haproxy"].File))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.argv, []string{bin.haproxy, "-db", "-f", cfg}) {
				t.Errorf("%s: %q, want haproxy reading compose's %s", p.name, p.argv, cfg)
			}
			points("HAProxy's natsse1", envValue(p.env, "NATSSE1_ADDR"), "natsse1 http")
			points("HAProxy's natsse2", envValue(p.env, "NATSSE2_ADDR"), "natsse2 http")
			if len(p.env) != 3 {
				t.Errorf("%s environment %v, want NATSSE_LB_BIND, NATSSE1_ADDR and NATSSE2_ADDR", p.name, p.env)
			}
		}
	}
	// compose publishes nats1's 4222 and HAProxy's 8080: so does the shape.
	points("nats pub", "127.0.0.1:4222", "nats1 client")
	points("curl", "127.0.0.1:8080", "lb http")
}

func flagValue(argv []string, flag string) string {
	if i := slices.Index(argv, flag); i >= 0 && i+1 < len(argv) {
		return argv[i+1]
	}
	return ""
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}
