package service

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address that per-client limits count. It is the peer's
// address, unless the peer is a trusted proxy: then it is the right-most
// X-Forwarded-For entry that is not itself a trusted proxy (nginx's
// real_ip_recursive). Entries further left were written by the client, or
// by proxies nobody vouches for, and are never believed.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !s.trusted(peer) {
		if len(s.cfg.TrustedProxies) == 0 && r.Header.Get("X-Forwarded-For") != "" {
			s.xffIgnored.Do(func() {
				s.log.Warn("X-Forwarded-For ignored: per-client limits count the peer's address; behind a proxy, set NATSSE_TRUSTED_PROXIES to its addresses",
					"peer", peer.String())
			})
		}
		return peer
	}
	client := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		entries := strings.Split(hops[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			addr, ok := parseHop(entries[j])
			if !ok {
				// What a trusted hop reported cannot be read: the last
				// address known for sure is the client.
				return client
			}
			client = addr
			if !s.trusted(addr) {
				return client
			}
		}
	}
	return client // every hop is a trusted proxy: the left-most one
}

func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// peerAddr reads net/http's RemoteAddr ("ip:port"); the zero Addr when it
// is something else, so that such peers share one count.
func peerAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// parseHop reads one X-Forwarded-For entry: an address, with a port or in
// brackets as some proxies write them.
func parseHop(entry string) (netip.Addr, bool) {
	entry = strings.TrimSpace(entry)
	if a, err := netip.ParseAddr(entry); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(entry); err == nil {
		return ap.Addr().Unmap(), true
	}
	if inner, ok := strings.CutPrefix(entry, "["); ok {
		if a, err := netip.ParseAddr(strings.TrimSuffix(inner, "]")); err == nil && strings.HasSuffix(inner, "]") {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
