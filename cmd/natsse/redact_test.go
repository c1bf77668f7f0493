package main

import "testing"

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"nats://a:4222,nats://b:4222":                      "nats://a:4222,nats://b:4222",
		"nats://alice:s3cret@a:4222":                       "nats://redacted@a:4222",
		"nats://s3cr3t-t0ken@a:4222, nats://bob:pw@b:4222": "nats://redacted@a:4222,nats://redacted@b:4222",
		"tls://x:y@[::1]:4222":                             "tls://redacted@[::1]:4222",
		"nats://127.0.0.1:4222":                            "nats://127.0.0.1:4222",
		"127.0.0.1:4222":                                   "nats://127.0.0.1:4222",
		"http://u:p@h/jwks?api_key=K&x=1#frag":             "http://redacted@h/jwks?api_key=redacted&x=redacted",
		"nats://alice:pw@[::1":                             "(a URL that does not parse)",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q; want %q", in, got, want)
		}
	}
}
