package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// consumerWatch samples a stream's consumer count (JetStream stream info)
// every 200 ms while a phase publishes and its clients receive: the issue
// asks that S2 and S3 run with at most 2 consumers on the stream.
type consumerWatch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	max     int
	samples int
}

// watchConsumers starts sampling; with an empty stream name it does nothing
// and stop reports -1.
func watchConsumers(ctx context.Context, natsURL, stream string) *consumerWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &consumerWatch{cancel: cancel, done: make(chan struct{}), max: -1}
	if stream == "" {
		close(w.done)
		return w
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
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			s, err := js.Stream(rctx, stream)
			if err == nil {
				w.samples++
				w.max = max(w.max, s.CachedInfo().State.Consumers)
			}
			rcancel()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop ends the sampling and returns the highest count seen and the number
// of samples.
func (w *consumerWatch) stop() (int, int) {
	w.cancel()
	<-w.done
	return w.max, w.samples
}
