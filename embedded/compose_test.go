package embedded_test

// compose.yaml and the Dockerfile cannot be run here (no Docker engine), so these
// tests check that they parse and say what docs/production.md promises. They live in
// embedded/ only because the repository root holds no Go package.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/natsse/natsse/service/natsversion"
)

// composeFile is the part of the Compose specification checked here. Fields that
// have a short and a long syntax are kept raw and read by the helpers below.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Configs  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"configs"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Build       any            `yaml:"build"`
	Command     any            `yaml:"command"`     // string or list
	Environment any            `yaml:"environment"` // map or list of K=V
	Ports       []any          `yaml:"ports"`       // "host:container" or {published, target}
	DependsOn   any            `yaml:"depends_on"`  // list or map of {condition}
	Healthcheck map[string]any `yaml:"healthcheck"`
	Networks    map[string]struct {
		IPv4 string `yaml:"ipv4_address"`
	} `yaml:"networks"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// env returns a service's environment as a map, whichever syntax it uses.
func (s composeService) env() map[string]string {
	out := map[string]string{}
	switch e := s.Environment.(type) {
	case map[string]any:
		for k, v := range e {
			out[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			out[k] = v
		}
	}
	return out
}

// published returns the host ports a service publishes.
func (s composeService) published() []string {
	var out []string
	for _, p := range s.Ports {
		switch p := p.(type) {
		case string: // [ip:]host:container[/proto]
			parts := strings.Split(strings.Split(p, "/")[0], ":")
			if len(parts) >= 2 {
				out = append(out, parts[len(parts)-2])
			}
		case map[string]any:
			out = append(out, fmt.Sprint(p["published"]))
		}
	}
	return out
}

// dependsOn returns the condition on which a service waits for another ("" when
// it does not depend on it, "service_started" for the list syntax).
func (s composeService) dependsOn(name string) string {
	switch d := s.DependsOn.(type) {
	case []any:
		for _, n := range d {
			if n == name {
				return "service_started"
			}
		}
	case map[string]any:
		if dep, ok := d[name].(map[string]any); ok {
			return fmt.Sprint(dep["condition"])
		}
	}
	return ""
}

// TestComposeServices: three clustered NATS servers with JetStream, two
// natsse replicas connected to all three with an R3 stream, and a load
// balancer in front that checks /readyz, as docs/production.md describes.
func TestComposeServices(t *testing.T) {
	c := readCompose(t)
	for _, name := range []string{"nats1", "nats2", "nats3", "natsse1", "natsse2", "lb"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("services %v, want %s", keys(c.Services), name)
		}
	}
	for _, name := range []string{"nats1", "nats2", "nats3"} {
		nats := c.Services[name]
		if !strings.HasPrefix(nats.Image, "nats:") {
			t.Errorf("%s image %q, want a nats: image", name, nats.Image)
		}
		command := " " + strings.Trim(fmt.Sprint(nats.Command), "[]") + " "
		for _, flag := range []string{" -js ", " -m 8222 ", " --name " + name + " ", " --cluster_name natsse ", " --cluster nats://0.0.0.0:6222 "} {
			if !strings.Contains(command, flag) {
				t.Errorf("%s command %q, want %q", name, command, strings.TrimSpace(flag))
			}
		}
		for _, peer := range []string{"nats1", "nats2", "nats3"} {
			if peer != name && !strings.Contains(command, "nats://"+peer+":6222") {
				t.Errorf("%s command %q, want a route to %s", name, command, peer)
			}
		}
	}
	if got := c.Services["nats1"].published(); !contains(got, "4222") {
		t.Errorf("nats1 publishes ports %v, want 4222 (for nats pub)", got)
	}

	lb := c.Services["lb"]
	lbIP := lb.Networks["default"].IPv4
	for _, name := range []string{"natsse1", "natsse2"} {
		natsse := c.Services[name]
		if natsse.Build == nil {
			t.Errorf("%s has no build: it must be built from the Dockerfile", name)
		}
		env := natsse.env()
		for k, want := range map[string]string{
			"NATS_URL":               "nats://nats1:4222,nats://nats2:4222,nats://nats3:4222",
			"NATSSE_ANONYMOUS":       "true",
			"NATSSE_STREAM_CREATE":   "true",
			"NATSSE_STREAM_REPLICAS": "3",
			"NATSSE_TRUSTED_PROXIES": lbIP,
		} {
			if env[k] != want || want == "" {
				t.Errorf("%s %s = %q, want %q", name, k, env[k], want)
			}
		}
		for _, nats := range []string{"nats1", "nats2", "nats3"} {
			if got := natsse.dependsOn(nats); got != "service_healthy" {
				t.Errorf("%s depends on %s with condition %q, want service_healthy", name, nats, got)
			}
		}
		if got := lb.dependsOn(name); got != "service_healthy" {
			t.Errorf("lb depends on %s with condition %q, want service_healthy", name, got)
		}
	}
	if got := lb.published(); !contains(got, "8080") {
		t.Errorf("lb publishes ports %v, want 8080", got)
	}
	// The config is a file of its own, which the process shape reads too.
	file := c.Configs["haproxy"].File
	if file != "./deploy/haproxy/haproxy.cfg" {
		t.Fatalf("configs.haproxy.file = %q, want ./deploy/haproxy/haproxy.cfg", file)
	}
	data, err := os.ReadFile("../" + file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	for _, want := range []string{
		"option httpchk GET /readyz", "http-check expect status 200", "option forwardfor", "timeout server 1h",
		"default-server check inter 2s fall 2 rise 2 on-marked-down shutdown-sessions",
		"option redispatch",
		`bind "${NATSSE_LB_BIND-:8080}"`,
		// compose's hostnames, unless the process shape says otherwise
		`server natsse1 "${NATSSE1_ADDR-natsse1:8080}"`,
		`server natsse2 "${NATSSE2_ADDR-natsse2:8080}"`,
		// never a 503 of HAProxy's own, on which EventSource gives up
		"option allbackups",
		`server natsse1-unready "${NATSSE1_ADDR-natsse1:8080}" backup no-check`,
		`server natsse2-unready "${NATSSE2_ADDR-natsse2:8080}" backup no-check`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("%s has no %q:\n%s", file, want, cfg)
		}
	}
}

// TestComposeNATSVersion: named cursors need nats-server 2.14 or later, so
// compose's image must be at least that.
func TestComposeNATSVersion(t *testing.T) {
	c := readCompose(t)
	for _, name := range []string{"nats1", "nats2", "nats3"} {
		image := c.Services[name].Image
		m := regexp.MustCompile(`^nats:(\d+\.\d+)(\.\d+)?`).FindStringSubmatch(image)
		if m == nil {
			t.Errorf("%s image %q: want nats:<major>.<minor>[...]", name, image)
			continue
		}
		// A minor-version tag gets the newest patch: .0 is the least it is.
		version := m[1] + ".0"
		if m[2] != "" {
			version = m[1] + m[2]
		}
		if !natsversion.AtLeast(version, natsversion.NamedCursors) {
			t.Errorf("%s image %q: named cursors need nats-server %s or later", name, image, natsversion.NamedCursors)
		}
	}
}

func TestComposeHealthchecks(t *testing.T) {
	c := readCompose(t)
	for name, want := range map[string]string{
		"nats1":   ":8222/healthz?js-enabled-only=true",
		"nats2":   ":8222/healthz?js-enabled-only=true",
		"nats3":   ":8222/healthz?js-enabled-only=true",
		"natsse1": "/usr/local/bin/natsse healthcheck",
		"natsse2": "/usr/local/bin/natsse healthcheck",
	} {
		test := fmt.Sprint(c.Services[name].Healthcheck["test"])
		if !strings.Contains(test, want) {
			t.Errorf("%s healthcheck test %s, want it to probe %s", name, test, want)
		}
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM golang:1\.26 AS build$`),
		regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 go build .*-o /natsse \./cmd/natsse$`),
		// natsse --version: the build arguments (task docker:build) reach -ldflags.
		regexp.MustCompile(`(?m)^ARG VERSION$`),
		regexp.MustCompile(`(?m)^ARG REVISION$`),
		regexp.MustCompile(`(?m)^RUN .*go build .*-ldflags="[^"]*-X main\.version=\$\{VERSION\} -X main\.revision=\$\{REVISION\}"`),
		// Shell-free: the health check is natsse's own, with its settings.
		regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static-debian12$`),
		regexp.MustCompile(`(?m)^USER 10001:10001$`),
		regexp.MustCompile(`(?m)^  CMD \["/usr/local/bin/natsse", "healthcheck"\]$`),
		regexp.MustCompile(`(?m)^EXPOSE 8080 4222$`),
		regexp.MustCompile(`(?m)^VOLUME /data$`),
		regexp.MustCompile(`(?m)NATSSE_STORE_DIR=/data`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/natsse"\]$`),
	} {
		if !want.MatchString(text) {
			t.Errorf("Dockerfile has no line matching %s", want)
		}
	}
}

// TestDockerRunExamples: the image's NATS listens on all interfaces inside
// the container, so every `docker run` example (in the Dockerfile, the
// README and docs/) that publishes 4222 passes credentials and publishes it on loopback
// only: an open port would let anyone read, forge and delete events.
func TestDockerRunExamples(t *testing.T) {
	runs := map[string]int{}
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	for _, file := range append([]string{"../Dockerfile", "../README.md"}, docs...) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// Join continued lines, commented ones too: a backslash, the newline, then "#" and blanks.
		text := regexp.MustCompile(`\\\n[#\s]*`).ReplaceAllString(string(data), " ")
		for line := range strings.Lines(text) {
			if !strings.Contains(line, "docker run ") {
				continue
			}
			runs[file]++
			if !strings.Contains(line, ":4222") {
				continue
			}
			if !strings.Contains(line, "-p 127.0.0.1:4222:4222") {
				t.Errorf("%s: %q publishes 4222 beyond loopback, want -p 127.0.0.1:4222:4222", file, strings.TrimSpace(line))
			}
			creds := strings.Contains(line, "NATSSE_EMBEDDED_USER=") && strings.Contains(line, "NATSSE_EMBEDDED_PASSWORD") ||
				strings.Contains(line, "NATSSE_EMBEDDED_TOKEN")
			if !creds {
				t.Errorf("%s: %q passes no NATSSE_EMBEDDED_USER and NATSSE_EMBEDDED_PASSWORD (or NATSSE_EMBEDDED_TOKEN)", file, strings.TrimSpace(line))
			}
		}
	}
	for _, file := range []string{"../Dockerfile", "../docs/production.md"} {
		if runs[file] == 0 {
			t.Errorf("%s has no docker run example", file)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
