package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// consumerWatch samples the consumer count of one or more streams
// (JetStream stream info) every 200 ms while a phase publishes and its
// clients receive: the issue asks that S2 and S3 run with at most 2
// consumers on the stream, and with several streams natsse holds at most one
// upstream consumer per stream.
type consumerWatch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	max     int            // the most consumers any one stream had in a sample
	each    map[string]int // per stream, the most it had
	samples int            // rounds in which every stream answered
}

// watchConsumers starts sampling; with no stream names it does nothing and
// stop reports -1.
func watchConsumers(ctx context.Context, natsURL string, streams []string) *consumerWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &consumerWatch{cancel: cancel, done: make(chan struct{}), max: -1, each: map[string]int{}}
	if len(streams) == 0 {
		close(w.done)
		return w
	}
	for _, s := range streams {
		w.each[s] = -1
	}
	go func() {
		defer close(w.done)
		nc, err := nats.Connect(natsURL, nats.Name("natsse-bench consumer watch"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "consumer watch: %v\n", err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			all := true
			for _, name := range streams {
				rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
				s, err := js.Stream(rctx, name)
				rcancel()
				if err != nil {
					all = false
					continue
				}
				n := s.CachedInfo().State.Consumers
				w.max = max(w.max, n)
				w.each[name] = max(w.each[name], n)
			}
			if all {
				w.samples++
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop ends the sampling and returns the highest count seen on any one
// stream and the number of complete samples.
func (w *consumerWatch) stop() (int, int) {
	w.cancel()
	<-w.done
	return w.max, w.samples
}

// consumerCounts reads each stream's consumer count once (-1: no answer).
func consumerCounts(ctx context.Context, natsURL string, streams []string) map[string]int {
	out := map[string]int{}
	for _, s := range streams {
		out[s] = -1
	}
	nc, err := nats.Connect(natsURL, nats.Name("natsse-bench consumer count"))
	if err != nil {
		return out
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return out
	}
	for _, name := range streams {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if s, err := js.Stream(rctx, name); err == nil {
			out[name] = s.CachedInfo().State.Consumers
		}
		cancel()
	}
	return out
}
