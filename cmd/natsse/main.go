// Command natsse serves NATS JetStream messages to browsers as Server-Sent
// Events. With no NATS_URL it runs an embedded NATS server with JetStream.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsse/natsse/embedded"
	"github.com/natsse/natsse/service"
)

// version and revision are set at build time, as the Taskfile and the
// Dockerfile do:
//
//	go build -ldflags "-X main.version=$(git describe --tags --always --dirty) -X main.revision=$(git rev-parse HEAD)" ./cmd/natsse
//
// Left empty, they come from the build information Go embeds (see buildInfo).
var (
	version  = ""
	revision = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runMain(ctx, os.Args[1:], environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "natsse:", err)
		os.Exit(1)
	}
}

func runMain(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	if len(args) == 1 && args[0] == "healthcheck" {
		cfg, err := loadConfig(env)
		if err != nil {
			return err
		}
		return healthcheck(ctx, cfg, stdout)
	}
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			usage(stdout)
			return nil
		case "-version", "--version":
			fmt.Fprintln(stdout, "natsse", versionString())
			return nil
		default:
			return fmt.Errorf("unknown argument %q: natsse is configured by environment variables (natsse -h lists them); its one command is healthcheck", a)
		}
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	warnUnknownSettings(log, env)
	return run(ctx, cfg, log)
}

func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// buildInfo returns natsse's version and revision: the -ldflags values when
// set, else the module version and VCS revision Go recorded in the binary.
// A build with -buildvcs=false (or outside a repository, or from a Docker
// context without .git) records no revision: then "unknown revision".
func buildInfo() (ver, rev string) {
	ver, rev = version, revision
	bi, ok := debug.ReadBuildInfo()
	if ver == "" && ok && bi.Main.Version != "" {
		ver = bi.Main.Version
	}
	if ver == "" {
		ver = "(devel)"
	}
	if rev == "" && ok {
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && modified {
			rev += "-dirty"
		}
	}
	if rev == "" {
		rev = "unknown revision"
	}
	return ver, rev
}

// versionString is what natsse --version prints after "natsse ", e.g.
// "v0.3.0-2-g6ca687b, revision 6ca687b…, go1.26.8".
func versionString() string {
	ver, rev := buildInfo()
	if rev != "unknown revision" {
		rev = "revision " + rev
	}
	return ver + ", " + rev + ", " + runtime.Version()
}

// run serves until ctx ends, then shuts down within cfg.ShutdownTimeout.
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	// Stopped last, after NATS: the watchdog covers the whole shutdown.
	var watchdog *time.Timer
	defer func() {
		if watchdog != nil {
			watchdog.Stop()
		}
	}()
	tlsConfig, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	nc, natsURL, stopNATS, health, err := connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopNATS()

	scfg := serviceConfig(cfg, log)
	scfg.StoreHealth = health
	scfg.Version, scfg.Revision = buildInfo()
	if scfg.Revision == "unknown revision" {
		scfg.Revision = ""
	}
	if scfg.JWT, err = cfg.jwtConfig(); err != nil {
		return err
	}
	svc, err := service.New(scfg, nc)
	if err != nil {
		return err
	}
	hubCtx, stopHub := context.WithCancel(context.Background())
	var hubDone sync.WaitGroup
	hubDone.Go(func() { svc.Run(hubCtx) })
	defer func() { stopHub(); hubDone.Wait() }()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("NATSSE_HTTP_ADDR: %w", err)
	}
	srv := &http.Server{
		Handler:           svc,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.IdleTimeout,
		ConnState:         svc.ConnState,
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		TLSConfig:         tlsConfig,
	}
	served := make(chan error, 2)
	go func() { served <- serve(srv, ln) }()
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("NATSSE_METRICS_ADDR: %w", err)
		}
		msrv := &http.Server{Handler: metricsOnly(svc.MetricsHandler()), ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: cfg.IdleTimeout, ConnState: svc.ConnState}
		go func() { served <- msrv.Serve(mln) }()
		defer msrv.Close()
		log.Info("metrics", "addr", mln.Addr().String())
	}
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	if cfg.embedded() && scfg.StreamCreate {
		// The embedded stream natsse creates is there in milliseconds: say
		// "ready" when it is, or stop when it cannot be.
		select {
		case <-svc.Started():
		case err := <-svc.Failed():
			return err
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
		}
	}
	warnAccess(log, cfg)
	banner(log, cfg, ln.Addr().String(), natsURL, svc)

	select {
	case err := <-served:
		return fmt.Errorf("http: %w", err)
	case err := <-svc.Failed():
		// A setting that cannot work with the stream: one line and exit 1,
		// not a wait that never ends (docs/configuration.md).
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: closing streams", "timeout", cfg.ShutdownTimeout.String())
	// The process is gone within the timeout whatever clients or NATS do
	// (docs/operations.md, "Limits"): streams get half of it to take their
	// final flush, then are cut; HTTP gets up to three quarters; NATS and
	// the store the rest, and the watchdog ends what is left.
	start := time.Now()
	watchdog = time.AfterFunc(cfg.ShutdownTimeout, func() {
		log.Error("shutdown timeout passed: exiting now", "streams_open", svc.OpenStreams())
		os.Exit(1)
	})
	drainCtx, cancelDrain := context.WithDeadline(context.Background(), start.Add(cfg.ShutdownTimeout/2))
	defer cancelDrain()
	sctx, cancel := context.WithDeadline(context.Background(), start.Add(cfg.ShutdownTimeout*3/4))
	defer cancel()
	if err := svc.Drain(drainCtx); err != nil {
		log.Warn("drain: closing the rest at once", "err", err)
		svc.Close()
		if err := svc.Drain(sctx); err != nil { // now only waits for them to end
			log.Warn("streams still open after they were cut", "err", err)
		}
	}
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	log.Info("stopped", "streams_open", svc.OpenStreams())
	return nil
}

// metricsOnly answers /metrics and nothing else.
func metricsOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// connect starts the embedded server or dials the configured cluster;
// health is the embedded server's health check (nil when connected).
func connect(ctx context.Context, cfg config, log *slog.Logger) (nc *nats.Conn, url string, stop func(), health func() error, err error) {
	opts := []nats.Option{
		nats.Name("natsse"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if !c.IsClosed() {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	opts = append(opts, service.ConnOptions(cfg.NATSPing)...)
	if cfg.embedded() {
		srv, err := embedded.Start(ctx, embedded.Options{
			StoreDir: cfg.StoreDir, Listen: cfg.EmbeddedListen, Logger: log.With("component", "nats-server"),
			User: cfg.EmbeddedUser, Password: cfg.EmbeddedPassword, Token: cfg.EmbeddedToken,
		})
		if err != nil {
			return nil, "", nil, nil, fmt.Errorf("embedded NATS (NATSSE_EMBEDDED_LISTEN=%s, NATSSE_STORE_DIR=%s): %w", cfg.EmbeddedListen, cfg.StoreDir, err)
		}
		nc, err := srv.Connect(opts...)
		if err != nil {
			srv.Shutdown()
			return nil, "", nil, nil, err
		}
		return nc, srv.ClientURL(), func() { nc.Close(); srv.Shutdown() }, srv.Healthy, nil
	}
	opts = append(opts, nats.RetryOnFailedConnect(true))
	auth, err := natsAuth(cfg)
	if err != nil {
		return nil, "", nil, nil, err
	}
	opts = append(opts, auth...)
	nc, err = nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, "", nil, nil, fmt.Errorf("NATS_URL: %w", err)
	}
	if !nc.IsConnected() {
		log.Warn("NATS not reachable yet; retrying in the background", "url", redactURLs(cfg.NATSURL))
	}
	return nc, cfg.NATSURL, nc.Close, nil, nil
}

// natsAuth maps the nats CLI's variables to connection options.
func natsAuth(cfg config) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSNKey != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NATSNKey)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY: %w", err)
		}
		opts = append(opts, o)
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	if cfg.NATSToken != "" {
		opts = append(opts, nats.Token(cfg.NATSToken))
	}
	if cfg.NATSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSCA))
	}
	if cfg.NATSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSCert, cfg.NATSKey))
	}
	return opts, nil
}

// serviceConfig maps the variables to the service's fields; settings
// without a variable keep service.Defaults().
func serviceConfig(cfg config, log *slog.Logger) service.Config {
	// natsse creates one named stream; with several, or *, the operator
	// creates them.
	create := cfg.embedded() && len(cfg.Streams) == 1 && cfg.Streams[0] != "*"
	if cfg.StreamCreate != nil {
		create = *cfg.StreamCreate
	}
	c := service.Defaults()
	c.Streams, c.Subjects, c.StreamCreate, c.UpstreamIdle = cfg.Streams, cfg.Subjects, create, cfg.UpstreamIdle
	c.UI, c.Publish = cfg.ui(), cfg.publish()
	c.StreamSubjects, c.StreamMaxAge = cfg.StreamSubjects, cfg.StreamMaxAge
	c.StreamMaxBytes, c.StreamReplicas = int64(cfg.StreamMaxBytes), cfg.StreamReplicas
	c.BasePath, c.CORSOrigins, c.MetricsOnOwnPort = cfg.BasePath, cfg.CORSOrigins, cfg.MetricsAddr != ""
	c.Retry, c.Heartbeat, c.WriteTimeout, c.MaxStreamAge = cfg.Retry, cfg.Heartbeat, cfg.WriteTimeout, cfg.MaxStreamAge
	c.RingEvents, c.RingBytes, c.QueueEvents, c.QueueBytes = cfg.RingEvents, int(cfg.RingBytes), cfg.QueueEvents, int(cfg.QueueBytes)
	c.ReplayConcurrency, c.ReplayWait, c.ReplayCacheBytes = cfg.ReplayConcurrency, cfg.ReplayWait, int(cfg.ReplayCacheBytes)
	c.MaxStreams, c.MaxConnections, c.ReservedFiles = cfg.MaxStreams, cfg.MaxConnections, cfg.ReservedFiles
	c.MaxConnectionsPerClient, c.MaxStreamsPerClient, c.TrustedProxies = cfg.MaxConnsPerClient, cfg.MaxStreamsPerClient, cfg.TrustedProxies
	c.MaxSubjects, c.MaxURLBytes = cfg.MaxSubjects, cfg.MaxURLBytes
	c.DurableTTL, c.MaxDurables = cfg.DurableTTL, cfg.MaxDurables
	c.Logger = log
	return c
}

// embeddedPublish is the banner's nats CLI example for the embedded server. A
// password or token is shown as the variable that holds it, never its value:
// the banner goes to logs that others read.
func embeddedPublish(cfg config, natsURL, subject string) string {
	cmd := "nats"
	if natsURL != "nats://127.0.0.1:4222" {
		cmd += " --server " + natsURL
	}
	switch {
	case cfg.EmbeddedUser != "":
		cmd += " --user " + shellQuote(cfg.EmbeddedUser) + " --password '<NATSSE_EMBEDDED_PASSWORD>'"
	case cfg.EmbeddedToken != "":
		cmd += " --token '<NATSSE_EMBEDDED_TOKEN>'"
	}
	return cmd + " pub " + shellQuote(subject) + " hello"
}

// exampleSubject is a subject of the served space for the banner's
// examples: the first pattern with its wildcards replaced by "demo"
// (events.> gives events.demo).
func exampleSubject(patterns []string) string {
	if len(patterns) == 0 {
		return "events.demo"
	}
	toks := strings.Split(patterns[0], ".")
	for i, t := range toks {
		if t == "*" || t == ">" {
			toks[i] = "demo"
		}
	}
	return strings.Join(toks, ".")
}

// subjectPath is the URL path of a subject (docs/protocol.md, "Paths and
// subjects"): one escaped segment per token.
func subjectPath(subject string) string {
	toks := strings.Split(subject, ".")
	for i, t := range toks {
		toks[i] = url.PathEscape(t)
	}
	return "/" + strings.Join(toks, "/")
}

// shellQuote quotes s for a POSIX shell unless it is plainly safe as is.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.@:/+=,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// banner says where to connect, with examples to copy and paste built from
// the settings: scheme, host, base path, a served subject, the page and
// HTTP publishing when they are on.
func banner(log *slog.Logger, cfg config, httpAddr, natsURL string, svc *service.Server) {
	host := httpAddr
	if h, p, err := net.SplitHostPort(httpAddr); err == nil && (h == "::" || h == "0.0.0.0" || h == "") {
		host = net.JoinHostPort("localhost", p)
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	served := svc.Subjects()
	if served == nil {
		served = cfg.Subjects
	}
	several := len(cfg.Streams) != 1 || cfg.Streams[0] == "*"
	if served == nil && cfg.embedded() && !several {
		served = cfg.StreamSubjects
	}
	subject := exampleSubject(served)
	base := scheme + "://" + host + cfg.BasePath
	path := subjectPath(subject)
	if served == nil && several {
		// No stream found yet: no subject to show, only where one goes.
		subject, path = "<subject>", "/<subject tokens separated by />"
	}
	subscribe := fmt.Sprintf("curl -N %s%s%s", tokenHeader(cfg), base, path)
	ver, rev := buildInfo()
	attrs := []any{"version", ver, "revision", rev, "http_addr", httpAddr, "subscribe", subscribe, "access", access(cfg, svc)}
	if cfg.ui() {
		attrs = append(attrs, "page", base+"/?subject="+url.QueryEscape(subject))
	}
	switch cfg.publish() {
	case service.PublishAnonymous:
		attrs = append(attrs, "publish_http", fmt.Sprintf("curl -X POST -d hello %s%s", base, path))
	case service.PublishToken:
		attrs = append(attrs, "publish_http", fmt.Sprintf(`curl -X POST -H "Authorization: Bearer $TOKEN" -d hello %s%s`, base, path))
	}
	switch {
	case !cfg.embedded():
		attrs = append(attrs, "mode", "connected", "nats_url", redactURLs(natsURL), "publish", "nats pub "+shellQuote(subject)+" hello")
	case natsURL == "":
		attrs = append(attrs, "mode", "embedded", "nats_url", "in-process only (NATSSE_EMBEDDED_LISTEN=-): no NATS clients from outside")
	default:
		attrs = append(attrs, "mode", "embedded", "nats_url", natsURL, "publish", embeddedPublish(cfg, natsURL, subject), "store_dir", cfg.StoreDir)
	}
	if ready, why := svc.Ready(); !ready {
		log.Warn("natsse listening, not ready yet: "+why, attrs...)
		return
	}
	log.Info("natsse ready", attrs...)
}
