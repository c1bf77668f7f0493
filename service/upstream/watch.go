package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// upstreamEnd is why watch returned: what the upstream must do next.
type upstreamEnd int

const (
	upstreamDone      upstreamEnd = iota // ctx ended
	upstreamRecreated                    // the stream was deleted and created again: start over
	upstreamStalled                      // the consumer stopped delivering: start it again
	upstreamMoved                        // natsse moved to another NATS server: start it there
	upstreamIdle                         // nobody read the stream for Config.Idle: stop the consumer
	upstreamWanted                       // the stream has readers again: start the consumer
	upstreamMissing                      // the stream is gone: stop, end its streams, wait for it
)

// How fast the upstream notices that it cannot deliver: the stream is
// checked every watchEvery; a problem that lasts moveAfter makes natsse
// move to another NATS server (or restart a stalled consumer), and each
// move that does not help doubles the wait, up to moveAfterMax, so that a
// cluster down as a whole is not hammered.
const (
	watchEvery   = time.Second
	watchTimeout = 2 * time.Second
	moveAfter    = 3 * time.Second
	moveAfterMax = 30 * time.Second
	// peerSilence: a stream leader that has heard nothing from a replica
	// for longer (Raft heartbeats are every second) has lost that replica.
	peerSilence = 3 * time.Second
)

// watch keeps readiness current and notices an upstream that cannot
// deliver. A server cut off from the rest of its cluster still answers for
// the stream (itself, once its replica has no leader) while nothing new
// reaches it, and a half-dead connection answers nothing: either way natsse
// moves to another server of the pool instead of waiting for the partition
// to heal. consuming says whether the upstream consumer runs: it stops
// after Config.Idle without readers, and starts when they come. It returns
// what the upstream must do next.
func (u *Reader) watch(ctx context.Context, consuming bool) upstreamEnd {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	var badSince time.Time // first failed check on this server
	for {
		wake := u.wake
		if consuming {
			wake = nil
		}
		select {
		case <-ctx.Done():
			return upstreamDone
		case <-wake:
			if u.wanted() {
				return upstreamWanted
			}
			continue
		case <-t.C:
		}
		if !consuming && u.wanted() {
			return upstreamWanted
		}
		if consuming && u.cfg.Idle >= 0 && u.idleFor(time.Now()) >= max(u.cfg.Idle, time.Nanosecond) {
			return upstreamIdle
		}
		if !u.nc.IsConnected() {
			// nats.go is reconnecting; the new server gets checked afresh.
			u.ready.Store(false)
			u.setStuck("NATS connection lost; reconnecting")
			badSince = time.Time{}
			continue
		}
		c, cancel := context.WithTimeout(ctx, watchTimeout)
		jsStream, err := u.lookup(c)
		cancel()
		problem := ""
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			u.ready.Store(false)
			return upstreamMissing
		case err != nil:
			problem = fmt.Sprintf("NATS server %s does not answer for the stream: %v", u.nc.ConnectedServerName(), err)
			if u.ready.Load() {
				u.cfg.Log.Warn("stream unreachable", "stream", u.cfg.Stream, "err", err)
			}
		case !jsStream.CachedInfo().Created.Equal(u.created):
			u.ready.Store(false)
			return upstreamRecreated
		default:
			u.lastSeq.Store(jsStream.CachedInfo().State.LastSeq)
			if p := servingProblem(jsStream.CachedInfo(), peerSilence); p != "" {
				problem = fmt.Sprintf("NATS server %s cannot serve the stream: %s", u.nc.ConnectedServerName(), p)
			}
		}
		if err == nil && !u.ready.Load() {
			u.cfg.Log.Info("stream reachable again", "stream", u.cfg.Stream)
		}
		u.ready.Store(err == nil)

		now := time.Now()
		if problem == "" {
			badSince = time.Time{}
			u.backoff = moveAfter
		} else if badSince.IsZero() {
			badSince = now
		}
		if problem == "" && consuming {
			if f := u.failing.Load(); f != 0 {
				problem = "the upstream consumer stopped delivering (missed heartbeats)"
				if now.Sub(time.Unix(0, f)) >= moveAfter {
					u.setStuck(problem)
					return upstreamStalled
				}
			}
		}
		u.setStuck(problem)
		if !badSince.IsZero() && now.Sub(badSince) >= u.backoff && u.move(problem) {
			return upstreamMoved
		}
	}
}

// move makes nats.go reconnect to the next server of its pool (see Mover)
// and doubles the wait before this reader's next move. It says whether
// natsse moved (or another stream's reader just did).
func (u *Reader) move(why string) bool {
	if !u.cfg.Mover.Move(why, u.cfg.Stream) {
		return false
	}
	u.backoff = min(2*u.backoff, moveAfterMax)
	return true
}

// Mover moves a NATS connection to another server for every stream served
// over it: the pool rotates (the server left goes to its end, so that moves
// that keep landing on cut-off servers still reach every other one), and
// streams that see the same cut-off server at the same time move it once.
// It never moves off the only server (embedded mode, a single NATS_URL).
type Mover struct {
	nc  *nats.Conn
	log *slog.Logger

	mu   sync.Mutex
	last time.Time // the last move
}

// NewMover returns the mover of nc.
func NewMover(nc *nats.Conn, log *slog.Logger) *Mover { return &Mover{nc: nc, log: log} }

// Move reconnects to another server unless one of the streams did less
// than moveAfter ago; either way it reports true, and false when it
// cannot move at all.
func (m *Mover) Move(why, stream string) bool {
	if len(m.nc.Servers()) < 2 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if time.Since(m.last) < moveAfter {
		return true
	}
	from := m.nc.ConnectedServerName()
	if err := m.nc.ForceReconnect(); err != nil {
		return false
	}
	m.last = time.Now()
	m.log.Warn("moving to another NATS server", "from", from, "why", why, "stream", stream)
	return true
}

// servingProblem says why the stream, as the server natsse is connected
// to reports it, cannot deliver anything new through that server ("" when
// it can). A replica without a leader stores nothing new; neither does a
// leader that no longer hears from a quorum of its replicas (cut off, it
// keeps believing it leads for 10 to 20 s while the others elect another).
func servingProblem(info *jetstream.StreamInfo, silence time.Duration) string {
	ci := info.Cluster
	if ci == nil || len(ci.Replicas) == 0 && ci.Leader != "" {
		return "" // not clustered, or a single replica
	}
	if ci.Leader == "" {
		return "the stream has no leader there (cut off from the rest of the cluster, or an election)"
	}
	heard := 1 // the leader itself
	for _, p := range ci.Replicas {
		if !p.Offline && p.Active <= silence {
			heard++
		}
	}
	if size := len(ci.Replicas) + 1; heard < size/2+1 {
		return fmt.Sprintf("the stream's leader %s has heard from %d of its %d replicas within %s (cut off from the rest of the cluster)", ci.Leader, heard-1, size-1, silence)
	}
	return ""
}

func (u *Reader) setStuck(why string) {
	if why == "" {
		u.stuck.Store(nil)
		return
	}
	u.stuck.Store(&why)
}

// Ready says whether NATS and the stream are reachable.
func (u *Reader) Ready() bool { return u.ready.Load() && u.nc.IsConnected() }

// Delivering says whether the upstream can deliver right now: a server
// that merely answers for the stream is not enough.
func (u *Reader) Delivering() bool { return u.stuck.Load() == nil && u.nc.IsConnected() }

// Waiting says why the stream is not served yet ("" when it is, or
// nothing is known): it does not exist, or the reason the last look failed.
func (u *Reader) Waiting() string {
	if u.served.Load() != nil {
		return ""
	}
	if why := u.stuck.Load(); why != nil {
		return *why
	}
	return ""
}

// Stuck says why the upstream cannot deliver, for /readyz.
func (u *Reader) Stuck() string {
	if why := u.stuck.Load(); why != nil {
		return *why
	}
	return "NATS connection lost; reconnecting"
}

// Lag is how far the upstream trails the stream: the stream's last
// sequence (read every second) less the last one delivered to the core.
func (u *Reader) Lag() uint64 {
	last, head := u.lastSeq.Load(), u.core.Head()
	if !u.consuming.Load() || last <= head {
		return 0
	}
	return last - head
}
