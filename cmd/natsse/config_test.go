package main

import (
	"maps"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/natsse/natsse/service"
)

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.EmbeddedListen != "127.0.0.1:4222" || c.StoreDir != "./data" || strings.Join(c.Streams, ",") != "EVENTS" ||
		c.Heartbeat != 15*time.Second || c.Retry != 2*time.Second || c.StreamMaxBytes != 1<<30 || !c.embedded() ||
		c.NATSPing != service.DefaultNATSPing {
		t.Errorf("defaults: %+v", c)
	}
}

// TestLoadConfigErrorsNameTheVariable: a bad setting stops startup with one
// line that names the variable.
func TestLoadConfigErrorsNameTheVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"NATSSE_HEARTBEAT":        {"NATSSE_HEARTBEAT": "banana"},
		"NATSSE_STREAM_MAX_BYTES": {"NATSSE_STREAM_MAX_BYTES": "lots"},
		"NATSSE_RING_EVENTS":      {"NATSSE_RING_EVENTS": "0"},
		"NATSSE_LOG_FORMAT":       {"NATSSE_LOG_FORMAT": "xml"},
		"NATSSE_LOG_LEVEL":        {"NATSSE_LOG_LEVEL": "loud"},
		"NATSSE_BASE_PATH":        {"NATSSE_BASE_PATH": "gw"},
		"NATSSE_SUBJECTS":         {"NATSSE_SUBJECTS": "events..x"},
		"NATSSE_STREAM_CREATE":    {"NATSSE_STREAM_CREATE": "maybe"},
		"NATSSE_ANONYMOUS":        {"NATS_URL": "nats://127.0.0.1:4222"},
		"NATSSE_MAX_DURABLES":     {"NATSSE_MAX_DURABLES": "0"},
		"NATSSE_DURABLE_TTL":      {"NATSSE_DURABLE_TTL": "0s"},
		"NATSSE_NATS_PING":        {"NATSSE_NATS_PING": "0s"},
		"NATSSE_PUBLISH":          {"NATSSE_PUBLISH": "everyone"},
		"NATSSE_UI":               {"NATSSE_UI": "sometimes"},
		"NATSSE_STREAM":           {"NATSSE_STREAM": "ORDERS,*"},
	}
	for name, env := range cases {
		_, err := loadConfig(env)
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line naming %s", env, err, name)
		}
	}
}

// TestSeveralStreamsConfig: a list or * serves several streams, which
// natsse does not create (it creates one named stream): asking it to is
// refused at start, naming the variable.
func TestSeveralStreamsConfig(t *testing.T) {
	for _, v := range []string{"ORDERS,CHAT", "*"} {
		c, err := loadConfig(map[string]string{"NATSSE_STREAM": v})
		if err != nil {
			t.Fatalf("NATSSE_STREAM=%s: %v", v, err)
		}
		if sc := serviceConfig(c, nil); sc.StreamCreate || strings.Join(sc.Streams, ",") != v {
			t.Errorf("NATSSE_STREAM=%s: create %v, streams %q; want no creation", v, sc.StreamCreate, sc.Streams)
		}
		_, err = loadConfig(map[string]string{"NATSSE_STREAM": v, "NATSSE_STREAM_CREATE": "true"})
		if err == nil || !strings.Contains(err.Error(), "NATSSE_STREAM_CREATE") {
			t.Errorf("NATSSE_STREAM=%s with NATSSE_STREAM_CREATE=true: got %v, want a refusal naming NATSSE_STREAM_CREATE", v, err)
		}
	}
	for _, v := range []string{"ORDERS,ORDERS", "ORD.ERS", "A,,B"} {
		if _, err := loadConfig(map[string]string{"NATSSE_STREAM": v}); err == nil || !strings.Contains(err.Error(), "NATSSE_STREAM") {
			t.Errorf("NATSSE_STREAM=%s: got %v, want a refusal naming NATSSE_STREAM", v, err)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]byteSize{"1GiB": 1 << 30, "64MiB": 64 << 20, "512KB": 512e3, "1048576": 1 << 20, "16 KiB": 16 << 10} {
		var b byteSize
		if err := b.UnmarshalText([]byte(in)); err != nil || b != want {
			t.Errorf("%q: got %d, %v; want %d", in, b, err, want)
		}
	}
}

// TestLoadConfigEmbeddedListen: the embedded NATS listens beyond loopback
// only with credentials; without them startup stops with one line that names
// the variable and what to change. Loopback needs none (the default setup).
func TestLoadConfigEmbeddedListen(t *testing.T) {
	const pw = "pw-not-in-errors"
	for _, tc := range []struct {
		name string // the variable the error must name
		env  map[string]string
	}{
		{"NATSSE_EMBEDDED_LISTEN", map[string]string{"NATSSE_EMBEDDED_LISTEN": "0.0.0.0:4222"}},
		{"NATSSE_EMBEDDED_LISTEN", map[string]string{"NATSSE_EMBEDDED_LISTEN": "[::]:4222"}},
		{"NATSSE_EMBEDDED_LISTEN", map[string]string{"NATSSE_EMBEDDED_LISTEN": ":4222"}},
		{"NATSSE_EMBEDDED_LISTEN", map[string]string{"NATSSE_EMBEDDED_LISTEN": "192.0.2.7:4222"}},
		{"NATSSE_EMBEDDED_LISTEN", map[string]string{"NATSSE_EMBEDDED_LISTEN": "[::ffff:10.0.0.1]:4222"}},
		{"NATSSE_EMBEDDED_LISTEN", map[string]string{"NATSSE_EMBEDDED_LISTEN": "nats.example:0"}},
		{"NATSSE_EMBEDDED_LISTEN", map[string]string{"NATSSE_EMBEDDED_LISTEN": "localhost"}},      // no port
		{"NATSSE_EMBEDDED_LISTEN", map[string]string{"NATSSE_EMBEDDED_LISTEN": "127.0.0.1:http"}}, // not a number
		{"NATSSE_EMBEDDED_PASSWORD", map[string]string{"NATSSE_EMBEDDED_USER": "alice"}},
		{"NATSSE_EMBEDDED_USER", map[string]string{"NATSSE_EMBEDDED_PASSWORD": pw}},
		{"NATSSE_EMBEDDED_TOKEN", map[string]string{"NATSSE_EMBEDDED_USER": "alice", "NATSSE_EMBEDDED_PASSWORD": pw, "NATSSE_EMBEDDED_TOKEN": pw}},
	} {
		_, err := loadConfig(tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.name) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line naming %s", tc.env, err, tc.name)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%v: the error shows the password: %v", tc.env, err)
		}
		if _, port, _ := net.SplitHostPort(tc.env["NATSSE_EMBEDDED_LISTEN"]); port == "4222" || port == "0" {
			if want := "set NATSSE_EMBEDDED_USER and NATSSE_EMBEDDED_PASSWORD (or NATSSE_EMBEDDED_TOKEN)"; !strings.Contains(err.Error(), want) {
				t.Errorf("%v: %v, want it to say %q", tc.env, err, want)
			}
		}
	}

	allowed := []map[string]string{
		{},
		{"NATSSE_EMBEDDED_LISTEN": "127.0.0.1:4222"},
		{"NATSSE_EMBEDDED_LISTEN": "127.8.9.10:0"},
		{"NATSSE_EMBEDDED_LISTEN": "[::1]:4222"},
		{"NATSSE_EMBEDDED_LISTEN": "localhost:4222"},
		{"NATSSE_EMBEDDED_LISTEN": "-"},
		{"NATSSE_EMBEDDED_LISTEN": "0.0.0.0:4222", "NATSSE_EMBEDDED_USER": "alice", "NATSSE_EMBEDDED_PASSWORD": pw},
		{"NATSSE_EMBEDDED_LISTEN": ":4222", "NATSSE_EMBEDDED_TOKEN": pw},
		// Connected mode runs no NATS server: the embedded settings do not matter.
		{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_ANONYMOUS": "true", "NATSSE_EMBEDDED_LISTEN": "0.0.0.0:4222"},
	}
	for _, env := range allowed {
		if _, err := loadConfig(env); err != nil {
			t.Errorf("%v: %v, want it accepted", env, err)
		}
	}
}

// TestDockerfileEnvironmentNeedsCredentials: the image's own environment never
// starts an embedded NATS that listens beyond loopback without credentials,
// and bakes no password or token into the image (everyone who pulls it could
// read them).
func TestDockerfileEnvironmentNeedsCredentials(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	env := dockerfileEnv(string(data))
	if len(env) == 0 {
		t.Fatal("the Dockerfile sets no ENV")
	}
	for _, k := range []string{"NATSSE_EMBEDDED_PASSWORD", "NATSSE_EMBEDDED_TOKEN", "NATSSE_JWT_SECRET"} {
		if _, ok := env[k]; ok {
			t.Errorf("the Dockerfile sets %s: a secret in the image is known to all who pull it", k)
		}
	}
	cfg, err := loadConfig(env)
	if err == nil {
		if l := cfg.EmbeddedListen; l != "-" {
			host, _, _ := net.SplitHostPort(l)
			if !loopbackHost(host) && cfg.EmbeddedUser == "" && cfg.EmbeddedToken == "" {
				t.Errorf("the image starts with NATSSE_EMBEDDED_LISTEN=%s and no credentials", l)
			}
		}
	} else if !strings.Contains(err.Error(), "NATSSE_EMBEDDED_LISTEN") {
		t.Errorf("the image's environment %v: %v, want it refused only for NATS credentials", env, err)
	}
	for _, creds := range []map[string]string{
		{"NATSSE_EMBEDDED_USER": "natsse", "NATSSE_EMBEDDED_PASSWORD": "pw"},
		{"NATSSE_EMBEDDED_TOKEN": "tok"},
	} {
		maps.Copy(creds, env)
		if _, err := loadConfig(creds); err != nil {
			t.Errorf("the image's environment with credentials %v: %v", creds, err)
		}
	}
}

// dockerfileEnv reads the KEY=VALUE pairs of a Dockerfile's ENV instructions
// (continuation lines joined; values without quotes or spaces, as ours are).
func dockerfileEnv(dockerfile string) map[string]string {
	env := map[string]string{}
	joined := strings.ReplaceAll(dockerfile, "\\\n", " ")
	for line := range strings.Lines(joined) {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "ENV" {
			continue
		}
		for _, kv := range fields[1:] {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	return env
}

// TestLoadConfigPublish: who may publish and whether the page is served
// depend on the mode unless set; NATSSE_PUBLISH=token needs a key source.
func TestLoadConfigPublish(t *testing.T) {
	connected := map[string]string{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_ANONYMOUS": "true"}
	for _, tc := range []struct {
		env     map[string]string
		publish service.PublishMode
		ui      bool
	}{
		{map[string]string{}, service.PublishAnonymous, true},
		{connected, service.PublishOff, false},
		{map[string]string{"NATSSE_PUBLISH": "off", "NATSSE_UI": "false"}, service.PublishOff, false},
		{map[string]string{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_ANONYMOUS": "true", "NATSSE_PUBLISH": "anonymous", "NATSSE_UI": "true"}, service.PublishAnonymous, true},
		{map[string]string{"NATSSE_PUBLISH": "token", "NATSSE_JWT_SECRET": "0123456789abcdef0123456789abcdef"}, service.PublishToken, true},
	} {
		c, err := loadConfig(tc.env)
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if sc := serviceConfig(c, nil); sc.Publish != tc.publish || sc.UI != tc.ui {
			t.Errorf("%v: publish %q ui %v, want %q %v", tc.env, sc.Publish, sc.UI, tc.publish, tc.ui)
		}
	}
	_, err := loadConfig(map[string]string{"NATSSE_PUBLISH": "token"})
	if err == nil || !strings.Contains(err.Error(), "NATSSE_PUBLISH=token") || !strings.Contains(err.Error(), "NATSSE_JWT_SECRET") {
		t.Errorf("NATSSE_PUBLISH=token without a key source: %v, want it refused, naming what to set", err)
	}
}

// negative finds a negative number in a message.
var negative = regexp.MustCompile(`(^|[^0-9A-Za-z])-[0-9]`)

// TestLoadConfigRefusesBadStreamAndLimits: settings that used to leave
// natsse half-started, silently wrong, or blaming another variable are
// refused in one line that names their own variable, with no negative
// number from an overflow.
func TestLoadConfigRefusesBadStreamAndLimits(t *testing.T) {
	for _, c := range []struct{ name, value string }{
		{"NATSSE_STREAM_MAX_AGE", "-1h"},
		{"NATSSE_STREAM", "bad.name"},
		{"NATSSE_STREAM", "has space"},
		{"NATSSE_STREAM_REPLICAS", "3"}, // embedded: one node
		{"NATSSE_STREAM_SUBJECTS", ">"},
		{"NATSSE_STREAM_SUBJECTS", "*.>"},
		{"NATSSE_STREAM_MAX_BYTES", "9007199254740993KiB"},
		{"NATSSE_REPLAY_WAIT", "-1s"},
		{"NATSSE_REPLAY_CONCURRENCY", "100000"},
		{"NATSSE_RING_BYTES", "8589934592GiB"},
		{"NATSSE_BASE_PATH", "/ü"},
		{"NATSSE_BASE_PATH", "/a b"},
		{"NATSSE_BASE_PATH", "/a?b"},
		{"NATSSE_BASE_PATH", "/a%2Fb"},
		{"NATSSE_CORS_ORIGINS", "https://app.example.com/"},
		{"NATSSE_CORS_ORIGINS", "app.example.com"},
		{"NATSSE_CORS_ORIGINS", "localhost:3000"},
		{"NATSSE_CORS_ORIGINS", "https://app.example.com/sse"},
		{"NATSSE_CORS_ORIGINS", "https://App.example.com"},
		{"NATSSE_CORS_ORIGINS", "https://a.example.com, https://b.example.com"},
		{"NATSSE_SUBJECTS", "orders.>"}, // embedded: the stream natsse creates holds events.>
	} {
		_, err := loadConfig(map[string]string{c.name: c.value})
		if err == nil || !strings.HasPrefix(err.Error(), c.name+":") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%s: got %v, want one line starting with %s:", c.name, c.value, err, c.name)
			continue
		}
		if negative.MatchString(err.Error()) && !strings.Contains(c.value, "-") {
			t.Errorf("%s=%s: %v prints a negative number", c.name, c.value, err)
		}
	}
	for _, env := range []map[string]string{
		{"NATSSE_CORS_ORIGINS": "*"},
		{"NATSSE_CORS_ORIGINS": "https://app.example.com,http://localhost:3000,http://[::1]:8080"},
		{"NATSSE_SUBJECTS": "events.a,events.b.>"},
		// Connected mode without creating: checked against the stream itself.
		{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_ANONYMOUS": "true", "NATSSE_SUBJECTS": "orders.>"},
	} {
		if _, err := loadConfig(env); err != nil {
			t.Errorf("%v: %v, want it accepted", env, err)
		}
	}
	if _, err := loadConfig(map[string]string{"NATS_URL": "nats://127.0.0.1:4222", "NATSSE_ANONYMOUS": "true", "NATSSE_STREAM_REPLICAS": "3"}); err != nil {
		t.Errorf("connected mode with NATSSE_STREAM_REPLICAS=3: %v", err)
	}
}
