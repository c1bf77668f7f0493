// Package upstream reads one JetStream stream into its fan-out core: one
// ordered consumer per process, filtered to the served subjects, started at
// the stream's end when the stream's first SSE stream opens (Want) and
// deleted once nobody has read the stream for Config.Idle, so that a stream
// nobody reads costs no consumer. It restarts the consumer where it stopped after a
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
	"slices"
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
	// Last-Event-ID and get a reset (docs/protocol.md, "Reset"). Missing is
	// called when the stream is gone: its clients end and get the soft
	// refusal until it is back.
	Recreated, Missing func()
	// Found, when set, is told the stream's subjects the first time the
	// stream is found, before anything of it is served; an error is a
	// setting that cannot work, which stops natsse (Fail).
	Found func(streamSubjects []string) error
	// Fail receives the one error that stops natsse: a setting that cannot
	// work with this stream (docs/configuration.md). Run has returned then.
	Fail func(error)
	// Idle is how long the upstream consumer stays after the stream's last
	// SSE stream ended (NATSSE_UPSTREAM_IDLE); negative: it runs always,
	// from the start, readers or not.
	Idle time.Duration
	// Fed is called when the core got a ring or lost it (Want, idleness),
	// so that the cores can share the ring budget.
	Fed func()
	// Mover moves natsse to another NATS server; one per connection,
	// shared by the readers of every served stream.
	Mover *Mover
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
	missingOnce sync.Once
	// missing: the stream was found once and is gone now.
	missing atomic.Bool
	// consuming: an upstream consumer runs.
	consuming atomic.Bool

	// demand counts the SSE streams reading the stream (Want); idleSince is
	// when it last fell to zero. Both under mu, as is the core's Idle.
	mu        sync.Mutex
	demand    int
	idleSince time.Time
	// wake tells Run that the stream has readers again.
	wake chan struct{}
	// loggedServer is the NATS server (and version) the last "serving
	// stream" line named (only the Run goroutine touches it).
	loggedServer string
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
	if cfg.Mover == nil {
		cfg.Mover = NewMover(nc, cfg.Log)
	}
	return &Reader{cfg: cfg, nc: nc, js: js, core: core, started: make(chan struct{}), wake: make(chan struct{}, 1), backoff: moveAfter}
}

// Started is closed once the stream was found.
func (u *Reader) Started() <-chan struct{} { return u.started }

// Served is what the stream serves; nil until it was found.
func (u *Reader) Served() *Served { return u.served.Load() }

// Consuming says whether an upstream consumer runs.
func (u *Reader) Consuming() bool { return u.consuming.Load() }

// Missing says whether the stream, found before, is gone now.
func (u *Reader) Missing() bool { return u.missing.Load() }

// Want counts one more SSE stream reading the stream until release is
// called, and makes sure the core has a ring to attach to: an idle core
// gets one at the stream's last sequence, read now, so that a stream
// without a position starts after what is stored when it opens. The
// upstream consumer starts if it is not running.
func (u *Reader) Want(ctx context.Context) (release func()) {
	u.mu.Lock()
	u.demand++
	if u.demand == 1 {
		select {
		case u.wake <- struct{}{}:
		default:
		}
	}
	u.mu.Unlock()
	if !u.core.Fed() {
		head := u.lastSeq.Load()
		c, cancel := context.WithTimeout(ctx, watchTimeout)
		if jsStream, err := u.js.Stream(c, u.cfg.Stream); err == nil {
			head = jsStream.CachedInfo().State.LastSeq
		}
		cancel()
		if u.core.Prime(head) && u.cfg.Fed != nil {
			u.cfg.Fed()
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			if u.demand--; u.demand == 0 {
				u.idleSince = time.Now()
			}
		})
	}
}

// wanted says whether the stream has readers, or is read always.
func (u *Reader) wanted() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.demand > 0 || u.cfg.Idle < 0
}

// idleFor says for how long the stream has had no readers (0: it has).
func (u *Reader) idleFor(now time.Time) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.demand > 0 {
		return 0
	}
	return now.Sub(u.idleSince)
}

// goIdle empties the core once the consumer stopped, unless readers came
// back meanwhile; it reports whether it did.
func (u *Reader) goIdle() bool {
	u.mu.Lock()
	idle := u.demand == 0
	if idle {
		u.core.Idle()
	}
	u.mu.Unlock()
	if idle && u.cfg.Fed != nil {
		u.cfg.Fed()
	}
	return idle
}

// Run finds (or creates) the stream, consumes it while it has readers,
// and keeps readiness current until ctx ends.
func (u *Reader) Run(ctx context.Context) {
	defer func() { u.ready.Store(false) }()
	for ctx.Err() == nil {
		consume := u.wanted()
		cc, ok := u.startRetrying(ctx, consume)
		if !ok {
			return
		}
		end := u.watch(ctx, cc != nil)
		if cc != nil {
			u.stopConsumer(cc)
		}
		switch end {
		case upstreamRecreated:
			u.cfg.Log.Warn("the stream was deleted and created again: its sequences start over; closing open streams so that clients resume from their positions", "stream", u.cfg.Stream)
		case upstreamStalled:
			u.cfg.Log.Warn("the upstream consumer stopped delivering; starting it again from where it stopped", "stream", u.cfg.Stream)
		case upstreamIdle:
			if u.goIdle() {
				u.cfg.Log.Debug("nobody reads the stream: upstream consumer stopped", "stream", u.cfg.Stream)
			}
		case upstreamMissing:
			u.goIdle()
			if u.cfg.Missing != nil {
				u.cfg.Missing()
			}
		}
	}
}

// stopConsumer stops an upstream consumer and deletes it on the server,
// which would otherwise keep it for its inactivity threshold. A consumer in
// the middle of a reset holds its lock until the request it waits for
// times out: neither is waited for. The generation check in Dispatch drops
// what it might still deliver.
func (u *Reader) stopConsumer(cc *consumer) {
	u.consuming.Store(false)
	go func() {
		cc.ctx.Stop()
		info := cc.cons.CachedInfo()
		if info == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := u.js.DeleteConsumer(ctx, u.cfg.Stream, info.Name); err == nil {
			u.cfg.Log.Debug("upstream consumer deleted", "stream", u.cfg.Stream, "consumer", info.Name)
		}
	}()
}

// consumer is a running upstream consumer.
type consumer struct {
	cons jetstream.Consumer
	ctx  jetstream.ConsumeContext
}

// startRetrying finds the stream and, when consume is set, starts the
// upstream consumer, retrying until it succeeds (ok) or ctx ends. A server that cannot start it for as long as watch lets a problem
// last before moving (a cut-off server: the consumer's creation needs the
// meta leader, out of its reach) makes natsse move on as watch does, with
// the same doubling wait: a move, watch's included, can land on a cut-off
// server, and no stream check runs here to move natsse off it
// (docs/production.md, "Partitions").
func (u *Reader) startRetrying(ctx context.Context, consume bool) (cc *consumer, ok bool) {
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
			return nil, false
		case <-time.After(wait):
		}
		cc, err := u.start(ctx, consume)
		if err == nil {
			return cc, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		if fatal := (*settingError)(nil); errors.As(err, &fatal) {
			if u.cfg.Fail != nil {
				u.cfg.Fail(fatal) // natsse stops with this line (docs/configuration.md)
			}
			return nil, false
		}
		u.ready.Store(false)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			// Missing is not the server's fault: no move (another
			// server would say the same); lookup logged it once.
			if u.known && !u.missing.Swap(true) {
				u.cfg.Log.Warn("the stream is gone: its streams end, and new ones get the soft refusal until it is back", "stream", u.cfg.Stream)
			}
			u.setStuck("it does not exist")
			u.cfg.Log.Debug("waiting for the stream", "stream", u.cfg.Stream, "err", err)
			badSince = time.Time{}
			continue
		}
		u.cfg.Log.Warn("waiting for the stream", "stream", u.cfg.Stream, "err", err)
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

// start looks up the stream and, when consume is set, begins the upstream
// consumer after the last message the core has (at the stream's end, for
// a new stream or an idle core).
func (u *Reader) start(ctx context.Context, consume bool) (*consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	jsStream, err := u.lookup(ctx)
	if err != nil {
		return nil, err
	}
	info := jsStream.CachedInfo()
	if !u.known && u.cfg.Found != nil {
		if err := u.cfg.Found(info.Config.Subjects); err != nil {
			return nil, &settingError{err.Error()}
		}
	}
	served := newServed(info.Config.Subjects, u.cfg.Subjects)
	recreated := u.known && !info.Created.Equal(u.created)
	if !u.known || recreated {
		u.known, u.created = true, info.Created
	}
	u.lastSeq.Store(info.State.LastSeq)
	if u.missing.Swap(false) {
		u.cfg.Log.Info("the stream is back", "stream", u.cfg.Stream)
	}
	if !consume {
		if recreated {
			u.core.Restart(info.State.LastSeq, true)
			u.goIdle()
			if u.cfg.Recreated != nil {
				u.cfg.Recreated()
			}
		}
		u.found(served)
		return nil, nil
	}
	gen, next := u.core.Restart(info.State.LastSeq, recreated)
	if recreated && u.cfg.Recreated != nil {
		u.cfg.Recreated()
	}
	if u.cfg.Fed != nil {
		u.cfg.Fed()
	}
	cons, err := jsStream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: served.filters,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    next,
		// One attempt per reset: a consumer retrying on its own holds its
		// lock (and Stop) for as long as it retries, while the reader starts
		// a fresh upstream anyway when this one keeps failing (watch).
		MaxResetAttempts: 1,
		// Deleted when stopped (stopConsumer); should that fail (natsse
		// cut off), the server drops it this long after its last pull.
		InactiveThreshold: 30 * time.Second,
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
	u.consuming.Store(true)
	u.found(served)
	u.cfg.Log.Debug("upstream consumer started", "stream", u.cfg.Stream, "from_seq", next)
	return &consumer{cons: cons, ctx: cc}, nil
}

// found makes the stream servable: what it serves, ready, started.
func (u *Reader) found(served *Served) {
	u.served.Store(served)
	u.stuck.Store(nil)
	u.ready.Store(true)
	u.startedOnce.Do(func() { close(u.started) })
	// Said at start and after each move to another server, with the
	// server's version (docs/production.md, "NATS versions").
	server := u.nc.ConnectedServerName() + " " + u.nc.ConnectedServerVersion()
	if server == u.loggedServer {
		return
	}
	u.loggedServer = server
	version := u.nc.ConnectedServerVersion()
	u.cfg.Log.Info("serving stream", "stream", u.cfg.Stream, "subjects", served.served, "nats_server", u.nc.ConnectedServerName(), "nats_version", version)
	switch {
	case !natsversion.AtLeast(version, natsversion.Oldest):
		u.cfg.Log.Warn("nats-server "+version+" is older than natsse supports ("+natsversion.Oldest+"): upgrade NATS", "nats_server", u.nc.ConnectedServerName())
	case !natsversion.AtLeast(version, natsversion.NamedCursors):
		u.cfg.Log.Warn("named cursors (?durable=) need nats-server "+natsversion.NamedCursors+" or later; on "+version+" they are refused (501)", "nats_server", u.nc.ConnectedServerName())
	}
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
		u.missingOnce.Do(func() {
			if u.known {
				return // gone after it was served: Run says so
			}
			if u.cfg.Suggest == nil {
				// One of several streams: their subjects are the operator's.
				u.cfg.Log.Warn("the stream "+u.cfg.Stream+" does not exist: create it (nats stream add "+shellQuote(u.cfg.Stream)+" --subjects ...); its subjects are served once it exists",
					"stream", u.cfg.Stream)
				return
			}
			u.cfg.Log.Warn("the stream "+u.cfg.Stream+" does not exist, and natsse does not create it (NATSSE_STREAM_CREATE is off): create it with the command below (with your nats context or --server), or set NATSSE_STREAM_CREATE=true; /readyz is 503 until it exists",
				"stream", u.cfg.Stream, "command", AddCommand(*u.cfg.Suggest))
		})
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

// ServedSubjects is what a stream on streamSubjects serves of configured
// (NATSSE_SUBJECTS; none: all of the stream's own): each configured pattern
// inside a subject of the stream, and each subject of the stream inside a
// configured pattern (NATSSE_SUBJECTS=events.> with a stream on
// events.orders.>). It may be empty.
func ServedSubjects(streamSubjects, configured []string) []string {
	if len(configured) == 0 {
		return streamSubjects
	}
	var served []string
	add := func(p string) {
		if !slices.Contains(served, p) {
			served = append(served, p)
		}
	}
	for _, c := range configured {
		for _, own := range streamSubjects {
			switch {
			case subjects.Inside(c, own):
				add(c)
			case subjects.Inside(own, c):
				add(own)
			}
		}
	}
	return served
}

func newServed(streamSubjects, configured []string) *Served {
	served := ServedSubjects(streamSubjects, configured)
	return &Served{subjects: streamSubjects, served: served, filters: subjects.Filters(served)}
}

// Serves reports whether pattern lies inside the served subjects and the
// stream's subjects.
func (s *Served) Serves(pattern string) bool {
	return subjects.InsideAny(pattern, s.served) && subjects.InsideAny(pattern, s.subjects)
}

// Overlaps reports whether pattern reaches into the served subjects
// without lying inside them.
func (s *Served) Overlaps(pattern string) bool {
	for _, p := range s.served {
		if subjects.Overlap(pattern, p) {
			return true
		}
	}
	return false
}

// Subjects are the served subjects, for a 404's detail.
func (s *Served) Subjects() []string { return s.served }

// Filters are the consumer filters of everything served; nil: no filter.
func (s *Served) Filters() []string { return s.filters }
