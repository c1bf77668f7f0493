package service

import (
	"crypto"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service/access"
	"github.com/natsse/natsse/service/cursors"
	"github.com/natsse/natsse/subjects"
)

// JWTConfig turns on access control; see access.Config.
type JWTConfig = access.Config

// ParsePublicKeyPEM reads the public key that verifies tokens from PEM; see
// access.ParsePublicKeyPEM.
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, error) { return access.ParsePublicKeyPEM(b) }

// RedactURL hides a URL's user info and query values; see access.RedactURL.
func RedactURL(raw string) string { return access.RedactURL(raw) }

// Config is everything the service needs; cmd/natsse fills it from the
// environment. Zero values mean the documented defaults (see WithDefaults).
type Config struct {
	// Streams are the JetStream streams served: names, or "*" alone for
	// every stream with subjects of its own (docs/configuration.md,
	// NATSSE_STREAM). Default ["EVENTS"].
	Streams []string
	// Subjects is the subject space exposed over HTTP; empty means the
	// streams' own subjects.
	Subjects []string
	// StreamCreate creates the stream when it is missing; only with one
	// stream named.
	StreamCreate bool
	// UpstreamIdle is how long a stream's upstream consumer stays after its
	// last SSE stream on this replica ended; then it is deleted, and the
	// next SSE stream starts another. Negative: it runs always, from the
	// start (a warm ring on every replica). Default 30s.
	UpstreamIdle time.Duration
	// StreamSubjects, StreamMaxAge, StreamMaxBytes and StreamReplicas shape a
	// stream natsse creates; an existing stream is never changed.
	StreamSubjects []string
	StreamMaxAge   time.Duration
	StreamMaxBytes int64
	StreamReplicas int
	// StreamMaxConsumers caps consumers on a stream natsse creates, so that
	// replays and named cursors never hit nats-server's default of 1,000.
	StreamMaxConsumers int

	// CORSOrigins are the origins allowed to read streams from a page
	// elsewhere; "*" allows any origin without credentials. Empty: same
	// origin only.
	CORSOrigins []string
	// NoHijack keeps HTTP/1.1 streams inside net/http instead of taking
	// their connections over (which costs more memory per stream).
	NoHijack bool
	// MetricsOnOwnPort keeps /metrics off this handler; MetricsHandler
	// serves it on another listener.
	MetricsOnOwnPort bool

	// Publish says who may publish over HTTP: PublishOff (the default),
	// PublishToken or PublishAnonymous (docs/protocol.md, "Publishing over
	// HTTP").
	Publish PublishMode
	// UI serves the live page at <base>/; off, / answers one line of text.
	UI bool

	// BasePath mounts everything under a prefix ("/sse-gw"); default empty.
	BasePath string
	// Retry is the reconnection delay sent as `retry:`. Default 2s.
	Retry time.Duration
	// Heartbeat bounds how long a stream stays silent. Default 15s.
	Heartbeat time.Duration
	// WriteTimeout cuts off a client that does not take a write within it:
	// the way a client that stopped reading is detected. Default 15s.
	WriteTimeout time.Duration
	// MaxStreamAge closes streams after a jittered lifetime so clients
	// rebalance over replicas; 0 is off.
	MaxStreamAge time.Duration

	// RingEvents and RingBytes bound the recent events kept in memory for
	// resumes. Defaults 10,000 and 64 MiB.
	RingEvents int
	RingBytes  int
	// QueueEvents bounds a connection's queue; a client further behind falls
	// back to catching up from the ring or JetStream. Default 512.
	QueueEvents int
	// QueueBytes bounds a connection's queue in bytes, and each batch it
	// writes: what a client that stopped reading can pin (docs/operations.md,
	// "Limits"). Over it, the client catches up as over QueueEvents.
	// Default 4 MiB.
	QueueBytes int
	// ReplayConcurrency bounds concurrent JetStream replays (each is one
	// short-lived consumer); other resumes wait with their stream open.
	// Default 16.
	ReplayConcurrency int
	// ReplayWait bounds how long a stream waits for a replay slot; then it
	// gets the soft refusal (retry later, perhaps on another replica), as
	// docs/protocol.md, "The soft refusal" says for "replay capacity
	// exhausted". Default 5s.
	ReplayWait time.Duration
	// ReplayCacheBytes bounds what replays keep in memory for other streams
	// resuming on the same subjects. Default 64 MiB.
	ReplayCacheBytes int
	// MaxStreams bounds open streams in total; beyond it, the soft refusal.
	// Default: the open-file limit less ReservedFiles.
	MaxStreams int
	// MaxConnections bounds open client connections of every kind (idle
	// keep-alive, HTTP/2, streams); beyond it a new connection is closed at
	// once. Default: the open-file limit less ReservedFiles.
	MaxConnections int
	// MaxConnectionsPerClient bounds open connections per peer address
	// (trusted proxies excepted). Default 1,024: above the per-client stream
	// limit, so that it only stops floods.
	MaxConnectionsPerClient int
	// ReservedFiles are the open files that client connections never take:
	// nats-server's (embedded mode), the store's, logs. Default 256.
	ReservedFiles int
	// MaxStreamsPerClient bounds open streams per client address, so that
	// one host cannot take every stream; beyond it, the soft refusal.
	// Default 1,000: room for many users behind one NAT address.
	MaxStreamsPerClient int
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// telling clients apart; empty: the peer's own address counts.
	TrustedProxies []netip.Prefix
	// MaxSubjects bounds subjects in one request. Default 16.
	MaxSubjects int
	// MaxURLBytes bounds the request URI. Default 8 KiB.
	MaxURLBytes int
	// DurableTTL removes a named cursor unused for this long (the consumer's
	// InactiveThreshold). Default 24h.
	DurableTTL time.Duration
	// MaxDurables bounds named cursors; a new name beyond it is 429. It must
	// leave room below StreamMaxConsumers. Default 10,000.
	MaxDurables int
	// MaxDurablesPerClient bounds the new anonymous named cursors one client
	// address creates on a replica within DurableTTL, so that one address
	// cannot take all of MaxDurables; beyond it, 429. Default 1,000, like
	// MaxStreamsPerClient (room for users behind one NAT address).
	MaxDurablesPerClient int

	// JWT turns access control on; see JWTConfig.
	JWT JWTConfig

	// StoreHealth, when set, tells /readyz why JetStream cannot store right
	// now (nil when it can): embedded mode asks its nats-server.
	StoreHealth func() error

	// Version and Revision name the build, for natsse_build_info; empty:
	// "unknown".
	Version, Revision string

	Logger *slog.Logger
}

// PublishMode says who may publish over HTTP (NATSSE_PUBLISH).
type PublishMode string

const (
	// PublishOff: POST is 405, as for any method but GET.
	PublishOff PublishMode = "off"
	// PublishToken: a JWT whose natsse claim lists the subject in "publish".
	PublishToken PublishMode = "token"
	// PublishAnonymous: anyone who reaches natsse, to any served subject.
	PublishAnonymous PublishMode = "anonymous"
)

// Defaults is every setting at its default, the one place defaults are
// kept: cmd/natsse's variables default to these (a test holds them
// together). MaxStreams and MaxConnections depend on the open-file limit.
func Defaults() Config {
	return Config{
		Streams:                 []string{"EVENTS"},
		UpstreamIdle:            30 * time.Second,
		Publish:                 PublishOff,
		StreamSubjects:          []string{"events.>"},
		StreamMaxAge:            24 * time.Hour,
		StreamMaxBytes:          1 << 30,
		StreamReplicas:          1,
		StreamMaxConsumers:      20_000,
		Retry:                   2 * time.Second,
		Heartbeat:               15 * time.Second,
		WriteTimeout:            15 * time.Second,
		RingEvents:              10_000,
		RingBytes:               64 << 20,
		QueueEvents:             512,
		QueueBytes:              4 << 20,
		ReplayConcurrency:       16,
		ReplayWait:              5 * time.Second,
		ReplayCacheBytes:        64 << 20,
		ReservedFiles:           256,
		MaxStreams:              fileBudget(256),
		MaxConnections:          fileBudget(256),
		MaxConnectionsPerClient: 1024,
		MaxStreamsPerClient:     1000,
		MaxSubjects:             16,
		MaxURLBytes:             8 << 10,
		DurableTTL:              24 * time.Hour,
		MaxDurables:             10_000,
		MaxDurablesPerClient:    1000,
		// A zero leeway is a setting of its own (none), so WithDefaults
		// keeps it; this is the leeway natsse runs with by default.
		JWT: access.Config{Leeway: 30 * time.Second}.WithDefaults(),
	}
}

// WithDefaults returns c with zero values replaced by the defaults (the
// JWT leeway excepted: zero allows none).
func (c Config) WithDefaults() Config {
	d := Defaults()
	if len(c.Streams) == 0 {
		c.Streams = d.Streams
	}
	setZero(&c.UpstreamIdle, d.UpstreamIdle)
	setZero(&c.Publish, d.Publish)
	if len(c.StreamSubjects) == 0 {
		c.StreamSubjects = d.StreamSubjects
	}
	for _, f := range []struct{ v, d *time.Duration }{
		{&c.StreamMaxAge, &d.StreamMaxAge}, {&c.Retry, &d.Retry}, {&c.Heartbeat, &d.Heartbeat},
		{&c.WriteTimeout, &d.WriteTimeout}, {&c.ReplayWait, &d.ReplayWait}, {&c.DurableTTL, &d.DurableTTL},
	} {
		setZero(f.v, *f.d)
	}
	setZero(&c.StreamMaxBytes, d.StreamMaxBytes)
	for _, f := range []struct{ v, d *int }{
		{&c.StreamReplicas, &d.StreamReplicas}, {&c.StreamMaxConsumers, &d.StreamMaxConsumers},
		{&c.RingEvents, &d.RingEvents}, {&c.RingBytes, &d.RingBytes}, {&c.QueueEvents, &d.QueueEvents},
		{&c.QueueBytes, &d.QueueBytes},
		{&c.ReplayConcurrency, &d.ReplayConcurrency}, {&c.ReplayCacheBytes, &d.ReplayCacheBytes},
		{&c.ReservedFiles, &d.ReservedFiles}, {&c.MaxConnectionsPerClient, &d.MaxConnectionsPerClient},
		{&c.MaxStreamsPerClient, &d.MaxStreamsPerClient}, {&c.MaxSubjects, &d.MaxSubjects},
		{&c.MaxURLBytes, &d.MaxURLBytes}, {&c.MaxDurables, &d.MaxDurables},
		{&c.MaxDurablesPerClient, &d.MaxDurablesPerClient},
	} {
		setZero(f.v, *f.d)
	}
	// The file budget leaves room for the reserved files configured.
	setZero(&c.MaxStreams, fileBudget(c.ReservedFiles))
	setZero(&c.MaxConnections, fileBudget(c.ReservedFiles))
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.BasePath = strings.TrimRight(c.BasePath, "/")
	c.JWT = c.JWT.WithDefaults()
	return c
}

func setZero[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate reports the first setting that cannot work, in one line that
// names its cmd/natsse variable. Zero values are refused where a default
// exists: validate what WithDefaults returns, or a complete Config (as
// cmd/natsse does, so that NATSSE_RING_EVENTS=0 is refused rather than
// taken for the default). MaxStreams and MaxConnections may be zero: the
// open-file limit less ReservedFiles.
func (c Config) Validate() error {
	for _, d := range []struct {
		name  string
		v     time.Duration
		least time.Duration
		why   string
	}{
		{"NATSSE_HEARTBEAT", c.Heartbeat, 3 * time.Millisecond, "is too short; use 1s or more"},
		{"NATSSE_RETRY", c.Retry, 1, "must be positive"},
		{"NATSSE_WRITE_TIMEOUT", c.WriteTimeout, 1, "must be positive"},
		{"NATSSE_DURABLE_TTL", c.DurableTTL, 1, "must be positive"},
		{"NATSSE_MAX_STREAM_AGE", c.MaxStreamAge, 0, "must not be negative"},
		{"NATSSE_REPLAY_WAIT", c.ReplayWait, 0, "must not be negative"},
		{"NATSSE_STREAM_MAX_AGE", c.StreamMaxAge, 0, "must not be negative (0: messages never expire)"},
	} {
		if d.v < d.least {
			return fmt.Errorf("%s: %s %s", d.name, d.v, d.why)
		}
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		return fmt.Errorf("NATSSE_STREAM_REPLICAS: %d is not between 1 and 5", c.StreamReplicas)
	}
	for _, n := range []struct {
		name     string
		v, least int
	}{
		{"NATSSE_MAX_STREAMS_PER_CLIENT", c.MaxStreamsPerClient, 1}, {"NATSSE_MAX_CONNECTIONS_PER_CLIENT", c.MaxConnectionsPerClient, 1},
		{"NATSSE_RESERVED_FILES", c.ReservedFiles, 1}, {"NATSSE_RING_EVENTS", c.RingEvents, 1}, {"NATSSE_QUEUE_EVENTS", c.QueueEvents, 1},
		{"NATSSE_QUEUE_BYTES", c.QueueBytes, 1},
		{"NATSSE_REPLAY_CONCURRENCY", c.ReplayConcurrency, 1}, {"NATSSE_MAX_SUBJECTS", c.MaxSubjects, 1},
		{"NATSSE_MAX_URL_BYTES", c.MaxURLBytes, 1}, {"NATSSE_MAX_DURABLES", c.MaxDurables, 1},
		{"NATSSE_MAX_DURABLES_PER_CLIENT", c.MaxDurablesPerClient, 1},
		{"NATSSE_RING_BYTES", c.RingBytes, 1}, {"NATSSE_REPLAY_CACHE_BYTES", c.ReplayCacheBytes, 1},
		{"NATSSE_MAX_STREAMS", c.MaxStreams, 0}, {"NATSSE_MAX_CONNECTIONS", c.MaxConnections, 0},
	} {
		if n.v < n.least {
			if n.least == 0 {
				return fmt.Errorf("%s: %d must not be negative", n.name, n.v)
			}
			return fmt.Errorf("%s: %d must be at least 1", n.name, n.v)
		}
	}
	if c.BasePath != "" && (!strings.HasPrefix(c.BasePath, "/") || strings.HasSuffix(c.BasePath, "/")) {
		return fmt.Errorf("NATSSE_BASE_PATH: %q must start with / and not end with / (like /sse-gateway)", c.BasePath)
	}
	// Paths are compared as sent, escaped (docs/protocol.md, "Paths and
	// subjects"): a prefix that a client must escape would never match.
	if i := strings.IndexFunc(c.BasePath, func(r rune) bool { return !plainPathRune(r) }); i >= 0 {
		return fmt.Errorf("NATSSE_BASE_PATH: %q holds %q, which a URL carries escaped, so no request would match; use A-Z a-z 0-9 and - . _ ~ / only", c.BasePath, []rune(c.BasePath[i:])[0])
	}
	if err := validStreams(c.Streams); err != nil {
		return err
	}
	if c.StreamCreate && (len(c.Streams) != 1 || c.allStreams()) {
		return fmt.Errorf("NATSSE_STREAM_CREATE: natsse creates one named stream, and NATSSE_STREAM is %q: create the streams yourself (nats stream add) and set NATSSE_STREAM_CREATE=false, or name one stream", strings.Join(c.Streams, ","))
	}
	if c.StreamMaxBytes < 1 {
		return fmt.Errorf("NATSSE_STREAM_MAX_BYTES: %d must be at least 1", c.StreamMaxBytes)
	}
	for _, list := range []struct {
		name     string
		patterns []string
	}{{"NATSSE_SUBJECTS", c.Subjects}, {"NATSSE_STREAM_SUBJECTS", c.StreamSubjects}} {
		for _, p := range list.patterns {
			if err := subjects.ValidatePattern(p); err != nil {
				return fmt.Errorf("%s: %q: %v", list.name, p, err)
			}
		}
	}
	// nats-server refuses a stream over its own subjects, and natsse's
	// takeovers use _natsse.>: say so at start instead of never getting
	// ready.
	for _, p := range c.StreamSubjects {
		for _, own := range []string{"$JS.>", "$SYS.>", "_INBOX.>", "_natsse.>"} {
			if subjects.Overlap(p, own) {
				return fmt.Errorf("NATSSE_STREAM_SUBJECTS: %q would also hold NATS's own subjects (%s); start it with a literal token, like events.>", p, own)
			}
		}
	}
	// A stream natsse creates has NATSSE_STREAM_SUBJECTS: served subjects
	// outside them would never be served (docs/configuration.md).
	if c.StreamCreate {
		for _, p := range c.Subjects {
			if !subjects.InsideAny(p, c.StreamSubjects) {
				return fmt.Errorf("NATSSE_SUBJECTS: %q is not within the stream's subjects %s (NATSSE_STREAM_SUBJECTS), so nothing of it would be served: narrow NATSSE_SUBJECTS, or add it to NATSSE_STREAM_SUBJECTS", p, strings.Join(c.StreamSubjects, ","))
			}
		}
	}
	for _, o := range c.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			return fmt.Errorf("NATSSE_CORS_ORIGINS: %q %v", o, err)
		}
	}
	// Replays reserve 4 consumers each (cursors.Reserve), and at least one
	// named cursor must fit: else NATSSE_MAX_DURABLES would be blamed.
	if most := (c.StreamMaxConsumers - cursors.Reserve(0) - 1) / 4; c.ReplayConcurrency > most {
		return fmt.Errorf("NATSSE_REPLAY_CONCURRENCY: %d replays would take more than the stream's %d consumers; at most %d", c.ReplayConcurrency, c.StreamMaxConsumers, most)
	}
	if room := c.StreamMaxConsumers - cursors.Reserve(c.ReplayConcurrency); c.MaxDurables > room {
		return fmt.Errorf("NATSSE_MAX_DURABLES: %d leaves too few of the stream's %d consumers for replays; at most %d", c.MaxDurables, c.StreamMaxConsumers, room)
	}
	switch c.Publish {
	case PublishOff, PublishAnonymous:
	case PublishToken:
		if !c.JWT.Enabled() {
			return fmt.Errorf("NATSSE_PUBLISH=token needs tokens to check: set NATSSE_JWT_SECRET, NATSSE_JWT_PUBLIC_KEY or NATSSE_JWKS_URL, or use NATSSE_PUBLISH=off or anonymous")
		}
	default:
		return fmt.Errorf("NATSSE_PUBLISH: %q is not one of off, token, anonymous", c.Publish)
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("NATSSE_TRUSTED_PROXIES: %v is not a valid prefix", p)
		}
	}
	return c.JWT.Validate()
}

// checkOrigin refuses what a browser never sends as its Origin, which
// would never match: origins are compared as sent, scheme://host[:port]
// in lower case, no path, not even a trailing slash (docs/configuration.md).
// "*" is any origin.
func checkOrigin(o string) error {
	const form = "is not an origin (scheme://host[:port])"
	if o == "*" {
		return nil
	}
	if strings.TrimSpace(o) != o || o == "" {
		return fmt.Errorf("%s: separate origins with commas only, no spaces", form)
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%s: add the scheme, like https://%s", form, strings.TrimPrefix(strings.TrimPrefix(o, "//"), ":"))
	}
	bare := u.Scheme + "://" + u.Host
	switch {
	case u.User != nil:
		return fmt.Errorf("%s: drop the user info", form)
	case u.Path == "/" && u.RawQuery == "" && u.Fragment == "":
		return fmt.Errorf("%s: drop the trailing slash: %s", form, bare)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return fmt.Errorf("%s: drop the path, query or fragment: %s", form, bare)
	case strings.ToLower(o) != o:
		return fmt.Errorf("%s: browsers send it in lower case: %s", form, strings.ToLower(o))
	case u.Port() == "" && strings.HasSuffix(u.Host, ":"):
		return fmt.Errorf("%s: give the port after the colon, or drop the colon: %s", form, strings.TrimSuffix(bare, ":"))
	}
	return nil
}

// plainPathRune is a rune a URL path carries as is (RFC 3986 unreserved,
// and /).
func plainPathRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~/", r)
}

// validStreamName refuses what JetStream refuses in a stream name (it is
// part of API subjects and of a file path): empty, longer than 255 bytes,
// or holding . * > / \ or white space and control characters.
func validStreamName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("is empty")
	case len(name) > 255:
		return fmt.Errorf("is longer than 255 bytes")
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(".*>/\\", r) {
			return fmt.Errorf("is not a stream name: it holds %q (stream names cannot hold . * > / \\ or white space)", r)
		}
	}
	return nil
}

// allStreams says whether every stream with subjects is served (*).
func (c Config) allStreams() bool { return len(c.Streams) == 1 && c.Streams[0] == "*" }

// validStreams checks NATSSE_STREAM: "*" alone, or distinct stream names.
func validStreams(names []string) error {
	if len(names) == 1 && names[0] == "*" {
		return nil
	}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "*" {
			return fmt.Errorf("NATSSE_STREAM: * serves every stream, so it stands alone; list names or give * only")
		}
		if err := validStreamName(n); err != nil {
			return fmt.Errorf("NATSSE_STREAM: %q %v", n, err)
		}
		if seen[n] {
			return fmt.Errorf("NATSSE_STREAM: %q is listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// streamCreate is the stream natsse creates when it is missing; nil when it
// must not.
func (c Config) streamCreate() *jetstream.StreamConfig {
	if !c.StreamCreate {
		return nil
	}
	return &jetstream.StreamConfig{
		Name:         c.Streams[0],
		Subjects:     c.StreamSubjects,
		Storage:      jetstream.FileStorage,
		MaxAge:       c.StreamMaxAge,
		MaxBytes:     c.StreamMaxBytes,
		Replicas:     c.StreamReplicas,
		MaxConsumers: c.StreamMaxConsumers,
	}
}

// streamSuggest is the stream the log tells the operator to create when it
// is missing and natsse must not create it: NATSSE_STREAM_SUBJECTS, unless
// NATSSE_SUBJECTS reaches beyond them (connected mode, where the default
// events.> may be no one's choice). With several streams it names no
// subjects: there is no telling which are whose.
func (c Config) streamSuggest() *jetstream.StreamConfig {
	if c.StreamCreate || len(c.Streams) != 1 || c.allStreams() {
		return nil
	}
	c.StreamCreate = true
	sc := c.streamCreate()
	for _, p := range c.Subjects {
		if !subjects.InsideAny(p, c.StreamSubjects) {
			sc.Subjects = c.Subjects
			break
		}
	}
	return sc
}

// fileBudget is what the open-file limit leaves for client connections
// once reserved files are kept for NATS, the store and logs: the default
// of both the stream and the connection limits, so that one process serves
// as many as the machine allows and never takes nats-server's files.
func fileBudget(reserved int) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 10_000
	}
	return max(int(lim.Cur)-reserved, 16)
}
