package embedded_test

// compose.yaml and the Dockerfile cannot be run here (no Docker engine), so these
// tests check that they parse and say what the README promises. They live in
// embedded/ only because the repository root holds no Go package.

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of the Compose specification checked here. Fields that
// have a short and a long syntax are kept raw and read by the helpers below.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Build       any            `yaml:"build"`
	Command     any            `yaml:"command"`     // string or list
	Environment any            `yaml:"environment"` // map or list of K=V
	Ports       []any          `yaml:"ports"`       // "host:container" or {published, target}
	DependsOn   any            `yaml:"depends_on"`  // list or map of {condition}
	Healthcheck map[string]any `yaml:"healthcheck"`
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

func TestComposeServices(t *testing.T) {
	c := readCompose(t)
	nats, ok := c.Services["nats"]
	if !ok {
		t.Fatalf("services %v, want one named nats", keys(c.Services))
	}
	natsse, ok := c.Services["natsse"]
	if !ok {
		t.Fatalf("services %v, want one named natsse", keys(c.Services))
	}

	if !strings.HasPrefix(nats.Image, "nats:") {
		t.Errorf("nats image %q, want a nats: image", nats.Image)
	}
	if natsse.Build == nil {
		t.Error("natsse has no build: it must be built from the Dockerfile")
	}

	env := natsse.env()
	if got := env["NATS_URL"]; !strings.Contains(got, "nats://nats:") {
		t.Errorf("natsse NATS_URL = %q, want it pointing at the nats service", got)
	}
	if got := env["NATSSE_ANONYMOUS"]; got != "true" {
		t.Errorf("natsse NATSSE_ANONYMOUS = %q, want true", got)
	}
	if got := env["NATSSE_STREAM_CREATE"]; got != "true" {
		t.Errorf("natsse NATSSE_STREAM_CREATE = %q, want true", got)
	}

	if got := natsse.dependsOn("nats"); got != "service_healthy" {
		t.Errorf("natsse depends on nats with condition %q, want service_healthy", got)
	}

	for name, want := range map[string]string{"nats": "4222", "natsse": "8080"} {
		if got := c.Services[name].published(); !contains(got, want) {
			t.Errorf("%s publishes ports %v, want %s", name, got, want)
		}
	}
}

func TestComposeHealthchecks(t *testing.T) {
	c := readCompose(t)
	for name, want := range map[string]string{
		"nats":   ":8222/healthz?js-enabled-only=true",
		"natsse": ":8080/readyz",
	} {
		test := fmt.Sprint(c.Services[name].Healthcheck["test"])
		if !strings.Contains(test, want) {
			t.Errorf("%s healthcheck test %s, want it to probe %s", name, test, want)
		}
	}
	// The monitoring port must be on for the health check, JetStream for natsse.
	command := " " + strings.Trim(fmt.Sprint(c.Services["nats"].Command), "[]") + " "
	for _, flag := range []string{" -js ", " -m 8222 "} {
		if !strings.Contains(command, flag) {
			t.Errorf("nats command %q, want flag %q", command, strings.TrimSpace(flag))
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
		regexp.MustCompile(`(?m)^USER natsse$`),
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
