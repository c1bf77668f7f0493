// Command subscriber follows a natsse stream with nothing but net/http, and
// prints each event as one JSON line: {"id":"4","event":"message","data":"hi"}.
//
//	go run ./examples/subscriber http://localhost:8080/events/demo
//
// It does what a browser's EventSource does, and a little more: when the
// stream ends (natsse restarts, NATSSE_MAX_STREAM_AGE, a load balancer) or a
// connection is refused, it reconnects with the Last-Event-ID of the last
// event it printed, so nothing is lost or printed twice; it waits the
// server's retry: after a stream that ended and backs off exponentially, with
// jitter, while connections fail, so that a restarted natsse is not hit by
// every client at once. A status other than 200 is permanent (a bad path,
// token or subject) and ends the program, as it ends an EventSource.
//
// -last-event-id starts after that id (0: everything stored); NATSSE_TOKEN,
// when set, is sent as Authorization: Bearer.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxBackoff caps the wait between failed connections.
const maxBackoff = 30 * time.Second

func main() {
	lastID := flag.String("last-event-id", "", "resume after this event id (0 = from the first stored event; empty = only new events)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [-last-event-id N] URL\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &subscriber{url: flag.Arg(0), lastID: *lastID, token: os.Getenv("NATSSE_TOKEN"), retry: time.Second, out: json.NewEncoder(os.Stdout)}
	if err := s.run(ctx); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}

type subscriber struct {
	url    string
	lastID string        // id of the last complete event block: where to resume
	token  string        // sent as a bearer token when not empty
	retry  time.Duration // the server's retry:, the first wait before reconnecting
	out    *json.Encoder
}

// event is what is printed for each event.
type event struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	Data  string `json:"data"`
}

// errPermanent marks an answer that reconnecting will not change.
var errPermanent = errors.New("permanent")

// run connects until ctx ends or natsse refuses the request for good.
func (s *subscriber) run(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		got, err := s.stream(ctx)
		if errors.Is(err, errPermanent) {
			return err
		}
		if got {
			failures = 0 // the stream worked: it merely ended
		} else {
			failures++
		}
		wait := backoff(s.retry, failures)
		log.Printf("stream ended (%v); reconnecting in %v with Last-Event-ID %q", err, wait.Round(time.Millisecond), s.lastID)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return ctx.Err()
}

// backoff is the wait before the next connection: about the server's retry
// after a stream that worked, doubling with each failed attempt since, up to
// maxBackoff, with jitter (50 to 100 % of it) so that clients cut at the same
// moment do not come back in step.
func backoff(retry time.Duration, failures int) time.Duration {
	d := retry
	for i := 0; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// stream makes one request and prints its events until it ends; got reports
// whether the request was answered with a stream.
func (s *subscriber) stream(ctx context.Context) (got bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return false, fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return false, fmt.Errorf("%w: %s: %s", errPermanent, resp.Status, strings.TrimSpace(string(body)))
	}
	return true, s.read(resp.Body)
}

// read parses the event stream (lines end in \n or \r\n, as natsse writes
// them) and prints each event whose block is complete; a block cut off by
// the end of the stream is dropped, and its id not kept, so it is sent again
// on the next connection.
func (s *subscriber) read(body io.Reader) error {
	r := bufio.NewReader(body)
	var (
		id, typ string
		data    []string
		hasID   bool
	)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err // io.EOF included: the stream ended, reconnect
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" { // end of a block
			if hasID {
				s.lastID = id
			}
			if data != nil {
				if typ == "" {
					typ = "message"
				}
				if err := s.out.Encode(event{ID: s.lastID, Event: typ, Data: strings.Join(data, "\n")}); err != nil {
					return fmt.Errorf("%w: %v", errPermanent, err)
				}
			}
			id, typ, data, hasID = "", "", nil, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a heartbeat comment
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			id, hasID = value, true
		case "event":
			typ = value
		case "data":
			data = append(data, value)
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				s.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}
