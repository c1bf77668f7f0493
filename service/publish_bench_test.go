package service_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/natsse/natsse/embedded"
	"github.com/natsse/natsse/service"
)

// BenchmarkPublish measures HTTP publishing (POST, answered after the
// JetStream ack) of 128-byte bodies into a file-stored stream on an
// in-process nats-server: one client after the other (sequential), many at
// once over kept-alive connections (concurrent), and, for comparison, the
// same publish straight to JetStream with nats.go (nats_direct). Figures
// are in BENCHMARKS.md.
func BenchmarkPublish(b *testing.B) {
	ns, err := embedded.Start(context.Background(), embedded.Options{StoreDir: b.TempDir(), Listen: "-"})
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := ns.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	svc, err := service.New(service.Config{Publish: service.PublishAnonymous, StreamCreate: true}, nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { svc.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	hs := httptest.NewServer(svc)
	defer hs.Close()
	select {
	case <-svc.Started():
	case <-time.After(patience()):
		b.Fatal("natsse did not find its stream")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	body := bytes.Repeat([]byte("x"), 128)
	post := func() error {
		resp, err := client.Post(hs.URL+"/events/bench", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	perSecond := func(b *testing.B, start time.Time, n int) {
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "publishes/s")
	}

	b.Run("sequential", func(b *testing.B) {
		start, n := time.Now(), 0
		for b.Loop() {
			if err := post(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		perSecond(b, start, n)
	})
	b.Run("concurrent", func(b *testing.B) {
		b.SetParallelism(16) // 16 clients per core
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := post(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		perSecond(b, start, b.N)
	})
	b.Run("nats_direct", func(b *testing.B) {
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		start, n := time.Now(), 0
		for b.Loop() {
			if _, err := js.Publish(context.Background(), "events.bench", body); err != nil {
				b.Fatal(err)
			}
			n++
		}
		perSecond(b, start, n)
	})
}
