// Package embedded runs a real nats-server with JetStream inside the process, for
// natsse's embedded mode and for tests. Start returns only once the server accepts
// clients and JetStream is enabled, or fails with nothing left running; clients of the
// process connect in-process, and an optional TCP listener serves the nats CLI and SDK
// publishers. Optional credentials (a user and password, or a token) are required
// of every client, in-process ones included; Connect supplies them.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const (
	// defaultServerName names the server when Options.ServerName is empty.
	defaultServerName = "natsse"
	// maxPayload is the largest message the server accepts: nats-server's own
	// default, set explicitly so that it does not change under us.
	maxPayload = 1 << 20
	// readyPoll is how long one readiness probe waits before ctx is checked again.
	readyPoll = 50 * time.Millisecond
)

// Options configures Start.
type Options struct {
	// StoreDir is the JetStream file store directory (required; created if missing).
	StoreDir string
	// Listen is the NATS client address "host:port"; port 0 picks a free one; "-" or
	// "" means in-process only (no TCP listener at all: server.Options.DontListen).
	Listen string
	// ServerName names the server (default "natsse").
	ServerName string
	// User and Password, when set, are required of every client. Set both or
	// neither; they exclude Token. The password is plain text: Connect sends it
	// as given (a bcrypt hash here would lock out the process's own clients).
	User, Password string
	// Token, when set, is required of every client instead of a user and password.
	Token string
	// Logger receives nats-server's log lines (nil: discard). Notices, debug and
	// trace lines are logged at debug level, warnings at warn, errors and fatal
	// errors at error level.
	Logger *slog.Logger
}

// Server is a running embedded nats-server.
type Server struct {
	ns   *server.Server
	url  string
	logs *logAdapter
	auth []nats.Option // the credentials Connect sends
}

// Start starts the server and waits until it accepts clients and JetStream is
// ready; ctx bounds the wait. On failure nothing keeps running.
func Start(ctx context.Context, opts Options) (*Server, error) {
	sopts, err := serverOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded: store dir: %w", err)
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	logs := newLogAdapter(opts.Logger)
	ns.SetLoggerV2(logs, logs.debug, false, false)

	ns.Start() // returns once started; the server's goroutines end in Shutdown
	if err := waitReady(ctx, ns, logs); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, err
	}
	s := &Server{ns: ns, logs: logs, auth: clientAuth(opts)}
	if addr, ok := ns.Addr().(*net.TCPAddr); ok && !sopts.DontListen {
		s.url = clientURL(sopts.Host, addr.Port)
	}
	return s, nil
}

// clientURL is the URL a local client dials: a wildcard host ("0.0.0.0", "::")
// becomes the loopback address of its family.
func clientURL(host string, port int) string {
	switch host {
	case "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// serverOptions translates Options into nats-server's options.
func serverOptions(opts Options) (*server.Options, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("embedded: StoreDir is required")
	}
	name := opts.ServerName
	if name == "" {
		name = defaultServerName
	}
	switch {
	case (opts.User == "") != (opts.Password == ""):
		return nil, errors.New("embedded: set both User and Password, or neither")
	case opts.Token != "" && opts.User != "":
		return nil, errors.New("embedded: set a Token or a User and Password, not both")
	}
	sopts := &server.Options{
		ServerName:    name,
		JetStream:     true,
		StoreDir:      opts.StoreDir,
		NoSigs:        true,
		MaxPayload:    maxPayload,
		Username:      opts.User,
		Password:      opts.Password,
		Authorization: opts.Token,
	}
	if opts.Listen == "" || opts.Listen == "-" {
		sopts.DontListen = true
		return sopts, nil
	}
	host, portText, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded: listen address %q: %w", opts.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("embedded: listen address %q: invalid port", opts.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT // for nats-server, port 0 means its default, 4222
	}
	if host == "" {
		host = "0.0.0.0" // ":4222" listens everywhere, as net.Listen would
	}
	sopts.Host, sopts.Port = host, port
	return sopts, nil
}

// clientAuth is what a client of the process sends to authenticate.
func clientAuth(opts Options) []nats.Option {
	switch {
	case opts.User != "":
		return []nats.Option{nats.UserInfo(opts.User, opts.Password)}
	case opts.Token != "":
		return []nats.Option{nats.Token(opts.Token)}
	}
	return nil
}

// waitReady polls the server until it accepts clients, a fatal error was logged
// (nats-server reports a busy port or a broken store that way), or ctx ends.
func waitReady(ctx context.Context, ns *server.Server, logs *logAdapter) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("embedded: waiting for the server: %w", err)
		}
		if err := logs.fatalErr(); err != nil {
			return err
		}
		if ns.ReadyForConnections(readyPoll) {
			break
		}
	}
	if err := logs.fatalErr(); err != nil {
		return err
	}
	if !ns.JetStreamEnabled() {
		return errors.New("embedded: JetStream is not enabled")
	}
	return nil
}

// ClientURL is "nats://host:port" of the TCP listener (the real port when 0 was
// asked; a wildcard host is reported as loopback), "" when in-process only.
func (s *Server) ClientURL() string { return s.url }

// Connect connects in-process (nats.InProcessServer) with the server's
// credentials, adding opts (which may override them).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.InProcessServer(s.ns)}, s.auth...)
	all = append(all, opts...)
	nc, err := nats.Connect("", all...)
	if err != nil {
		return nil, fmt.Errorf("embedded: connect: %w", err)
	}
	return nc, nil
}

// NATS returns the underlying *server.Server (tests use it).
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server and waits for it to finish (idempotent).
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
