package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caarlos0/env/v10"

	"github.com/natsse/natsse/service"
)

// config is every setting (docs/protocol.md, "Operations"), read from the
// environment only. The help tag feeds `natsse -h`. The service's settings
// default to service.Defaults() (TestEnvDefaultsAreServiceDefaults and
// TestREADMEListsEverySetting hold the envDefault tags, those defaults and
// the README's table together) and are
// checked by service.Config.Validate; this package only maps variable
// names to fields, and checks the settings of its own.
type config struct {
	NATSURL      string        `env:"NATS_URL" help:"NATS servers, comma separated; empty: embedded mode"`
	NATSCreds    string        `env:"NATS_CREDS" help:"NATS credentials file"`
	NATSNKey     string        `env:"NATS_NKEY" help:"NATS NKey seed file"`
	NATSUser     string        `env:"NATS_USER" help:"NATS user"`
	NATSPassword string        `env:"NATS_PASSWORD" help:"NATS password"`
	NATSToken    string        `env:"NATS_TOKEN" help:"NATS token"`
	NATSCA       string        `env:"NATS_CA" help:"CA file for NATS TLS"`
	NATSCert     string        `env:"NATS_CERT" help:"client certificate file for NATS TLS"`
	NATSKey      string        `env:"NATS_KEY" help:"client key file for NATS TLS"`
	NATSPing     time.Duration `env:"NATSSE_NATS_PING" envDefault:"2s" help:"ping interval to the NATS server; 2 unanswered pings and natsse reconnects elsewhere"`

	HTTPAddr       string   `env:"NATSSE_HTTP_ADDR" envDefault:":8080" help:"HTTP listen address"`
	TLSCert        string   `env:"NATSSE_TLS_CERT" help:"certificate file (PEM, chain included): serve HTTPS with HTTP/2; needs NATSSE_TLS_KEY"`
	TLSKey         string   `env:"NATSSE_TLS_KEY" help:"private key file (PEM) of NATSSE_TLS_CERT"`
	BasePath       string   `env:"NATSSE_BASE_PATH" help:"mount everything under this path prefix"`
	CORSOrigins    []string `env:"NATSSE_CORS_ORIGINS" help:"origins allowed cross-origin, comma separated; * = any, without credentials"`
	MetricsAddr    string   `env:"NATSSE_METRICS_ADDR" help:"serve /metrics on this address only, off the public one"`
	PprofAddr      string   `env:"NATSSE_PPROF_ADDR" help:"serve Go's /debug/pprof on this address (off by default; keep it private)"`
	EmbeddedListen string   `env:"NATSSE_EMBEDDED_LISTEN" envDefault:"127.0.0.1:4222" help:"embedded mode: NATS client listen address (- = in-process only; beyond loopback only with credentials)"`
	StoreDir       string   `env:"NATSSE_STORE_DIR" envDefault:"./data" help:"embedded mode: JetStream storage directory"`

	EmbeddedUser     string `env:"NATSSE_EMBEDDED_USER" help:"embedded mode: user NATS clients must give (with NATSSE_EMBEDDED_PASSWORD); credentials are required beyond loopback"`
	EmbeddedPassword string `env:"NATSSE_EMBEDDED_PASSWORD" help:"embedded mode: password of NATSSE_EMBEDDED_USER (plain text)"`
	EmbeddedToken    string `env:"NATSSE_EMBEDDED_TOKEN" help:"embedded mode: token NATS clients must give, instead of a user and password"`

	Anonymous bool `env:"NATSSE_ANONYMOUS" help:"connected mode: serve anonymous subscribers on purpose"`

	UI      *bool  `env:"NATSSE_UI" help:"serve the live page at the base path (default: true embedded, false connected)"`
	Publish string `env:"NATSSE_PUBLISH" help:"who may publish over HTTP (POST): off, token or anonymous (default: anonymous embedded, off connected)"`

	JWTSecret       string        `env:"NATSSE_JWT_SECRET" help:"HS256 secret (32 bytes or more): tokens required"`
	JWTPublicKey    string        `env:"NATSSE_JWT_PUBLIC_KEY" help:"PEM file of the public key (RSA: RS256, ECDSA: ES256, Ed25519: EdDSA): tokens required"`
	JWKSURL         string        `env:"NATSSE_JWKS_URL" help:"JWKS URL (an OIDC provider's jwks_uri): tokens required"`
	JWKSRefresh     time.Duration `env:"NATSSE_JWKS_REFRESH" envDefault:"10m" help:"how often the JWKS is fetched again"`
	JWKSMinInterval time.Duration `env:"NATSSE_JWKS_MIN_INTERVAL" envDefault:"10s" help:"tokens with an unknown kid fetch the JWKS at most once per interval"`
	JWTLeeway       time.Duration `env:"NATSSE_JWT_LEEWAY" envDefault:"30s" help:"clock skew allowed on exp and nbf"`
	JWTAudience     string        `env:"NATSSE_JWT_AUDIENCE" help:"if set, a token's aud must include it"`
	JWTIssuer       string        `env:"NATSSE_JWT_ISSUER" help:"if set, a token's iss must be it"`
	JWTCookie       string        `env:"NATSSE_JWT_COOKIE" envDefault:"natsse_token" help:"cookie that can carry the token"`

	Streams        []string      `env:"NATSSE_STREAM" envDefault:"EVENTS" help:"the JetStream streams served: a name, a comma-separated list, or * for every stream with subjects of its own"`
	UpstreamIdle   time.Duration `env:"NATSSE_UPSTREAM_IDLE" envDefault:"30s" help:"a stream's upstream consumer is deleted this long after its last reader on this replica left (negative: it runs always, from the start)"`
	StreamSubjects []string      `env:"NATSSE_STREAM_SUBJECTS" envDefault:"events.>" help:"subjects of the stream when natsse creates it"`
	StreamCreate   *bool         `env:"NATSSE_STREAM_CREATE" help:"create the stream if missing (default: true embedded with one stream named, else false)"`
	StreamMaxAge   time.Duration `env:"NATSSE_STREAM_MAX_AGE" envDefault:"24h" help:"max age of messages in a stream natsse creates"`
	StreamMaxBytes byteSize      `env:"NATSSE_STREAM_MAX_BYTES" envDefault:"1GiB" help:"max bytes of a stream natsse creates"`
	StreamReplicas int           `env:"NATSSE_STREAM_REPLICAS" envDefault:"1" help:"replicas of a stream natsse creates"`
	Subjects       []string      `env:"NATSSE_SUBJECTS" help:"subjects exposed over HTTP (default: the stream's subjects)"`

	Heartbeat            time.Duration `env:"NATSSE_HEARTBEAT" envDefault:"15s" help:"longest silence on a stream before a : comment line"`
	Retry                time.Duration `env:"NATSSE_RETRY" envDefault:"2s" help:"the retry: value sent at the start of each stream"`
	WriteTimeout         time.Duration `env:"NATSSE_WRITE_TIMEOUT" envDefault:"15s" help:"a client that takes no write for this long is cut off"`
	MaxStreamAge         time.Duration `env:"NATSSE_MAX_STREAM_AGE" envDefault:"0s" help:"close streams after this jittered lifetime (0 = off)"`
	ShutdownTimeout      time.Duration `env:"NATSSE_SHUTDOWN_TIMEOUT" envDefault:"10s" help:"SIGTERM: streams are closed and the process exits within this"`
	RingEvents           int           `env:"NATSSE_RING_EVENTS" envDefault:"10000" help:"recent events kept in memory for resumes"`
	RingBytes            byteSize      `env:"NATSSE_RING_BYTES" envDefault:"64MiB" help:"bytes of recent events kept in memory"`
	QueueEvents          int           `env:"NATSSE_QUEUE_EVENTS" envDefault:"512" help:"events queued per client before it falls back to catching up"`
	QueueBytes           byteSize      `env:"NATSSE_QUEUE_BYTES" envDefault:"4MiB" help:"bytes queued per client before it falls back to catching up; also bounds each batch written"`
	ReplayConcurrency    int           `env:"NATSSE_REPLAY_CONCURRENCY" envDefault:"16" help:"concurrent JetStream replays (others wait, stream open)"`
	ReplayWait           time.Duration `env:"NATSSE_REPLAY_WAIT" envDefault:"5s" help:"a stream that waited this long for a replay slot gets the soft refusal (retry later)"`
	ReplayCacheBytes     byteSize      `env:"NATSSE_REPLAY_CACHE_BYTES" envDefault:"64MiB" help:"bytes of replayed events kept for other clients resuming on the same subjects"`
	MaxStreams           int           `env:"NATSSE_MAX_STREAMS" envDefault:"0" help:"open streams in total (0 = open-file limit - NATSSE_RESERVED_FILES)"`
	MaxConnections       int           `env:"NATSSE_MAX_CONNECTIONS" envDefault:"0" help:"open client connections of every kind; more are closed at once (0 = open-file limit - NATSSE_RESERVED_FILES)"`
	ReservedFiles        int           `env:"NATSSE_RESERVED_FILES" envDefault:"256" help:"open files client connections never take (NATS, the store, logs)"`
	IdleTimeout          time.Duration `env:"NATSSE_IDLE_TIMEOUT" envDefault:"30s" help:"an HTTP connection with no request in flight for this long is closed (HTTP/1.1 keep-alive, HTTP/2)"`
	MaxSubjects          int           `env:"NATSSE_MAX_SUBJECTS" envDefault:"16" help:"subjects per request"`
	MaxURLBytes          int           `env:"NATSSE_MAX_URL_BYTES" envDefault:"8192" help:"request URL length"`
	MaxHeaderBytes       byteSize      `env:"NATSSE_MAX_HEADER_BYTES" envDefault:"16KiB" help:"request header size (larger: 431)"`
	DurableTTL           time.Duration `env:"NATSSE_DURABLE_TTL" envDefault:"24h" help:"a named cursor (?durable=) unused for this long is removed"`
	MaxDurables          int           `env:"NATSSE_MAX_DURABLES" envDefault:"10000" help:"named cursors in total; a new name beyond it is 429"`
	MaxDurablesPerClient int           `env:"NATSSE_MAX_DURABLES_PER_CLIENT" envDefault:"1000" help:"new anonymous named cursors per client address within NATSSE_DURABLE_TTL; beyond it, 429"`

	MaxStreamsPerClient int        `env:"NATSSE_MAX_STREAMS_PER_CLIENT" envDefault:"1000" help:"open streams per client address"`
	MaxConnsPerClient   int        `env:"NATSSE_MAX_CONNECTIONS_PER_CLIENT" envDefault:"1024" help:"open connections per peer address (trusted proxies excepted); more are closed at once"`
	TrustedProxies      prefixList `env:"NATSSE_TRUSTED_PROXIES" help:"proxies (CIDRs or addresses, comma separated) whose X-Forwarded-For tells the client address"`

	LogFormat string `env:"NATSSE_LOG_FORMAT" envDefault:"auto" help:"auto (colored text on a terminal, else JSON), text or json"`
	LogLevel  string `env:"NATSSE_LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
}

func (c config) embedded() bool { return c.NATSURL == "" }

// loadConfig reads the environment; an error names the variable.
func loadConfig(environ map[string]string) (config, error) {
	var c config
	err := env.ParseWithOptions(&c, env.Options{Environment: environ})
	var agg env.AggregateError
	if errors.As(err, &agg) {
		return c, namedError(agg.Errors[0])
	}
	if err != nil {
		return c, err
	}
	return c, c.check()
}

// namedError replaces caarlos0/env's field name with the variable's name.
func namedError(err error) error {
	var pe env.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	f, _ := reflect.TypeFor[config]().FieldByName(pe.Name)
	return fmt.Errorf("%s: %v", f.Tag.Get("env"), pe.Err)
}

func (c config) check() error {
	if err := c.checkJWT(); err != nil {
		return err
	}
	if err := c.checkEmbeddedAuth(); err != nil {
		return err
	}
	if err := c.checkNATSURL(); err != nil {
		return err
	}
	switch {
	case !c.embedded() && !c.Anonymous && len(c.jwtSources()) == 0:
		return errors.New("NATS_URL is set (connected mode) but no JWT settings are: set NATSSE_JWT_SECRET, NATSSE_JWT_PUBLIC_KEY or NATSSE_JWKS_URL, or NATSSE_ANONYMOUS=true to serve anonymous subscribers on purpose")
	case !validLevel(c.LogLevel):
		return fmt.Errorf("NATSSE_LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel)
	case c.LogFormat != "auto" && c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("NATSSE_LOG_FORMAT: %q is not one of auto, text, json", c.LogFormat)
	case c.NATSPing < 100*time.Millisecond:
		return fmt.Errorf("NATSSE_NATS_PING: %s is too short; use 1s or more", c.NATSPing)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("NATSSE_SHUTDOWN_TIMEOUT: %s must be positive", c.ShutdownTimeout)
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("NATSSE_TLS_CERT and NATSSE_TLS_KEY: set both (HTTPS) or neither (plain HTTP)")
	case c.IdleTimeout <= 0:
		return fmt.Errorf("NATSSE_IDLE_TIMEOUT: %s must be positive", c.IdleTimeout)
	case c.MaxHeaderBytes < 1:
		return fmt.Errorf("NATSSE_MAX_HEADER_BYTES: %d must be at least 1", c.MaxHeaderBytes)
	case c.embedded() && c.StreamReplicas > 1:
		return fmt.Errorf("NATSSE_STREAM_REPLICAS: %d needs a NATS cluster, and the embedded server is one node: use 1, or NATS_URL", c.StreamReplicas)
	}
	// The service's own settings are checked by the service, with the JWT
	// settings checked above (NATSSE_PUBLISH=token needs them).
	sc := serviceConfig(c, nil)
	sc.JWT, _ = c.jwtConfig()
	return sc.Validate()
}

// checkEmbeddedAuth refuses an embedded NATS that anyone beyond this machine
// could reach without credentials: whoever connects to it can read every
// subject, publish forged events and delete the stream. It runs before
// anything is started, so a refused setting leaves nothing behind.
func (c config) checkEmbeddedAuth() error {
	if !c.embedded() {
		return nil
	}
	switch {
	case c.EmbeddedUser != "" && c.EmbeddedPassword == "":
		return errors.New("NATSSE_EMBEDDED_USER is set without NATSSE_EMBEDDED_PASSWORD: set both, or neither")
	case c.EmbeddedPassword != "" && c.EmbeddedUser == "":
		return errors.New("NATSSE_EMBEDDED_PASSWORD is set without NATSSE_EMBEDDED_USER: set both, or neither")
	case c.EmbeddedToken != "" && c.EmbeddedUser != "":
		return errors.New("NATSSE_EMBEDDED_TOKEN and NATSSE_EMBEDDED_USER are both set: use a token, or a user and password, not both")
	}
	listen := c.EmbeddedListen
	if listen == "" || listen == "-" {
		return nil
	}
	host, port, err := net.SplitHostPort(listen)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return fmt.Errorf("NATSSE_EMBEDDED_LISTEN: %q is not host:port (like 127.0.0.1:4222) or - (in-process only)", listen)
	}
	if !loopbackHost(host) && c.EmbeddedUser == "" && c.EmbeddedToken == "" {
		return fmt.Errorf("NATSSE_EMBEDDED_LISTEN=%s is not loopback, and the embedded NATS has no credentials (whoever reaches it could read every subject, publish and delete the stream): set NATSSE_EMBEDDED_USER and NATSSE_EMBEDDED_PASSWORD (or NATSSE_EMBEDDED_TOKEN), or listen on loopback (127.0.0.1:4222) or - (in-process only)", listen)
	}
	return nil
}

// loopbackHost says whether a listen host is reachable from this machine only:
// localhost or a loopback address. An empty host, a wildcard or any other name
// may be reachable from elsewhere.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// notSettings are NATSSE_* variables that are not natsse's settings but
// are expected in its environment: the examples' token.
var notSettings = map[string]bool{"NATSSE_TOKEN": true}

// unknownSettings says, for each NATSSE_* variable natsse does not read (a
// typo like NATSSE_CORS_ORIGIN is silently a default otherwise), the known
// variable closest to it ("" when none is close), sorted by name.
func unknownSettings(environ map[string]string) (unknown, closest []string) {
	t := reflect.TypeFor[config]()
	var known []string
	for i := range t.NumField() {
		known = append(known, t.Field(i).Tag.Get("env"))
	}
	for name := range environ {
		if !strings.HasPrefix(name, "NATSSE_") || notSettings[name] || slices.Contains(known, name) {
			continue
		}
		unknown = append(unknown, name)
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		best, bestDist := "", 4 // farther than 3 edits is no typo
		for _, k := range known {
			if d := editDistance(name, k); d < bestDist {
				best, bestDist = k, d
			}
		}
		closest = append(closest, best)
	}
	return unknown, closest
}

// warnUnknownSettings warns once for each unknown NATSSE_* variable.
func warnUnknownSettings(log *slog.Logger, environ map[string]string) {
	unknown, closest := unknownSettings(environ)
	for i, name := range unknown {
		msg := "unknown setting " + name + " is ignored"
		if closest[i] != "" {
			msg += ": did you mean " + closest[i] + "?"
		} else {
			msg += " (natsse -h lists the settings)"
		}
		log.Warn(msg, "variable", name)
	}
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func validLevel(s string) bool {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}

// usage lists every setting with its default.
func usage(w io.Writer) {
	fmt.Fprintln(w, "natsse: Server-Sent Events from NATS JetStream. Configured by environment variables only.")
	fmt.Fprintln(w, "natsse healthcheck exits 0 when this instance's /readyz answers 200 (same settings), else 1.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	t := reflect.TypeFor[config]()
	for i := range t.NumField() {
		f := t.Field(i)
		def := f.Tag.Get("envDefault")
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Tag.Get("env"), def, f.Tag.Get("help"))
	}
	_ = tw.Flush()
}

// byteSize reads sizes like 1GiB, 64MiB, 512KB or 1048576.
type byteSize int64

func (b *byteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size like 64MiB, 1GiB or 1048576", string(text))
	}
	// A product past int64 would wrap, to a negative size or one that
	// reads as unlimited.
	if n > math.MaxInt64/mult {
		return fmt.Errorf("%q is more than %d bytes (8 EiB)", string(text), int64(math.MaxInt64))
	}
	*b = byteSize(n * mult)
	return nil
}

// ui says whether the live page is served: by default in embedded mode,
// where natsse is tried out, and not in connected mode, where it is run
// for others.
func (c config) ui() bool {
	if c.UI != nil {
		return *c.UI
	}
	return c.embedded()
}

// publish is who may publish over HTTP: by default anyone in embedded mode
// (which listens on loopback unless told otherwise), nobody in connected
// mode, where publishing is opened on purpose.
func (c config) publish() service.PublishMode {
	if c.Publish != "" {
		return service.PublishMode(c.Publish)
	}
	if c.embedded() {
		return service.PublishAnonymous
	}
	return service.PublishOff
}
