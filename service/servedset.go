package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/service/refusal"
	"github.com/natsse/natsse/service/upstream"
	"github.com/natsse/natsse/subjects"
)

// discoverEvery is how often NATSSE_STREAM=* lists the streams: one created
// is served within twice that. One deleted is missing at once (its reader
// notices), softly refused for forgetAfter in case it comes back (a stream
// deleted and added again to change it), and then no longer served (404).
const (
	discoverEvery = 5 * time.Second
	forgetAfter   = time.Minute
)

// servedSet is the JetStream streams natsse serves (docs/configuration.md,
// NATSSE_STREAM): a list of names, fixed at start, or every stream with
// subjects of its own (*), listed again every discoverEvery. It routes a
// request to the one stream that captures its subjects, and says whether
// natsse is ready.
type servedSet struct {
	cfg       Config
	js        jetstream.JetStream
	log       *slog.Logger
	newStream func(name string) *servedStream
	// end ends the SSE streams of a stream no longer served.
	end func(*servedStream)
	// all: NATSSE_STREAM=*.
	all bool

	mu      sync.Mutex
	streams map[string]*servedStream
	stop    map[string]context.CancelFunc // of each stream's run
	// subjects are the subjects of each listed stream found so far, for
	// the check of NATSSE_SUBJECTS (checked: done).
	subjects map[string][]string
	checked  bool
	// listed: * has listed the streams at least once; gone: since when a
	// served stream is missing from the listings.
	listed bool
	gone   map[string]time.Time

	started     chan struct{} // closed once a stream was found
	startedOnce sync.Once
	failed      chan error
	wg          sync.WaitGroup
}

func newServedSet(cfg Config, js jetstream.JetStream, newStream func(string) *servedStream, end func(*servedStream)) *servedSet {
	return &servedSet{cfg: cfg, js: js, log: cfg.Logger, newStream: newStream, end: end, all: cfg.allStreams(),
		streams: map[string]*servedStream{}, stop: map[string]context.CancelFunc{}, subjects: map[string][]string{}, gone: map[string]time.Time{},
		started: make(chan struct{}), failed: make(chan error, 1)}
}

// prepare makes the streams of an explicit list, before Run, so that
// requests find them (waiting for them) from the start.
func (set *servedSet) prepare() {
	if set.all {
		return
	}
	for _, name := range set.cfg.Streams {
		set.streams[name] = set.newStream(name)
	}
}

// run serves the streams until ctx ends.
func (set *servedSet) run(ctx context.Context) {
	defer set.wg.Wait()
	if !set.all {
		set.mu.Lock()
		for name, st := range set.streams {
			set.start(ctx, name, st)
		}
		set.mu.Unlock()
		<-ctx.Done()
		return
	}
	t := time.NewTicker(discoverEvery)
	defer t.Stop()
	for {
		set.discover(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// start runs st until ctx ends or the stream is dropped; under mu.
func (set *servedSet) start(ctx context.Context, name string, st *servedStream) {
	ctx, cancel := context.WithCancel(ctx)
	set.stop[name] = cancel
	set.wg.Go(func() { st.run(ctx) })
	set.wg.Go(func() {
		select {
		case <-st.upstream.Started():
			set.startedOnce.Do(func() { close(set.started) })
		case <-ctx.Done():
		}
	})
}

// discover lists the streams (for *): a new one with subjects of its own
// inside NATSSE_SUBJECTS is served; one gone is no longer, and its SSE
// streams end. Mirrors and streams that only source others have no
// subjects of their own and are skipped.
func (set *servedSet) discover(ctx context.Context) {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	found := map[string]bool{}
	var held []string // the subjects of the streams found
	lister := set.js.ListStreams(c)
	for info := range lister.Info() {
		if len(upstream.ServedSubjects(info.Config.Subjects, set.cfg.Subjects)) == 0 {
			continue
		}
		found[info.Config.Name] = true
		held = append(held, info.Config.Subjects...)
	}
	if lister.Err() != nil {
		if ctx.Err() == nil {
			set.log.Warn("listing the streams (NATSSE_STREAM=*)", "err", lister.Err())
		}
		return
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	for name := range found {
		if set.streams[name] == nil {
			st := set.newStream(name)
			set.streams[name] = st
			set.start(ctx, name, st)
			set.log.Info("serving a new stream (NATSSE_STREAM=*)", "stream", name)
		}
	}
	now := time.Now()
	for name, st := range set.streams {
		if found[name] {
			delete(set.gone, name)
			continue
		}
		if since, ok := set.gone[name]; !ok {
			set.gone[name] = now
			continue
		} else if now.Sub(since) < forgetAfter {
			continue
		}
		set.stop[name]()
		delete(set.streams, name)
		delete(set.stop, name)
		delete(set.gone, name)
		set.end(st)
		set.log.Info("the stream is gone: no longer served (NATSSE_STREAM=*)", "stream", name)
	}
	if !set.listed {
		set.listed = true
		set.warnUnserved(held)
	}
}

// warnUnserved warns about NATSSE_SUBJECTS patterns no stream holds
// anything of (with *: a stream may come later).
func (set *servedSet) warnUnserved(held []string) {
	for _, p := range set.cfg.Subjects {
		if !slices.ContainsFunc(held, func(s string) bool { return subjects.Overlap(p, s) }) {
			set.log.Warn("NATSSE_SUBJECTS: no stream holds anything of this pattern yet; it is served once a stream on it is created", "subject", p)
		}
	}
}

// found checks NATSSE_SUBJECTS against an explicit list once every listed
// stream was found: a pattern inside none of their subjects would serve
// nothing, and stops natsse (docs/configuration.md).
func (set *servedSet) found(name string, streamSubjects []string) error {
	if set.all {
		return nil
	}
	if len(streamSubjects) == 0 {
		// Out of scope (docs/configuration.md, "Several streams").
		return fmt.Errorf("NATSSE_STREAM: the stream %s has no subjects of its own (a mirror, or a stream that only sources others), and natsse serves a stream by its subjects: serve the streams it copies instead", name)
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	set.subjects[name] = streamSubjects
	if set.checked || len(set.subjects) < len(set.cfg.Streams) {
		return nil
	}
	set.checked = true
	var all []string
	for _, n := range set.cfg.Streams {
		all = append(all, set.subjects[n]...)
	}
	for _, p := range set.cfg.Subjects {
		if subjects.InsideAny(p, all) {
			continue
		}
		if len(set.cfg.Streams) == 1 {
			return fmt.Errorf("NATSSE_SUBJECTS: %q is not within the subjects of the stream %s (%s), so nothing of it would be served: narrow NATSSE_SUBJECTS to them, or add it to the stream's subjects",
				p, name, strings.Join(streamSubjects, ", "))
		}
		return fmt.Errorf("NATSSE_SUBJECTS: %q is not within the subjects of any stream of NATSSE_STREAM (%s: %s), so nothing of it would be served: narrow NATSSE_SUBJECTS to them, or add the stream that holds it to NATSSE_STREAM",
			p, strings.Join(set.cfg.Streams, ","), strings.Join(all, ", "))
	}
	return nil
}

// fail stops natsse with err (Failed), once.
func (set *servedSet) fail(err error) {
	select {
	case set.failed <- err:
	default:
	}
}

// list returns the streams served, by name.
func (set *servedSet) list() []*servedStream {
	set.mu.Lock()
	defer set.mu.Unlock()
	out := make([]*servedStream, 0, len(set.streams))
	for _, st := range set.streams {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *servedStream) int { return strings.Compare(a.name, b.name) })
	return out
}

// route finds the one stream that captures every pattern (docs/protocol.md,
// "Several streams"): a pattern no stream captures is 404, or 400 when it
// reaches into several streams; patterns of two streams are 400. Until
// the streams are known, or while the stream is missing, whether it is
// served cannot be told: the soft refusal.
func (set *servedSet) route(patterns []string) (*servedStream, error) {
	streams := set.list()
	var owner *servedStream
	for _, p := range patterns {
		var in *servedStream
		var reach []string // streams p overlaps without being inside
		unknown := !set.all && len(streams) == 0
		for _, st := range streams {
			served := st.upstream.Served()
			if served == nil {
				unknown = true
				continue
			}
			if served.Serves(p) {
				in = st
				break
			}
			if served.Overlaps(p) {
				reach = append(reach, st.name)
			}
		}
		switch {
		case in != nil:
		case len(reach) > 1:
			return nil, refusal.New(http.StatusBadRequest, "subject %q reaches into the streams %s, and one request is served by one stream: open one EventSource per stream, with subjects of that stream", p, strings.Join(reach, " and "))
		case unknown || set.all && !set.isListed():
			return nil, refusal.ErrSoft
		default:
			return nil, refusal.New(http.StatusNotFound, "subject %q is not served; served subjects: %s", p, strings.Join(set.subjectsOf(streams), ", "))
		}
		if owner != nil && owner != in {
			return nil, refusal.New(http.StatusBadRequest, "the subjects of this request are in two streams (%s and %s), and one request is served by one stream: open one EventSource per stream", owner.name, in.name)
		}
		owner = in
	}
	if owner.upstream.Missing() {
		return nil, refusal.ErrSoft
	}
	return owner, nil
}

func (set *servedSet) isListed() bool {
	set.mu.Lock()
	defer set.mu.Unlock()
	return set.listed
}

// subjectsOf are the subjects the streams serve, for a 404's detail.
func (set *servedSet) subjectsOf(streams []*servedStream) []string {
	var out []string
	for _, st := range streams {
		if served := st.upstream.Served(); served != nil {
			out = append(out, served.Subjects()...)
		}
	}
	return out
}

// subjects are the subjects served over HTTP, of the streams found (nil
// before).
func (set *servedSet) servedSubjects() []string { return set.subjectsOf(set.list()) }

// ready says whether at least one stream can deliver, and names those that
// cannot (docs/operations.md, "Health").
func (set *servedSet) ready() (bool, string) {
	streams := set.list()
	delivering := 0
	var notes []string
	for _, st := range streams {
		up := st.upstream
		switch {
		case up.Served() == nil && up.Waiting() != "":
			notes = append(notes, fmt.Sprintf("waiting for the stream %s: %s", st.name, up.Waiting()))
		case up.Served() == nil:
			notes = append(notes, fmt.Sprintf("waiting for NATS and the stream %s", st.name))
		case up.Missing():
			notes = append(notes, fmt.Sprintf("the stream %s does not exist", st.name))
		case !up.Ready():
			notes = append(notes, fmt.Sprintf("NATS or the stream %s is unreachable", st.name))
		case !up.Delivering():
			notes = append(notes, up.Stuck())
		default:
			delivering++
		}
	}
	switch {
	case delivering > 0 && len(notes) == 0:
		return true, "ok"
	case delivering > 0:
		return true, "ok; " + strings.Join(notes, "; ")
	case len(notes) > 0:
		return false, strings.Join(notes, "; ")
	case set.all && !set.isListed():
		return false, "waiting for NATS to list the streams (NATSSE_STREAM=*)"
	default:
		return false, "no stream with subjects of its own to serve (NATSSE_STREAM=*)"
	}
}

// rebalance splits NATSSE_RING_BYTES between the cores that hold a ring.
func (set *servedSet) rebalance() {
	streams := set.list()
	fed := 0
	for _, st := range streams {
		if st.core.Fed() {
			fed++
		}
	}
	share := set.cfg.RingBytes / max(fed, 1)
	for _, st := range streams {
		st.core.SetRingBytes(share)
	}
}
