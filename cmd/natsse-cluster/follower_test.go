package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/natsse/natsse/service/ssetest"
)

// patience bounds every wait for something the shape must do
// (ssetest.Patience).
var patience = ssetest.Patience

// follower reads a stream the way a browser's EventSource does: when the
// stream ends it opens a new one with the last id it saw as Last-Event-ID.
// Through HAProxy it has one address, and a refusal is an error (a browser
// gives up for good on anything but 200); direct to the replicas it keeps
// to the one that answered, and moves to the next when that one fails.
// It starts at position 0, so it must get every stored message it wants.
type follower struct {
	t        *testing.T
	name     string
	path     string
	wants    func(subject string) bool
	replicas []string // base URLs
	viaLB    bool
	hc       *http.Client

	mu      sync.Mutex
	got     []received
	last    string // Last-Event-ID of the next stream
	streams int
	refused int
	notify  chan struct{} // closed and replaced on every event
}

type received struct {
	seq  uint64
	data string
	via  string
	at   time.Time
}

// follow starts a follower in the client namespace; it stops when the test ends.
func follow(t *testing.T, n *testNet, name, path string, wants func(string) bool, viaLB bool, replicas ...string) *follower {
	t.Helper()
	tr := &http.Transport{DialContext: n.dialer("client")}
	f := &follower{t: t, name: name, path: path, wants: wants, replicas: replicas, viaLB: viaLB,
		hc: &http.Client{Transport: tr}, last: "0", notify: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); tr.CloseIdleConnections() })
	return f
}

func (f *follower) run(ctx context.Context) {
	i := 0
	for ctx.Err() == nil {
		if !f.read(ctx, f.replicas[i%len(f.replicas)]) {
			i++ // that replica failed: the next one
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // the retry delay natsse's tests use
		}
	}
}

// read follows one stream until it ends; false when it could not be opened.
func (f *follower) read(ctx context.Context, base string) bool {
	f.mu.Lock()
	h := http.Header{"Last-Event-ID": {f.last}}
	f.streams++
	f.mu.Unlock()
	resp, r, err := ssetest.DialWith(ctx, f.hc, base+f.path, h)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.mu.Lock()
		f.refused++
		f.mu.Unlock()
		if f.viaLB && ctx.Err() == nil {
			f.t.Errorf("%s: GET %s through HAProxy with Last-Event-ID %s: status %d: a browser's EventSource would give up", f.name, f.path, h.Get("Last-Event-ID"), resp.StatusCode)
		}
		return false
	}
	for {
		ev, err := r.Next()
		if err != nil {
			return true
		}
		if ev.Event == "reset" {
			f.t.Errorf("%s: reset %s after id %s: the stream lost messages", f.name, ev.Data, h.Get("Last-Event-ID"))
		}
		if !ev.HasData {
			continue
		}
		seq, err := strconv.ParseUint(ev.ID, 10, 64)
		if err != nil {
			f.t.Errorf("%s: event id %q (data %q) is not a sequence", f.name, ev.ID, ev.Data)
			return true
		}
		f.mu.Lock()
		f.got = append(f.got, received{seq: seq, data: ev.Data, via: base, at: time.Now()})
		f.last = ev.ID
		close(f.notify)
		f.notify = make(chan struct{})
		f.mu.Unlock()
	}
}

// await waits until the follower got an event with id seq or later.
func (f *follower) await(seq uint64, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		f.mu.Lock()
		n, ch := len(f.got), f.notify
		var last uint64
		if n > 0 {
			last = f.got[n-1].seq
		}
		f.mu.Unlock()
		if last >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return fmt.Errorf("%s: no event %d within %s; the last was %d, after %d events", f.name, seq, d, last, n)
		}
	}
}

// awaitAll waits until the follower got the last of msgs it wants.
func (f *follower) awaitAll(msgs []stored, d time.Duration) error {
	want := f.filter(msgs)
	if len(want) == 0 {
		return errors.New(f.name + ": no stored message for it")
	}
	return f.await(want[len(want)-1].seq, d)
}

func (f *follower) filter(msgs []stored) []stored {
	var out []stored
	for _, m := range msgs {
		if f.wants(m.subject) {
			out = append(out, m)
		}
	}
	return out
}

// check holds what the follower got to exactly the stored messages it
// wants: each once, in order, with its payload.
func (f *follower) check(msgs []stored) {
	f.t.Helper()
	want := f.filter(msgs)
	f.mu.Lock()
	got := append([]received(nil), f.got...)
	f.mu.Unlock()
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			f.t.Errorf("%s: got %d events, want %d: the first missing is %d", f.name, len(got), len(want), want[i].seq)
			return
		case i >= len(want):
			f.t.Errorf("%s: got %d events, want %d: the first extra is %d", f.name, len(got), len(want), got[i].seq)
			return
		case got[i].seq != want[i].seq || got[i].data != want[i].data:
			prev := "none"
			if i > 0 {
				prev = strconv.FormatUint(got[i-1].seq, 10)
			}
			f.t.Errorf("%s: event %d is id %d (data %q, via %s) after %s, want id %d (data %q)",
				f.name, i, got[i].seq, got[i].data, got[i].via, prev, want[i].seq, want[i].data)
			return
		}
	}
}

// longestSilence is the longest time the follower waited for its next
// event, and the id of the event that ended that wait. The wait after its
// last event does not count: the test waits for the slowest client there.
func (f *follower) longestSilence() (gap time.Duration, ended uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 1; i < len(f.got); i++ {
		if d := f.got[i].at.Sub(f.got[i-1].at); d > gap {
			gap, ended = d, f.got[i].seq
		}
	}
	return gap, ended
}

func (f *follower) counts() (streams, refused int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams, f.refused
}
