package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishConfig holds the flags of "natsse-bench publish".
type publishConfig struct {
	natsURL    string
	plan       plan
	from       uint64  // first message number to publish; 0 means 1
	rate       float64 // messages per second, 0 = as fast as acks allow
	size       int
	maxPending int
	ackTimeout time.Duration
}

// publishResult is printed as JSON on stdout.
type publishResult struct {
	Plan        string  `json:"plan"`
	Published   uint64  `json:"published"`
	Acked       uint64  `json:"acked"`
	Errors      uint64  `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	FirstSeq    uint64  `json:"first_seq"`
	LastSeq     uint64  `json:"last_seq"`
	Seconds     float64 `json:"seconds"`      // first publish to last ack
	Rate        float64 `json:"rate"`         // acked messages per second achieved
	OfferedRate float64 `json:"offered_rate"` // -rate, 0 = full speed
}

func cmdPublish(args []string) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	var c publishConfig
	fs.StringVar(&c.natsURL, "nats", "nats://127.0.0.1:4222", "NATS URL")
	subjects := fs.String("subjects", "events.bench", "comma-separated subjects, published round-robin")
	users := fs.Int("users", 0, "publish round-robin to events.users.0 .. events.users.<users-1> instead of -subjects")
	streams := fs.Int("streams", 0, "with -users: spread the users over this many streams, user i on events<i mod streams>.users.<i> (see the streams command)")
	count := fs.Uint64("count", 2000, "messages to publish")
	rate := fs.String("rate", "0", "messages per second, e.g. 50 or 50/s (0: full speed)")
	fs.IntVar(&c.size, "size", 100, "payload size in bytes (at least the header fields)")
	run := fs.String("run", "", "run id carried in every payload (default: random); clients with run= in -expect ignore other runs")
	fs.IntVar(&c.maxPending, "max-pending", 4000, "unacknowledged messages in flight at most")
	fs.DurationVar(&c.ackTimeout, "ack-timeout", 30*time.Second, "limit for the last acks after the last publish")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: natsse-bench publish [flags]: publish a plan to JetStream; the plan for \"clients -expect\" goes to stderr, a JSON result to stdout.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.plan = plan{Count: *count, Users: *users, Streams: *streams, Run: *run}
	if *users <= 0 {
		c.plan.Subjects = strings.Split(*subjects, ",")
	}
	if c.plan.Run == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.plan.Run = hex.EncodeToString(b[:])
	}
	if err := c.plan.check(); err != nil {
		return err
	}
	var err error
	if c.rate, err = strconv.ParseFloat(strings.TrimSuffix(*rate, "/s"), 64); err != nil || c.rate < 0 {
		return fmt.Errorf("-rate %q: want a number of messages per second", *rate)
	}
	fmt.Fprintf(os.Stderr, "PLAN %s\n", c.plan)
	res, err := publish(context.Background(), c)
	if res != nil {
		if werr := writeJSON(res); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// publish sends the plan with PublishAsync, paced to the rate, with at most
// maxPending messages unacknowledged, and waits for every ack: a message
// counts as published only once JetStream has stored it.
func publish(ctx context.Context, c publishConfig) (*publishResult, error) {
	nc, err := nats.Connect(c.natsURL, nats.Name("natsse-bench publish"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(c.maxPending))
	if err != nil {
		return nil, err
	}
	p := c.plan
	res := &publishResult{Plan: p.String(), OfferedRate: c.rate}
	futures := make([]jetstream.PubAckFuture, 0, p.Count-min(c.from, p.Count))
	subjects := make([]string, p.numSubjects())
	for j := range subjects {
		subjects[j] = p.subject(j)
	}
	slots := uint64(len(subjects))
	start := time.Now()
	var interval time.Duration
	if c.rate > 0 {
		interval = time.Duration(float64(time.Second) / c.rate)
	}
	buf := make([]byte, 0, c.size+64)
	from := max(c.from, 1)
	for g := from; g <= p.Count; g++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(g-from) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		slot := (g - 1) % slots
		data := appendPayload(buf[:0], p.Run, g, (g-1)/slots+1, time.Now().UnixNano(), c.size)
		// PublishAsync keeps the slice until acked: give it its own copy.
		f, err := js.PublishAsync(subjects[slot], append([]byte(nil), data...), jetstream.WithStallWait(c.ackTimeout))
		if err != nil {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			continue
		}
		res.Published++
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(c.ackTimeout):
		res.FirstError = fmt.Sprintf("acks missing after %v", c.ackTimeout)
	case <-ctx.Done():
	}
	end := time.Now()
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			res.Acked++
			if res.FirstSeq == 0 || ack.Sequence < res.FirstSeq {
				res.FirstSeq = ack.Sequence
			}
			res.LastSeq = max(res.LastSeq, ack.Sequence)
		case err := <-f.Err():
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
		default:
			res.Errors++
		}
	}
	res.Seconds = end.Sub(start).Seconds()
	if res.Seconds > 0 {
		res.Rate = float64(res.Acked) / res.Seconds
	}
	if res.Errors > 0 {
		return res, errors.New("some messages were not stored: " + res.FirstError)
	}
	return res, nil
}
