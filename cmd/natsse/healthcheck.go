package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthTimeout bounds `natsse healthcheck`: container runtimes kill a
// check that overruns their own timeout (Docker's default is 30 s).
const healthTimeout = 3 * time.Second

// healthcheck asks the local instance's /readyz with the same settings
// natsse serves with (address, TLS, base path), for container health checks
// in images that have no shell, wget or curl. It returns nil on 200.
func healthcheck(ctx context.Context, cfg config, stdout io.Writer) error {
	url := readyzURL(cfg)
	client := &http.Client{Timeout: healthTimeout, Transport: &http.Transport{
		// The check dials this very process over loopback: its certificate
		// names the public host, not 127.0.0.1, and nothing is secret here.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		Proxy:           nil,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	why := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s: %d %s", url, resp.StatusCode, why)
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, why)
	return nil
}

// readyzURL is where this process answers /readyz: its HTTP address, with a
// wildcard host dialled on loopback.
func readyzURL(cfg config) string {
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		host, port = "", "8080"
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + cfg.BasePath + "/readyz"
}
