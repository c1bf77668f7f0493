// Package cursors keeps named cursors (?durable=<name>, docs/protocol.md,
// "Named cursors"): a client's position kept on the server, in a durable
// JetStream consumer per name and scope, so that a later connection with
// the name continues where the last one stopped, on any replica. Open finds
// or creates the consumer before the SSE stream starts (a refusal problem
// for a name on other subjects, 409, or beyond the limit, 429), takes the
// name over from any connection holding it (takeover.go) and returns the
// stored position; a Cursor keeps that position current while the stream
// runs (cursor.go).
package cursors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service/natsversion"
	"github.com/natsse/natsse/service/refusal"
	"github.com/natsse/natsse/subjects"
)

// Config is what the cursors of one JetStream stream need.
type Config struct {
	// Stream names the JetStream stream.
	Stream string
	// TTL removes a cursor unused for this long (NATSSE_DURABLE_TTL).
	TTL time.Duration
	// Max bounds the cursors (NATSSE_MAX_DURABLES).
	Max int
	// PerClient bounds the new anonymous names one client address creates
	// on this replica within TTL (NATSSE_MAX_DURABLES_PER_CLIENT), so that
	// one address cannot take the whole of Max. Tokens list their names.
	PerClient int
	// ReplayConcurrency is the replays per replica, which need consumers of
	// the stream too (see Reserve).
	ReplayConcurrency int
	Log               *slog.Logger
}

// Cursors are the named cursors of one JetStream stream.
type Cursors struct {
	cfg       Config
	nc        *nats.Conn
	js        jetstream.JetStream
	takeovers *takeovers
	// filters are the consumer filters of everything served, for a cursor
	// whose own patterns overlap.
	filters func() []string

	mu sync.Mutex
	// created counts new anonymous names per client address, per TTL.
	created map[netip.Addr]*createdWindow
	// fullAt is when room last counted the cursors and found no room, and
	// fullCount what it counted: until roomRecheck has passed, a new name
	// is refused from this count, without listing every consumer again.
	fullAt               time.Time
	fullCount, fullLimit int
}

// createdWindow counts the names an address created since start.
type createdWindow struct {
	start time.Time
	n     int
}

// roomRecheck is how long a full count is trusted: cursors that expire
// meanwhile free their room this much later at most.
const roomRecheck = 5 * time.Second

// New returns the cursors of cfg.Stream; takeovers are answered while Run
// runs.
func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, filters func() []string) *Cursors {
	return &Cursors{cfg: cfg, nc: nc, js: js, takeovers: newTakeovers(cfg.Stream, nc, cfg.Log), filters: filters,
		created: map[netip.Addr]*createdWindow{}}
}

// Run answers takeover requests from other connections until ctx ends.
func (cs *Cursors) Run(ctx context.Context) { cs.takeovers.run(ctx) }

const (
	// cursorPrefix starts the name of every cursor's consumer, so they can be
	// told apart from other consumers on the stream (and counted).
	cursorPrefix = "natsse_"
	// subjectsKey is the consumer metadata that fixes a cursor's subjects.
	subjectsKey = "natsse_subjects"
	// serverDefaultMaxConsumers is nats-server's cap on a stream that sets no
	// max_consumers (default_max_consumers).
	serverDefaultMaxConsumers = 1000
	// cursorOpenTimeout bounds the NATS requests made before a cursor's stream
	// starts; a takeover waits at most takeoverWait of it.
	cursorOpenTimeout = 10 * time.Second
)

// ValidName reports whether name can name a cursor: 1 to 64 of
// A-Z a-z 0-9 _ -.
func ValidName(name string) bool {
	if len(name) < 1 || len(name) > 64 {
		return false
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// cursorConsumer names the JetStream consumer of a cursor: natsse_<scope>_<name>.
// The scope part is "anon" for anonymous requests and otherwise a hash of the
// scope (the token's sub), so two users never share a cursor, user ids never
// appear in consumer names, and no hash can collide with "anon" (it is hex).
func cursorConsumer(scope, name string) string {
	tag := "anon"
	if scope != "" {
		sum := sha256.Sum256([]byte(scope))
		tag = hex.EncodeToString(sum[:10])
	}
	return cursorPrefix + tag + "_" + name
}

// cursorSubjects is how a cursor's subjects are stored and compared: the
// same set in any order is the same cursor.
func cursorSubjects(patterns []string) string {
	s := slices.Clone(patterns)
	slices.Sort(s)
	return strings.Join(s, " ")
}

// Open gets a cursor ready before its SSE stream starts: it finds or
// creates the consumer of name in scope on patterns (409 for other
// subjects, 429 beyond the limit), takes the name over from any connection
// holding it, and returns the stored position (stored is false for a new
// name). stop and abort end the SSE stream when a newer connection takes
// the name over: after a final flush, or at once. A NATS problem is a soft
// refusal.
func (cs *Cursors) Open(ctx context.Context, name, scope string, client netip.Addr, patterns []string, stop, abort func()) (c *Cursor, pos uint64, stored bool, err error) {
	if v := cs.nc.ConnectedServerVersion(); v != "" && !natsversion.AtLeast(v, natsversion.NamedCursors) {
		return nil, 0, false, refusal.New(http.StatusNotImplemented, "named cursors (durable) need nats-server %s or later; the NATS server natsse is connected to runs %s: upgrade NATS, or resume with Last-Event-ID or lastEventId instead", natsversion.NamedCursors, v)
	}
	ctx, cancel := context.WithTimeout(ctx, cursorOpenTimeout)
	defer cancel()
	c = newCursor(cs, name, cursorConsumer(scope, name), stop, abort)
	cons, created, err := cs.find(ctx, c.consumer, patterns, func() error { return cs.allowNew(scope, client) })
	if err != nil {
		return nil, 0, false, cs.failed(c, "open", err)
	}
	if !created {
		// The older connection saves its last position before it answers,
		// so the position read next is where it stopped.
		if err := cs.takeovers.takeOver(ctx, c.consumer); err != nil {
			return nil, 0, false, cs.failed(c, "take over", err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return nil, 0, false, cs.failed(c, "read position", err)
		}
		pos, stored = info.AckFloor.Stream, true
	}
	c.cons = cons
	if err := cs.takeovers.hold(c); err != nil {
		return nil, 0, false, cs.failed(c, "subscribe for takeovers", err)
	}
	return c, pos, stored, nil
}

// failed logs a NATS problem and makes it a soft refusal; a refusal problem
// passes as it is.
func (cs *Cursors) failed(c *Cursor, what string, err error) error {
	var p *refusal.Problem
	if errors.As(err, &p) {
		return err
	}
	cs.cfg.Log.Warn("named cursor: "+what, "durable", c.name, "consumer", c.consumer, "err", err)
	return fmt.Errorf("%w: named cursor: %w", refusal.ErrSoft, err)
}

// find looks the cursor's consumer up, or creates it for a new name.
func (cs *Cursors) find(ctx context.Context, consumer string, patterns []string, allowNew func() error) (cons jetstream.Consumer, created bool, err error) {
	js, stream := cs.js, cs.cfg.Stream
	want := cursorSubjects(patterns)
	cons, err = js.Consumer(ctx, stream, consumer)
	if err == nil {
		info := cons.CachedInfo()
		if got, ok := info.Config.Metadata[subjectsKey]; !ok || got != want {
			return nil, false, conflict(got, want)
		}
		if info.Config.InactiveThreshold != cs.cfg.TTL {
			cfg := info.Config
			cfg.InactiveThreshold = cs.cfg.TTL
			if _, err := js.UpdateConsumer(ctx, stream, cfg); err != nil {
				cs.cfg.Log.Warn("named cursor: keeping the old NATSSE_DURABLE_TTL", "consumer", consumer, "err", err)
			}
		}
		return cons, false, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, false, err
	}
	if err := allowNew(); err != nil {
		return nil, false, err
	}
	if err := cs.room(ctx); err != nil {
		return nil, false, err
	}
	cons, err = js.CreateConsumer(ctx, stream, cs.consumerConfig(consumer, patterns))
	switch {
	case errors.Is(err, jetstream.ErrConsumerExists):
		// Created a moment ago with other subjects.
		return nil, false, conflict("", want)
	case errors.Is(err, jetstream.ErrMaximumConsumersLimit):
		return nil, false, refusal.New(http.StatusTooManyRequests, "the stream %s has no room for another consumer (its max_consumers): reuse a cursor name or wait until unused ones expire (NATSSE_DURABLE_TTL=%s)", stream, cs.cfg.TTL)
	case err != nil:
		return nil, false, err
	}
	return cons, true, nil
}

func conflict(got, want string) *refusal.Problem {
	if got == "" {
		return refusal.New(http.StatusConflict, "this durable name belongs to a cursor on other subjects; its subjects are fixed when it is created: use another name for %q", want)
	}
	return refusal.New(http.StatusConflict, "this durable name is a cursor on %q, not %q; its subjects are fixed when it is created: use another name", got, want)
}

// consumerConfig is a cursor's consumer. Its messages are only there to be
// acked (cursor.go): headers only, acked all-below, deleted by the server
// after NATSSE_DURABLE_TTL without a connection. DeliverAll lets a reset move
// it to any position, backwards too (an explicit Last-Event-ID).
func (cs *Cursors) consumerConfig(consumer string, patterns []string) jetstream.ConsumerConfig {
	filters := subjects.Filters(patterns)
	if filters == nil {
		// Overlapping patterns: a wider filter is still exact, see cursor.go.
		filters = cs.filters()
	}
	return jetstream.ConsumerConfig{
		Durable:           consumer,
		Description:       "natsse named cursor",
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckAllPolicy,
		AckWait:           cursorAckWait,
		MaxAckPending:     cursorMaxAckPending,
		FilterSubjects:    filters,
		HeadersOnly:       true,
		InactiveThreshold: cs.cfg.TTL,
		Metadata:          map[string]string{subjectsKey: cursorSubjects(patterns)},
	}
}

// allowNew counts a new anonymous name against its client address, or
// refuses it (429) when the address created its share within the TTL.
func (cs *Cursors) allowNew(scope string, client netip.Addr) error {
	if scope != "" || cs.cfg.PerClient <= 0 {
		return nil
	}
	now := time.Now()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.created) > 4096 { // forget addresses whose window ended
		for a, w := range cs.created {
			if now.Sub(w.start) >= cs.cfg.TTL {
				delete(cs.created, a)
			}
		}
	}
	w := cs.created[client]
	if w == nil || now.Sub(w.start) >= cs.cfg.TTL {
		w = &createdWindow{start: now}
		cs.created[client] = w
	}
	if w.n >= cs.cfg.PerClient {
		return refusal.New(http.StatusTooManyRequests, "this address created %d named cursors within NATSSE_DURABLE_TTL (%s); at most %d per address (NATSSE_MAX_DURABLES_PER_CLIENT): reuse a cursor name", w.n, cs.cfg.TTL, cs.cfg.PerClient)
	}
	w.n++ // counted when tried: a refused creation still costs a request
	return nil
}

// room refuses a new name once NATSSE_MAX_DURABLES cursors exist. The
// count comes from JetStream, so it holds across replicas: the stream's
// consumer count is an upper bound (one request), and only when it reaches
// the limit are the consumer names listed to count the cursors exactly.
// Replicas creating names at the same instant may overshoot by a few; the
// stream's max_consumers, kept above the limit, is the hard stop.
func (cs *Cursors) room(ctx context.Context) error {
	cs.mu.Lock()
	fullAt, fullCount, fullLimit := cs.fullAt, cs.fullCount, cs.fullLimit
	cs.mu.Unlock()
	if time.Since(fullAt) < roomRecheck {
		return cs.noRoom(fullCount, fullLimit)
	}
	jsStream, err := cs.js.Stream(ctx, cs.cfg.Stream)
	if err != nil {
		return err
	}
	info := jsStream.CachedInfo()
	limit := Limit(cs.cfg.Max, info.Config.MaxConsumers, cs.cfg.ReplayConcurrency)
	if info.State.Consumers < limit {
		return nil
	}
	names := jsStream.ConsumerNames(ctx)
	n := 0
	for name := range names.Name() {
		if strings.HasPrefix(name, cursorPrefix) {
			n++
		}
	}
	if err := names.Err(); err != nil {
		return err
	}
	if n < limit {
		return nil
	}
	cs.mu.Lock()
	cs.fullAt, cs.fullCount, cs.fullLimit = time.Now(), n, limit
	cs.mu.Unlock()
	return cs.noRoom(n, limit)
}

func (cs *Cursors) noRoom(n, limit int) error {
	return refusal.New(http.StatusTooManyRequests, "%d named cursors exist, and %d are allowed (NATSSE_MAX_DURABLES, kept within the stream's max_consumers): reuse a cursor name or wait until unused ones expire (NATSSE_DURABLE_TTL=%s)", n, limit, cs.cfg.TTL)
}

// Reserve is the part of a stream's max_consumers that named cursors leave
// free: room for the upstream and replay consumers of four replicas.
func Reserve(replayConcurrency int) int { return 4*replayConcurrency + 16 }

// Limit is how many of maxDurables cursors may exist on a stream with
// maxConsumers.
func Limit(maxDurables, maxConsumers, replayConcurrency int) int {
	if maxConsumers <= 0 {
		maxConsumers = serverDefaultMaxConsumers
	}
	return max(0, min(maxDurables, maxConsumers-Reserve(replayConcurrency)))
}
