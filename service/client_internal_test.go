package service

import (
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
)

// TestClientAddr: the address per-client limits count, for peers and
// X-Forwarded-For chains that real proxies write.
func TestClientAddr(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler), cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"),
	}}}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no proxy", "203.0.113.1:5000", nil, "203.0.113.1"},
		{"untrusted peer's header ignored", "203.0.113.1:5000", []string{"198.51.100.1"}, "203.0.113.1"},
		{"trusted peer without header", "10.0.0.1:5000", nil, "10.0.0.1"},
		{"trusted peer", "10.0.0.1:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"forged entry left of the real one", "10.0.0.1:5000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops skipped", "10.0.0.1:5000", []string{"198.51.100.1, 10.9.9.9,10.8.8.8"}, "198.51.100.1"},
		{"several header lines, last one first", "10.0.0.1:5000", []string{"198.51.100.7", "198.51.100.1, 10.2.2.2"}, "198.51.100.1"},
		{"several header lines, all trusted on the right", "10.0.0.1:5000", []string{"198.51.100.7", "10.2.2.2"}, "198.51.100.7"},
		{"every hop trusted: the left-most", "10.0.0.1:5000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"garbage behind a trusted hop", "10.0.0.1:5000", []string{"nonsense, 10.2.2.2"}, "10.2.2.2"},
		{"garbage left of the client", "10.0.0.1:5000", []string{"nonsense, 198.51.100.1"}, "198.51.100.1"},
		{"entry with a port", "10.0.0.1:5000", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"IPv6 entry in brackets", "10.0.0.1:5000", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"IPv6 entry with a port", "10.0.0.1:5000", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"IPv6 trusted peer", "[fd00::1]:5000", []string{"2001:db8::2"}, "2001:db8::2"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.1]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{"X-Forwarded-For": tt.xff}}
		if got := s.clientAddr(r); got.String() != tt.want {
			t.Errorf("%s: RemoteAddr %s, X-Forwarded-For %q: got %s, want %s", tt.name, tt.remote, tt.xff, got, tt.want)
		}
	}
}
