package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Named cursors (?durable=<name>, docs/protocol.md, "Named cursors") keep a client's position on
// the server, in a durable JetStream consumer per name. This file finds or
// creates that consumer before the stream starts; cursor.go keeps its
// position current while the stream runs; takeover.go closes an older
// connection holding the same name.

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

// parseDurable checks ?durable=: one name of 1 to 64 of A-Z a-z 0-9 _ -.
func parseDurable(values []string, req *request) *problem {
	if len(values) != 1 {
		return newProblem(http.StatusBadRequest, "%d durable parameters given; give one cursor name", len(values))
	}
	name := values[0]
	if !validCursorName(name) {
		return newProblem(http.StatusBadRequest, "durable=%q is not a cursor name: use 1 to 64 characters of A-Z a-z 0-9 _ -", name)
	}
	req.durable = name
	return nil
}

func validCursorName(name string) bool {
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

// openCursor gets the request's cursor ready before the stream starts: it
// finds or creates the consumer (409 for other subjects, 429 beyond the
// limit), takes the name over from any connection holding it, and gives the
// request the stored position unless it carries one of its own (which then
// moves the stored position once the stream runs). ok is false when the
// request must not be served: p says why, or is nil for a NATS problem that
// deserves the soft refusal.
func (s *Server) openCursor(ctx context.Context, req *request, sub *subscriber) (p *problem, ok bool) {
	if req.durable == "" {
		return nil, true
	}
	ctx, cancel := context.WithTimeout(ctx, cursorOpenTimeout)
	defer cancel()
	c := newCursor(s, req.durable, cursorConsumer(req.scope, req.durable), sub)
	cons, created, p, err := s.findCursor(ctx, c.consumer, req.patterns)
	if p != nil || err != nil {
		s.logCursorErr(c, "open", err)
		return p, false
	}
	if !created {
		// The older connection saves its last position before it answers,
		// so the position read next is where it stopped.
		if err := s.takeovers.takeOver(ctx, c.consumer); err != nil {
			s.logCursorErr(c, "take over", err)
			return nil, false
		}
		info, err := cons.Info(ctx)
		if err != nil {
			s.logCursorErr(c, "read position", err)
			return nil, false
		}
		if !req.hasPosition {
			req.position, req.hasPosition = info.AckFloor.Stream, true
		}
	}
	c.cons = cons
	if err := s.takeovers.hold(c); err != nil {
		s.logCursorErr(c, "subscribe for takeovers", err)
		return nil, false
	}
	req.cursor = c
	return nil, true
}

func (s *Server) logCursorErr(c *cursor, what string, err error) {
	if err != nil {
		s.log.Warn("named cursor: "+what, "durable", c.name, "consumer", c.consumer, "err", err)
	}
}

// findCursor looks the cursor's consumer up, or creates it for a new name.
func (s *Server) findCursor(ctx context.Context, consumer string, patterns []string) (cons jetstream.Consumer, created bool, p *problem, err error) {
	js, stream := s.hub.js, s.cfg.Stream
	want := cursorSubjects(patterns)
	cons, err = js.Consumer(ctx, stream, consumer)
	if err == nil {
		info := cons.CachedInfo()
		if got, ok := info.Config.Metadata[subjectsKey]; !ok || got != want {
			return nil, false, conflict(got, want), nil
		}
		if info.Config.InactiveThreshold != s.cfg.DurableTTL {
			cfg := info.Config
			cfg.InactiveThreshold = s.cfg.DurableTTL
			if _, err := js.UpdateConsumer(ctx, stream, cfg); err != nil {
				s.log.Warn("named cursor: keeping the old NATSSE_DURABLE_TTL", "consumer", consumer, "err", err)
			}
		}
		return cons, false, nil, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, false, nil, err
	}
	if p, err := s.cursorRoom(ctx); p != nil || err != nil {
		return nil, false, p, err
	}
	cons, err = js.CreateConsumer(ctx, stream, s.cursorConfig(consumer, patterns))
	switch {
	case errors.Is(err, jetstream.ErrConsumerExists):
		// Created a moment ago with other subjects.
		return nil, false, conflict("", want), nil
	case errors.Is(err, jetstream.ErrMaximumConsumersLimit):
		return nil, false, newProblem(http.StatusTooManyRequests, "the stream %s has no room for another consumer (its max_consumers): reuse a cursor name or wait until unused ones expire (NATSSE_DURABLE_TTL=%s)", stream, s.cfg.DurableTTL), nil
	case err != nil:
		return nil, false, nil, err
	}
	return cons, true, nil, nil
}

func conflict(got, want string) *problem {
	if got == "" {
		return newProblem(http.StatusConflict, "this durable name belongs to a cursor on other subjects; its subjects are fixed when it is created: use another name for %q", want)
	}
	return newProblem(http.StatusConflict, "this durable name is a cursor on %q, not %q; its subjects are fixed when it is created: use another name", got, want)
}

// cursorConfig is a cursor's consumer. Its messages are only there to be
// acked (cursor.go): headers only, acked all-below, deleted by the server
// after NATSSE_DURABLE_TTL without a connection. DeliverAll lets a reset move
// it to any position, backwards too (an explicit Last-Event-ID).
func (s *Server) cursorConfig(consumer string, patterns []string) jetstream.ConsumerConfig {
	filters := filtersFor(patterns)
	if filters == nil {
		// Overlapping patterns: a wider filter is still exact, see cursor.go.
		if st := s.hub.state.Load(); st != nil {
			filters = st.filters
		}
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
		InactiveThreshold: s.cfg.DurableTTL,
		Metadata:          map[string]string{subjectsKey: cursorSubjects(patterns)},
	}
}

// cursorRoom refuses a new name once NATSSE_MAX_DURABLES cursors exist. The
// count comes from JetStream, so it holds across replicas: the stream's
// consumer count is an upper bound (one request), and only when it reaches
// the limit are the consumer names listed to count the cursors exactly.
// Replicas creating names at the same instant may overshoot by a few; the
// stream's max_consumers, kept above the limit, is the hard stop.
func (s *Server) cursorRoom(ctx context.Context) (*problem, error) {
	stream, err := s.hub.js.Stream(ctx, s.cfg.Stream)
	if err != nil {
		return nil, err
	}
	info := stream.CachedInfo()
	limit := s.cfg.cursorLimit(info.Config.MaxConsumers)
	if info.State.Consumers < limit {
		return nil, nil
	}
	names := stream.ConsumerNames(ctx)
	n := 0
	for name := range names.Name() {
		if strings.HasPrefix(name, cursorPrefix) {
			n++
		}
	}
	if err := names.Err(); err != nil {
		return nil, err
	}
	if n < limit {
		return nil, nil
	}
	return newProblem(http.StatusTooManyRequests, "%d named cursors exist, and %d are allowed (NATSSE_MAX_DURABLES, kept within the stream's max_consumers): reuse a cursor name or wait until unused ones expire (NATSSE_DURABLE_TTL=%s)", n, limit, s.cfg.DurableTTL), nil
}

// consumerReserve is the part of a stream's max_consumers that named cursors
// leave free: room for the upstream and replay consumers of four replicas.
func (c Config) consumerReserve() int { return 4*c.ReplayConcurrency + 16 }

// cursorLimit is how many cursors may exist on a stream with maxConsumers.
func (c Config) cursorLimit(maxConsumers int) int {
	if maxConsumers <= 0 {
		maxConsumers = serverDefaultMaxConsumers
	}
	return max(0, min(c.MaxDurables, maxConsumers-c.consumerReserve()))
}
