// Command publisher publishes messages to NATS JetStream for natsse to
// deliver: each argument is one message on -subject, with -event as the NATS
// header SSE-Event (the SSE event type), and the stored sequence, which is the
// SSE id subscribers see, is printed for each.
//
//	go run ./examples/publisher -subject events.demo -event greeting hello world
//
// NATS_URL chooses the server (default nats://127.0.0.1:4222, natsse's
// embedded NATS).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	subject := flag.String("subject", "events.demo", "NATS subject to publish to (inside the stream's subjects)")
	event := flag.String("event", "", "SSE event type, sent as the NATS header SSE-Event (empty: a plain message)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [-subject s] [-event type] message...\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}

	url := os.Getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}

	for _, data := range flag.Args() {
		msg := nats.NewMsg(*subject)
		if *event != "" {
			msg.Header.Set("SSE-Event", *event)
		}
		msg.Data = []byte(data)
		// A JetStream publish waits for the stream's ack: once it returns,
		// the message is stored and every subscriber will get it, also one
		// that is reconnecting right now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ack, err := js.PublishMsg(ctx, msg)
		cancel()
		if err != nil {
			log.Fatalf("publish to %s: %v", *subject, err)
		}
		fmt.Printf("published to %s: stream %s, id %d\n", *subject, ack.Stream, ack.Sequence)
	}
}
