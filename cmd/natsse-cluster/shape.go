package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of compose.yaml the process shape follows. The
// shape is read from it, not written next to it, so that the two cannot
// drift apart: a service, a flag or a setting added there is started here.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Configs  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"configs"`
	dir string // where compose.yaml is: its relative paths start there
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Volumes []string `yaml:"volumes"`
	Configs []struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	} `yaml:"configs"`
	Networks map[string]struct {
		IPv4 string `yaml:"ipv4_address"`
	} `yaml:"networks"`
}

// kind tells what a service runs, which decides how it is started.
func (s composeService) kind() string {
	switch {
	case len(s.Command) > 0 && s.Command[0] == "nats-server":
		return "nats"
	case s.Build != nil:
		return "natsse"
	case strings.HasPrefix(s.Image, "haproxy:"):
		return "haproxy"
	}
	return ""
}

func readCompose(path string) (*composeFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &composeFile{dir: filepath.Dir(path)}
	if err := yaml.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// placement puts each compose service on a host of the process shape:
// loopback ports for `task cluster`, a network namespace each in the fault
// tests. Ports are container ports, as compose.yaml names them.
type placement interface {
	places(svc string) bool
	// listen is the host:port svc binds for port ("" host: all its addresses).
	listen(svc string, port int) string
	// dial is the host:port at which the other services reach svc's port.
	dial(svc string, port int) string
	// probe is the host:port at which the operator reaches svc's port.
	probe(svc string, port int) string
	// source is the address svc's connections come from.
	source(svc string) string
}

// binaries are the programs the shape runs.
type binaries struct{ nats, natsse, haproxy string }

// proc is one process of the shape.
type proc struct {
	name   string
	kind   string
	argv   []string
	env    []string // on top of the caller's environment, less NATS_ and NATSSE_ settings
	health string   // answers 200 once the process is ready
	after  []string // services that must be healthy before it starts
}

// natsClientPort is nats-server's default client port, which compose's
// services rely on (NATS_URL names it, no -p sets it).
const natsClientPort = 4222

// shape derives the processes from compose: the same commands, settings and
// HAProxy config, with compose's hostnames and container paths replaced by
// pl's addresses and directories under state. They come in an order that
// starts every service after those it depends on.
func shape(c *composeFile, pl placement, bin binaries, state string) ([]proc, error) {
	var names []string
	for name := range c.Services {
		if !pl.places(name) {
			return nil, fmt.Errorf("compose service %s has no place in the process shape", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	var procs []proc
	for _, name := range names {
		s := c.Services[name]
		p := proc{name: name, kind: s.kind()}
		for dep := range s.DependsOn {
			p.after = append(p.after, dep)
		}
		slices.Sort(p.after)
		health, err := c.health(name, pl)
		if err != nil {
			return nil, err
		}
		p.health = health
		switch p.kind {
		case "nats":
			p.argv, err = c.natsArgs(name, pl, bin.nats, state)
		case "natsse":
			p.argv = []string{bin.natsse}
			p.env, err = c.natsseEnv(name, pl)
		case "haproxy":
			var cfg string
			var bind int
			cfg, p.env, bind, err = c.haproxy(name, pl)
			p.argv = []string{bin.haproxy, "-db", "-f", cfg}
			if p.health == "" {
				// Through HAProxy to a replica: ready once one of them is.
				p.health = "http://" + pl.probe(name, bind) + "/readyz"
			}
		default:
			err = fmt.Errorf("compose service %s: neither nats-server, a natsse build nor haproxy", name)
		}
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	return startOrder(procs)
}

// startOrder sorts procs so that each comes after those it depends on.
func startOrder(procs []proc) ([]proc, error) {
	var out []proc
	done := map[string]bool{}
	for len(out) < len(procs) {
		progress := false
		for _, p := range procs {
			if done[p.name] || !all(p.after, done) {
				continue
			}
			out = append(out, p)
			done[p.name] = true
			progress = true
		}
		if !progress {
			return nil, fmt.Errorf("compose services depend on each other in a cycle")
		}
	}
	return out, nil
}

func all(names []string, set map[string]bool) bool {
	for _, n := range names {
		if !set[n] {
			return false
		}
	}
	return true
}

// natsseHealth is what `natsse healthcheck` asks in the container: /readyz
// on natsse's default HTTP address.
const natsseHealth = "http://127.0.0.1:8080/readyz"

// health turns a service's compose health check (a URL on 127.0.0.1 in the
// container, or natsse's own healthcheck command) into a URL the operator
// can fetch.
func (c *composeFile) health(name string, pl placement) (string, error) {
	for _, arg := range c.Services[name].Healthcheck.Test {
		if arg == "healthcheck" {
			arg = natsseHealth
		}
		if !strings.HasPrefix(arg, "http://") {
			continue
		}
		u, err := url.Parse(arg)
		if err != nil {
			return "", fmt.Errorf("%s healthcheck: %w", name, err)
		}
		port, err := strconv.Atoi(u.Port())
		if err != nil {
			return "", fmt.Errorf("%s healthcheck %s: no port", name, arg)
		}
		u.Host = pl.probe(name, port)
		return u.String(), nil
	}
	return "", nil
}

// healthPort is the container port of a service's health check.
func (c *composeFile) healthPort(name string) int {
	for _, arg := range c.Services[name].Healthcheck.Test {
		if arg == "healthcheck" {
			arg = natsseHealth
		}
		if u, err := url.Parse(arg); err == nil && strings.HasPrefix(arg, "http://") {
			port, _ := strconv.Atoi(u.Port())
			return port
		}
	}
	return 0
}

var (
	// hostPort is a compose hostname with a port, as in nats://nats2:6222.
	hostPort = regexp.MustCompile(`\b([a-z][a-z0-9-]*):([0-9]+)\b`)
	// anyHost is a listen address on every interface.
	anyHost = regexp.MustCompile(`\b0\.0\.0\.0:([0-9]+)\b`)
)

// rewrite replaces compose's hostnames (with ports) in s by pl's dial
// addresses, compose's 0.0.0.0 listen addresses by svc's own, and the
// services' fixed IPs by their source addresses.
func (c *composeFile) rewrite(svc, s string, pl placement) string {
	s = anyHost.ReplaceAllStringFunc(s, func(m string) string {
		port, _ := strconv.Atoi(anyHost.FindStringSubmatch(m)[1])
		return pl.listen(svc, port)
	})
	s = hostPort.ReplaceAllStringFunc(s, func(m string) string {
		sub := hostPort.FindStringSubmatch(m)
		if _, ok := c.Services[sub[1]]; !ok {
			return m
		}
		port, _ := strconv.Atoi(sub[2])
		return pl.dial(sub[1], port)
	})
	for name, s2 := range c.Services {
		for _, n := range s2.Networks {
			if n.IPv4 != "" && s == n.IPv4 {
				return pl.source(name)
			}
		}
	}
	return s
}

// natsArgs is a nats service's command with the binary, its volume and
// its addresses replaced, and its client listener placed with -a and -p.
func (c *composeFile) natsArgs(name string, pl placement, bin, state string) ([]string, error) {
	s := c.Services[name]
	volumes := map[string]string{}
	for _, v := range s.Volumes {
		src, target, ok := strings.Cut(v, ":")
		if !ok {
			return nil, fmt.Errorf("%s volume %q: want source:target", name, v)
		}
		volumes[target] = filepath.Join(state, "data", src)
	}
	args := []string{bin}
	cmd := s.Command[1:]
	for i := 0; i < len(cmd); i++ {
		arg := cmd[i]
		switch {
		case volumes[arg] != "":
			args = append(args, volumes[arg])
		case (arg == "-m" || arg == "--http_port") && i+1 < len(cmd):
			port, err := strconv.Atoi(cmd[i+1])
			if err != nil {
				return nil, fmt.Errorf("%s %s %q: not a port", name, arg, cmd[i+1])
			}
			args = append(args, arg, portOf(pl.listen(name, port)))
			i++
		default:
			args = append(args, c.rewrite(name, arg, pl))
		}
	}
	host, port, _ := net.SplitHostPort(pl.listen(name, natsClientPort))
	if host != "" {
		args = append(args, "-a", host)
	}
	return append(args, "-p", port), nil
}

// natsseEnv is a natsse service's environment with addresses replaced,
// and its HTTP listener (the port of its health check) placed.
func (c *composeFile) natsseEnv(name string, pl placement) ([]string, error) {
	s := c.Services[name]
	port := c.healthPort(name)
	if port == 0 {
		return nil, fmt.Errorf("%s: no HTTP health check to take natsse's port from", name)
	}
	env := []string{"NATSSE_HTTP_ADDR=" + pl.listen(name, port)}
	for k, v := range s.Environment {
		if k == "NATSSE_HTTP_ADDR" {
			return nil, fmt.Errorf("%s sets NATSSE_HTTP_ADDR: the shape expects the health check's port", name)
		}
		env = append(env, k+"="+c.rewrite(name, v, pl))
	}
	slices.Sort(env)
	return env, nil
}

// cfgVar is an environment variable with a default in haproxy.cfg, as in
// "${NATSSE1_ADDR-natsse1:8080}".
var cfgVar = regexp.MustCompile(`\$\{([A-Z0-9_]+)-([^}]*)\}`)

// haproxy returns the path of the HAProxy config compose mounts for name,
// the environment that places its addresses: each variable's default (a
// compose hostname with a port, or ":port" to bind) rewritten, and the
// (container) port it binds.
func (c *composeFile) haproxy(name string, pl placement) (cfg string, env []string, bind int, err error) {
	s := c.Services[name]
	if len(s.Configs) != 1 {
		return "", nil, 0, fmt.Errorf("%s: want one config (haproxy.cfg), have %d", name, len(s.Configs))
	}
	file := c.Configs[s.Configs[0].Source].File
	if file == "" {
		return "", nil, 0, fmt.Errorf("%s: config %q is not a file", name, s.Configs[0].Source)
	}
	cfg, err = filepath.Abs(filepath.Join(c.dir, file))
	if err != nil {
		return "", nil, 0, err
	}
	data, err := os.ReadFile(cfg)
	if err != nil {
		return "", nil, 0, err
	}
	seen := map[string]bool{}
	for _, m := range cfgVar.FindAllStringSubmatch(string(data), -1) {
		if seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		value := m[2]
		if host, port, err := net.SplitHostPort(value); err == nil && host == "" {
			bind, _ = strconv.Atoi(port)
			value = pl.listen(name, bind)
		} else {
			value = c.rewrite(name, value, pl)
		}
		env = append(env, m[1]+"="+value)
	}
	if len(env) == 0 || bind == 0 {
		return "", nil, 0, fmt.Errorf("%s: no ${VAR-default} addresses (one of them \":port\" to bind): the process shape cannot place them", cfg)
	}
	return cfg, env, bind, nil
}

func portOf(hostport string) string {
	_, port, _ := net.SplitHostPort(hostport)
	return port
}

// loopback places the shape on 127.0.0.1, each container port at its own
// number plus the service's slot plus offset: what compose publishes
// (nats1's 4222, the load balancer's 8080) keeps its number.
type loopback struct{ offset int }

var loopbackSlots = map[string]int{"nats1": 0, "nats2": 1, "nats3": 2, "natsse1": 1, "natsse2": 2, "lb": 0}

func (l loopback) places(svc string) bool { _, ok := loopbackSlots[svc]; return ok }
func (l loopback) port(svc string, port int) string {
	return strconv.Itoa(port + loopbackSlots[svc] + l.offset)
}
func (l loopback) listen(svc string, port int) string {
	return net.JoinHostPort("127.0.0.1", l.port(svc, port))
}
func (l loopback) dial(svc string, port int) string  { return l.listen(svc, port) }
func (l loopback) probe(svc string, port int) string { return l.listen(svc, port) }
func (l loopback) source(string) string              { return "127.0.0.1" }
