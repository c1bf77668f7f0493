package main

import (
	"slices"
	"strings"
	"testing"
)

func TestTrustedProxiesSetting(t *testing.T) {
	c, err := loadConfig(map[string]string{"NATSSE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,fd00::/8,172.16.5.4/12,::ffff:10.1.0.0/112"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.TrustedProxies {
		got = append(got, p.String())
	}
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "172.16.0.0/12", "10.1.0.0/16"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if c, _ := loadConfig(map[string]string{}); len(c.TrustedProxies) != 0 || c.MaxStreamsPerClient != 1000 {
		t.Errorf("defaults: trusted proxies %v, max streams per client %d; want none and 1000", c.TrustedProxies, c.MaxStreamsPerClient)
	}
	for name, env := range map[string]map[string]string{
		"NATSSE_TRUSTED_PROXIES":        {"NATSSE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.example.com"},
		"NATSSE_MAX_STREAMS_PER_CLIENT": {"NATSSE_MAX_STREAMS_PER_CLIENT": "0"},
		"NATSSE_TLS_KEY":                {"NATSSE_TLS_CERT": "cert.pem"},
	} {
		_, err := loadConfig(env)
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line naming %s", env, err, name)
		}
	}
}
