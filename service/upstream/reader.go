// Package upstream reads one JetStream stream into its fan-out core: one
// ordered consumer per process, filtered to the served subjects and started
// at the stream's end. It restarts the consumer where it stopped after a
// stall or a move to another NATS server (the core keeps its ring and its
// live subscribers), starts over when the stream was deleted and created
// again (the core drops both, Config.Recreated closes the SSE streams), and
// keeps readiness current: whether the stream answers, and whether the NATS
// server natsse is connected to can deliver anything new at all
// (docs/protocol.md, "Operations").
package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service/fanout"
	"github.com/natsse/natsse/service/natsversion"
	"github.com/natsse/natsse/subjects"
)

// Config is what a Reader reads and whom it tells.
type Config struct {
	// Stream names the JetStream stream.
	Stream string
	// Subjects are the subjects served over HTTP; empty: the stream's own.
	Subjects []string
	// Create, when set, creates the stream when it is missing.
	Create *jetstream.StreamConfig
	// Suggest, when Create is nil, is the stream the log tells the operator
	// to create when it is missing (docs/operations.md, "Logs").
	Suggest *jetstream.StreamConfig
	Log     *slog.Logger
	// Recreated is called when the stream was deleted and created again,
	// after the upstream restarted: its clients must come back with their
	// Last-Event-ID and get a reset (docs/protocol.md, "Reset").
	Recreated func()
}

// Reader is the upstream of one JetStream stream.
type Reader struct {
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	core *fanout.Core

	served atomic.Pointer[Served] // nil until the stream was found
	ready  atomic.Bool            // stream reachable right now
	// stuck says why the upstream cannot deliver through the NATS server
	// natsse is connected to (nil: it can); see watch.
	stuck atomic.Pointer[string]
	// failing is when the upstream consumer reported an error (missed
	// heartbeats, mostly) not followed by a message since (unix ns; 0:
	// none).
	failing atomic.Int64
	// backoff is how long a problem must last before natsse moves to
	// another server (only the Run goroutine touches it).
	backoff time.Duration
	// lastSeq is the stream's last sequence as the watch last read it.
	lastSeq atomic.Uint64

	started     chan struct{} // closed once the stream was found
	startedOnce sync.Once
	// failed receives the one error that stops natsse: a setting that
	// cannot work with this stream (see Failed).
	failed      chan error
	missingOnce sync.Once
	// known and created identify the stream being served (only the Run
	// goroutine touches them): a stream deleted and created again under the
	// same name starts its sequences over.
	known   bool
	created time.Time
}

// New returns the reader of cfg.Stream that feeds core; it reads once Run
// runs.
// upstreamPrefetch bounds the bytes the upstream consumer asks for ahead of
// what natsse has taken (at least two of the largest messages). The default,
// 500 messages, was 500 MB of 1 MB messages: natsse's memory, and more than
// nats-server buffers for one client connection, so that it dropped
// messages on that connection, the replays' too, which lost them
// (docs/operations.md, "Limits").
const upstreamPrefetch = 8 << 20

func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, core *fanout.Core) *Reader {
	return &Reader{cfg: cfg, nc: nc, js: js, core: core, started: make(chan struct{}), failed: make(chan error, 1), backoff: moveAfter}
}

// Started is closed once the stream was found.
func (u *Reader) Started() <-chan struct{} { return u.started }

// Failed receives an error, once, when a setting cannot work with the
// stream: NATSSE_SUBJECTS outside its subjects, or a stream JetStream
// refuses to create. Run has returned then; natsse must stop with that line
// instead of waiting forever (docs/configuration.md).
func (u *Reader) Failed() <-chan error { return u.failed }

// Served is what the stream serves; nil until it was found.
func (u *Reader) Served() *Served { return u.served.Load() }

// Run finds (or creates) the stream, consumes it until ctx ends, and keeps
// readiness current. It returns when ctx is done.
func (u *Reader) Run(ctx context.Context) {
	for ctx.Err() == nil {
		cc := u.startRetrying(ctx)
		if cc == nil {
			return
		}
		end := u.watch(ctx)
		// A consumer in the middle of a reset holds its lock until the
		// request it waits for times out (10s): don't wait for it. The
		// generation check in Dispatch drops what it might still deliver.
		go cc.Stop()
		switch end {
		case upstreamRecreated:
			u.cfg.Log.Warn("the stream was deleted and created again: its sequences start over; closing open streams so that clients resume from their positions", "stream", u.cfg.Stream)
		case upstreamStalled:
			u.cfg.Log.Warn("the upstream consumer stopped delivering; starting it again from where it stopped", "stream", u.cfg.Stream)
		}
	}
}

// startRetrying starts the upstream, retrying until it starts or ctx ends
// (nil). A server that cannot start it for as long as watch lets a problem
// last before moving (a cut-off server: the consumer's creation needs the
// meta leader, out of its reach) makes natsse move on as watch does, with
// the same doubling wait: a move, watch's included, can land on a cut-off
// server, and no stream check runs here to move natsse off it
// (docs/production.md, "Partitions").
func (u *Reader) startRetrying(ctx context.Context) jetstream.ConsumeContext {
	var badSince time.Time // first failed start on this server
	for retry := time.Duration(0); ; retry = min(max(2*retry, 250*time.Millisecond), 5*time.Second) {
		// Try once more when a move falls due, not later; once it is due
		// (and refused: a single server), the retry wait alone applies.
		wait := retry
		if due := time.Until(badSince.Add(u.backoff)); !badSince.IsZero() && due > 0 {
			wait = min(wait, due)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		cc, err := u.start(ctx)
		if err == nil {
			return cc
		}
		if ctx.Err() != nil {
			return nil
		}
		if fatal := (*settingError)(nil); errors.As(err, &fatal) {
			u.failed <- fatal // natsse stops with this line (docs/configuration.md)
			return nil
		}
		u.cfg.Log.Warn("waiting for the stream", "stream", u.cfg.Stream, "err", err)
		u.ready.Store(false)
		if !u.nc.IsConnected() {
			badSince = time.Time{} // nats.go is reconnecting; the next server gets its own wait
			continue
		}
		problem := fmt.Sprintf("NATS server %s cannot start the upstream: %v", u.nc.ConnectedServerName(), err)
		u.setStuck(problem)
		now := time.Now()
		if badSince.IsZero() {
			badSince = now
		}
		if now.Sub(badSince) >= u.backoff && u.move(problem) {
			badSince, retry = time.Time{}, 0
		}
	}
}

// start looks up the stream and begins the upstream consumer after the
// last message the core has (at the stream's end, for a new stream).
func (u *Reader) start(ctx context.Context) (jetstream.ConsumeContext, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	jsStream, err := u.lookup(ctx)
	if err != nil {
		return nil, err
	}
	info := jsStream.CachedInfo()
	if !u.known {
		for _, p := range u.cfg.Subjects {
			if !subjects.InsideAny(p, info.Config.Subjects) {
				return nil, &settingError{fmt.Sprintf("NATSSE_SUBJECTS: %q is not within the subjects of the stream %s (%s), so nothing of it would be served: narrow NATSSE_SUBJECTS to them, or add it to the stream's subjects",
					p, u.cfg.Stream, strings.Join(info.Config.Subjects, ", "))}
			}
		}
	}
	served := newServed(info.Config.Subjects, u.cfg.Subjects)
	recreated := u.known && !info.Created.Equal(u.created)
	if !u.known || recreated {
		u.known, u.created = true, info.Created
	}
	gen, next := u.core.Restart(info.State.LastSeq, recreated)
	if recreated && u.cfg.Recreated != nil {
		u.cfg.Recreated()
	}
	cons, err := jsStream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: served.filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    next,
		// One attempt per reset: a consumer retrying on its own holds its
		// lock (and Stop) for as long as it retries, while the reader starts
		// a fresh upstream anyway when this one keeps failing (watch).
		MaxResetAttempts: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream consumer: %w", err)
	}
	// Short pulls with 1 s heartbeats: the upstream consumer lives on one
	// server of the stream, and when that server goes away only missed
	// heartbeats tell; with the defaults live delivery paused ~10 s
	// (TestClusterUpstreamHostLoss), now ~2 s.
	u.failing.Store(0)
	cc, err := cons.Consume(func(m jetstream.Msg) { u.onMessage(gen, served, m) }, jetstream.PullExpiry(upstreamExpiry), jetstream.PullHeartbeat(upstreamHeartbeat),
		jetstream.PullMaxBytes(max(upstreamPrefetch, 2*int(u.nc.MaxPayload())+64<<10)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			u.cfg.Log.Debug("upstream", "err", err)
			u.core.IfCurrent(gen, func() { u.failing.CompareAndSwap(0, time.Now().UnixNano()) })
		}))
	if err != nil {
		return nil, fmt.Errorf("upstream consume: %w", err)
	}
	u.served.Store(served)
	u.stuck.Store(nil)
	u.ready.Store(true)
	u.startedOnce.Do(func() { close(u.started) })
	version := u.nc.ConnectedServerVersion()
	u.cfg.Log.Info("serving stream", "stream", u.cfg.Stream, "subjects", served.served, "from_seq", next, "nats_server", u.nc.ConnectedServerName(), "nats_version", version)
	switch {
	case !natsversion.AtLeast(version, natsversion.Oldest):
		u.cfg.Log.Warn("nats-server "+version+" is older than natsse supports ("+natsversion.Oldest+"): upgrade NATS", "nats_server", u.nc.ConnectedServerName())
	case !natsversion.AtLeast(version, natsversion.NamedCursors):
		u.cfg.Log.Warn("named cursors (?durable=) need nats-server "+natsversion.NamedCursors+" or later; on "+version+" they are refused (501)", "nats_server", u.nc.ConnectedServerName())
	}
	return cc, nil
}

// lookup returns the stream, creating it when configured to. A stream
// JetStream refuses to create for good is a *settingError; a missing one
// that natsse must not create is logged once with the command that
// creates it.
func (u *Reader) lookup(ctx context.Context) (jetstream.Stream, error) {
	jsStream, err := u.js.Stream(ctx, u.cfg.Stream)
	if err == nil || !errors.Is(err, jetstream.ErrStreamNotFound) {
		return jsStream, err
	}
	if u.cfg.Create == nil {
		if u.cfg.Suggest != nil {
			u.missingOnce.Do(func() {
				u.cfg.Log.Warn("the stream "+u.cfg.Stream+" does not exist, and natsse does not create it (NATSSE_STREAM_CREATE is off): create it with the command below (with your nats context or --server), or set NATSSE_STREAM_CREATE=true; /readyz is 503 until it exists",
					"stream", u.cfg.Stream, "command", AddCommand(*u.cfg.Suggest))
			})
		}
		return jsStream, err
	}
	jsStream, err = u.js.CreateStream(ctx, *u.cfg.Create)
	if err == nil {
		u.cfg.Log.Info("created stream", "stream", u.cfg.Stream, "subjects", u.cfg.Create.Subjects)
		return jsStream, nil
	}
	return nil, createError(*u.cfg.Create, err)
}

// settingError is a setting that cannot work with the stream: natsse stops
// with its one line (Failed) instead of retrying.
type settingError struct{ msg string }

func (e *settingError) Error() string { return e.msg }

// createError names the setting behind JetStream's refusal to create the
// stream, when the refusal stays whatever natsse waits for (overlapping
// subjects, storage the server does not have, replicas it cannot place);
// other errors (timeouts, a cluster without a leader) are waited out.
func createError(sc jetstream.StreamConfig, err error) error {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return err
	}
	what := fmt.Sprintf("JetStream cannot create the stream %s: %s (error %d)", sc.Name, api.Description, api.ErrorCode)
	switch api.ErrorCode {
	case 10065: // subjects overlap with an existing stream
		return &settingError{fmt.Sprintf("NATSSE_STREAM_SUBJECTS: %s: %s overlaps another stream's subjects; use subjects no other stream holds, or serve that stream (NATSSE_STREAM)", what, strings.Join(sc.Subjects, ","))}
	case 10023, 10028, 10047, 10113, 10122: // storage: insufficient, exceeded, limits
		return &settingError{fmt.Sprintf("NATSSE_STREAM_MAX_BYTES: %s: %d bytes asked; lower NATSSE_STREAM_MAX_BYTES, or give JetStream more storage", what, sc.MaxBytes)}
	case 10074: // replicas > 1 on a server that is not clustered
		return &settingError{fmt.Sprintf("NATSSE_STREAM_REPLICAS: %s: %d replicas asked; use 1, or a NATS cluster", what, sc.Replicas)}
	case 10027, 10052: // the account's stream limit; a config the server refuses
		return &settingError{fmt.Sprintf("NATSSE_STREAM_CREATE: %s; create the stream yourself and set NATSSE_STREAM_CREATE=false", what)}
	}
	return err
}

// AddCommand is the nats CLI command that creates the stream natsse would
// create (docs/operations.md, "Logs").
func AddCommand(sc jetstream.StreamConfig) string {
	cmd := "nats stream add " + shellQuote(sc.Name)
	for _, s := range sc.Subjects {
		cmd += " --subjects " + shellQuote(s)
	}
	cmd += fmt.Sprintf(" --storage file --replicas %d", sc.Replicas)
	if sc.MaxAge > 0 {
		cmd += " --max-age " + shortDuration(sc.MaxAge)
	}
	if sc.MaxBytes > 0 {
		cmd += fmt.Sprintf(" --max-bytes %d", sc.MaxBytes)
	}
	if sc.MaxConsumers > 0 {
		cmd += fmt.Sprintf(" --max-consumers %d", sc.MaxConsumers)
	}
	return cmd + " --defaults"
}

// shortDuration writes 24h for 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// shellQuote quotes s for a POSIX shell unless it is plainly safe as is.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// onMessage encodes one upstream message and hands it to the core, which
// never blocks on a subscriber.
func (u *Reader) onMessage(gen uint64, served *Served, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	if served.filters == nil && !subjects.MatchAny(served.served, m.Subject()) {
		return
	}
	f := fanout.NewFrame(meta.Sequence.Stream, m.Subject(), meta.Timestamp, m.Headers(), m.Data())
	if u.core.Dispatch(gen, f) && u.failing.Load() != 0 {
		u.failing.Store(0) // progress
	}
}

// The upstream's pull requests: see start.
const (
	upstreamExpiry    = 4 * time.Second
	upstreamHeartbeat = time.Second
)

// Served is what a stream serves over HTTP, as found when the upstream
// started.
type Served struct {
	subjects []string // the stream's subjects
	served   []string // what HTTP may ask for
	filters  []string // upstream and replay filters (no overlaps; nil: all)
}

func newServed(streamSubjects, configured []string) *Served {
	s := &Served{subjects: streamSubjects, served: configured}
	if len(s.served) == 0 {
		s.served = streamSubjects
	}
	s.filters = subjects.Filters(s.served)
	return s
}

// Serves reports whether pattern lies inside the served subjects and the
// stream's subjects.
func (s *Served) Serves(pattern string) bool {
	return subjects.InsideAny(pattern, s.served) && subjects.InsideAny(pattern, s.subjects)
}

// Subjects are the served subjects, for a 404's detail.
func (s *Served) Subjects() []string { return s.served }

// Filters are the consumer filters of everything served; nil: no filter.
func (s *Served) Filters() []string { return s.filters }
