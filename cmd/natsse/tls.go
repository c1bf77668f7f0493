package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
)

// serverTLS loads the certificate of NATSSE_TLS_CERT and NATSSE_TLS_KEY at
// startup, so that a bad file stops natsse before it listens; nil when TLS
// is off.
func serverTLS(cfg config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("NATSSE_TLS_CERT=%s, NATSSE_TLS_KEY=%s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// serve serves plain HTTP, or HTTPS when srv has a TLS configuration.
// ServeTLS offers HTTP/2 by ALPN (net/http adds "h2" to NextProtos), so a
// browser holds all its streams to natsse on one connection instead of at
// most six HTTP/1.1 ones.
func serve(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}
