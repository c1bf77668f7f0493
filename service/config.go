package service

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
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

// Config is everything the service needs; cmd/natsse fills it from the
// environment. Zero values mean the documented defaults (see WithDefaults).
type Config struct {
	// Stream is the JetStream stream served. Default "EVENTS".
	Stream string
	// Subjects is the subject space exposed over HTTP; empty means the
	// stream's own subjects.
	Subjects []string
	// StreamCreate creates the stream when it is missing.
	StreamCreate bool
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

	// JWT turns access control on; see JWTConfig.
	JWT JWTConfig

	// StoreHealth, when set, tells /readyz why JetStream cannot store right
	// now (nil when it can): embedded mode asks its nats-server.
	StoreHealth func() error

	Logger *slog.Logger
}

// WithDefaults returns c with zero values replaced by the defaults.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Stream == "" {
		c.Stream = "EVENTS"
	}
	if len(c.StreamSubjects) == 0 {
		c.StreamSubjects = []string{"events.>"}
	}
	defDur(&c.StreamMaxAge, 24*time.Hour)
	if c.StreamMaxBytes == 0 {
		c.StreamMaxBytes = 1 << 30
	}
	def(&c.StreamReplicas, 1)
	def(&c.StreamMaxConsumers, 20_000)
	defDur(&c.Retry, 2*time.Second)
	defDur(&c.Heartbeat, 15*time.Second)
	defDur(&c.WriteTimeout, 15*time.Second)
	def(&c.RingEvents, 10_000)
	def(&c.RingBytes, 64<<20)
	def(&c.QueueEvents, 512)
	def(&c.ReplayConcurrency, 16)
	defDur(&c.ReplayWait, 5*time.Second)
	def(&c.ReplayCacheBytes, 64<<20)
	def(&c.ReservedFiles, 256)
	def(&c.MaxStreams, fileBudget(c.ReservedFiles))
	def(&c.MaxConnections, fileBudget(c.ReservedFiles))
	def(&c.MaxConnectionsPerClient, 1024)
	def(&c.MaxStreamsPerClient, 1000)
	def(&c.MaxSubjects, 16)
	def(&c.MaxURLBytes, 8<<10)
	defDur(&c.DurableTTL, 24*time.Hour)
	def(&c.MaxDurables, 10_000)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.BasePath = strings.TrimRight(c.BasePath, "/")
	c.JWT = c.JWT.WithDefaults()
	return c
}

// Validate reports the first setting that cannot work, naming it.
func (c Config) Validate() error {
	var errs []error
	for _, p := range append(append([]string(nil), c.Subjects...), c.StreamSubjects...) {
		if err := subjects.ValidatePattern(p); err != nil {
			errs = append(errs, fmt.Errorf("subject %q: %w", p, err))
		}
	}
	positive := map[string]int{
		"ring events": c.RingEvents, "ring bytes": c.RingBytes, "queue events": c.QueueEvents,
		"replay concurrency": c.ReplayConcurrency, "replay cache bytes": c.ReplayCacheBytes, "max streams": c.MaxStreams,
		"max subjects": c.MaxSubjects, "max URL bytes": c.MaxURLBytes, "max durables": c.MaxDurables,
		"max streams per client": c.MaxStreamsPerClient, "max connections": c.MaxConnections,
		"max connections per client": c.MaxConnectionsPerClient, "reserved files": c.ReservedFiles,
	}
	for name, v := range positive {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	if room := c.StreamMaxConsumers - cursors.Reserve(c.ReplayConcurrency); c.MaxDurables > room {
		errs = append(errs, fmt.Errorf("NATSSE_MAX_DURABLES: %d leaves too few of the stream's %d consumers for replays; at most %d", c.MaxDurables, c.StreamMaxConsumers, room))
	}
	if c.Heartbeat < 0 || c.Retry < 0 || c.WriteTimeout < 0 || c.MaxStreamAge < 0 || c.DurableTTL < 0 || c.ReplayWait < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("trusted proxy %v is not a valid prefix", p))
		}
	}
	if c.BasePath != "" && !strings.HasPrefix(c.BasePath, "/") {
		errs = append(errs, fmt.Errorf("base path %q must start with /", c.BasePath))
	}
	if err := c.JWT.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// streamCreate is the stream natsse creates when it is missing; nil when it
// must not.
func (c Config) streamCreate() *jetstream.StreamConfig {
	if !c.StreamCreate {
		return nil
	}
	return &jetstream.StreamConfig{
		Name:         c.Stream,
		Subjects:     c.StreamSubjects,
		Storage:      jetstream.FileStorage,
		MaxAge:       c.StreamMaxAge,
		MaxBytes:     c.StreamMaxBytes,
		Replicas:     c.StreamReplicas,
		MaxConsumers: c.StreamMaxConsumers,
	}
}
