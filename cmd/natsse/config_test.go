package main

import (
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
	if c.HTTPAddr != ":8080" || c.EmbeddedListen != "127.0.0.1:4222" || c.StoreDir != "./data" || c.Stream != "EVENTS" ||
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
	}
	for name, env := range cases {
		_, err := loadConfig(env)
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line naming %s", env, err, name)
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
