package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// cmdStreams creates the streams of a plan with several streams, S0 on
// events0.>, S1 on events1.>, ..., before natsse starts with
// NATSSE_STREAM=S0,S1,...: natsse creates only one named stream
// (NATSSE_STREAM_CREATE), so the bench creates them, the way an operator
// would with "nats stream add". Their limits are those natsse gives the
// stream it creates (file storage, NATSSE_STREAM_MAX_AGE and _MAX_BYTES
// defaults), so S8 over three streams stores events as S8 on EVENTS does.
func cmdStreams(args []string) error {
	fs := flag.NewFlagSet("streams", flag.ContinueOnError)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS URL")
	n := fs.Int("n", 3, "number of streams: S0..S<n-1> on events0.> .. events<n-1>.>")
	maxAge := fs.Duration("max-age", 24*time.Hour, "max age of each stream's messages")
	maxBytes := fs.Int64("max-bytes", 1<<30, "max bytes of each stream")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: natsse-bench streams [flags]: create the streams S0..S<n-1> (events<k>.>) that \"run -streams N\" publishes to, if missing; prints their names as NATSSE_STREAM wants them.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 100 {
		return fmt.Errorf("-n %d: want 1..100", *n)
	}
	nc, err := nats.Connect(*natsURL, nats.Name("natsse-bench streams"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := make([]string, *n)
	for k := range names {
		names[k] = streamName(k)
		want := []string{streamPrefix(k) + ".>"}
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: names[k], Subjects: want, Storage: jetstream.FileStorage, MaxAge: *maxAge, MaxBytes: *maxBytes,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, serr := js.Stream(ctx, names[k])
			if serr != nil {
				return fmt.Errorf("stream %s: %v", names[k], serr)
			}
			if got := s.CachedInfo().Config.Subjects; !slices.Equal(got, want) {
				return fmt.Errorf("stream %s exists with subjects %q, not %q", names[k], got, want)
			}
			err = nil
		}
		if err != nil {
			return fmt.Errorf("stream %s: %v", names[k], err)
		}
		fmt.Fprintf(os.Stderr, "stream %s on %s\n", names[k], want[0])
	}
	fmt.Println(strings.Join(names, ","))
	return nil
}

// scrapeGauge reads one gauge with a stream label from a Prometheus text
// page: name{stream="S0"} 1 gives m["S0"] = 1.
func scrapeGauge(ctx context.Context, url, name string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := parseGaugeLine(sc.Text(), name)
		if ok {
			out[k] = v
		}
	}
	return out, sc.Err()
}

// parseGaugeLine parses `name{...stream="S0"...} 1`.
func parseGaugeLine(line, name string) (stream string, v float64, ok bool) {
	rest, found := strings.CutPrefix(line, name+"{")
	if !found {
		return "", 0, false
	}
	labels, val, found := strings.Cut(rest, "} ")
	if !found {
		return "", 0, false
	}
	_, after, found := strings.Cut(labels, `stream="`)
	if !found {
		return "", 0, false
	}
	stream, _, found = strings.Cut(after, `"`)
	if !found {
		return "", 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
	if err != nil {
		return "", 0, false
	}
	return stream, f, true
}
