package service

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are natsse's Prometheus series, on a registry of their own.
type metrics struct {
	registry  *prometheus.Registry
	delivered prometheus.Counter
	upstream  prometheus.Counter
	detached  prometheus.Counter
	replays   prometheus.Counter
	// replayShared counts replayed events served from the replay cache.
	replayShared prometheus.Counter
	resets       prometheus.Counter
	requests     *prometheus.CounterVec
	published    *prometheus.CounterVec
	ended        *prometheus.CounterVec
	// clientLimit counts the soft refusals that were due to the per-client
	// limit: many of them hint at clients behind a proxy not trusted.
	clientLimit prometheus.Counter
	// connsRefused counts connections closed at once because a connection
	// budget was full, by which: total or per_client.
	connsRefused *prometheus.CounterVec
}

func newMetrics() *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "natsse", Name: name, Help: help})
	}
	m := &metrics{
		registry:     prometheus.NewRegistry(),
		delivered:    counter("events_delivered_total", "Events written to clients."),
		upstream:     counter("upstream_events_total", "Messages received from the stream's upstream consumer."),
		detached:     counter("slow_client_fallbacks_total", "Times a client fell too far behind to stay live and went back to catching up."),
		replays:      counter("replays_total", "Catch-ups that needed a JetStream consumer because the ring no longer held the position."),
		replayShared: counter("replay_shared_events_total", "Replayed events served from what another stream's replay read (the replay cache)."),
		resets:       counter("resets_total", "reset events sent because a requested position was gone."),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natsse", Name: "stream_requests_total",
			Help: "Stream requests by outcome: stream, soft_refusal, or the HTTP status of a refusal."}, []string{"outcome"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natsse", Name: "publish_requests_total",
			Help: "HTTP publishes by outcome: stored, duplicate (Idempotency-Key seen before), or the HTTP status of a refusal."}, []string{"outcome"}),
		clientLimit: counter("client_limit_refusals_total", "Soft refusals because the client had NATSSE_MAX_STREAMS_PER_CLIENT streams open."),
	}
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natsse", Name: "streams_ended_total",
		Help: "Streams that ended, by why: client_closed, write_timeout (the client stopped reading), write_error, stopped (shutdown, stream age), token_expired, replay_busy (waited NATSSE_REPLAY_WAIT for a replay slot: soft refusal), other."}, []string{"reason"})
	m.connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "natsse", Name: "connections_refused_total",
		Help: "Connections closed as soon as accepted because a budget was full: total (NATSSE_MAX_CONNECTIONS) or per_client (NATSSE_MAX_CONNECTIONS_PER_CLIENT)."}, []string{"reason"})
	m.registry.MustRegister(m.ended, m.connsRefused, m.delivered, m.upstream, m.detached, m.replays, m.replayShared, m.resets, m.requests, m.published, m.clientLimit,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// observe adds the gauges read from the server's state when scraped.
func (m *metrics) observe(connsOpen func() int, streamsOpen func() int64, ready func() bool) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "natsse", Name: "connections_open", Help: "Open client connections, streams included."},
			func() float64 { return float64(connsOpen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "natsse", Name: "streams_open", Help: "Open SSE streams."},
			func() float64 { return float64(streamsOpen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "natsse", Name: "ready", Help: "1 while /readyz answers 200."},
			func() float64 {
				if ready() {
					return 1
				}
				return 0
			}),
	)
}
