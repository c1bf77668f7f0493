package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

// summary is the JSON a client process prints on stdout. Everything in it
// adds up across processes (merge), so a run with several client processes
// reports one set of numbers.
type summary struct {
	Target      string         `json:"target"`
	Plan        string         `json:"plan,omitempty"`
	Processes   int            `json:"processes"`
	Clients     int            `json:"clients"`
	Connected   int            `json:"connected"`
	Failed      int            `json:"failed"`
	FailReasons map[string]int `json:"fail_reasons,omitempty"`
	Complete    int            `json:"complete"` // clients that received every expected event
	accountReport
	IDRegressions uint64 `json:"id_regressions"` // SSE ids not strictly increasing on one connection
	Resets        uint64 `json:"resets"`
	Expired       uint64 `json:"expired"`
	Comments      uint64 `json:"comments"` // ":" lines (heartbeats)
	Reconnects    uint64 `json:"reconnects"`
	Ended         uint64 `json:"ended"` // streams the server ended (soft refusal, shutdown)

	ConnectSeconds float64 `json:"connect_seconds"` // until every client connected or failed
	FirstEvent     int64   `json:"first_event_unix_ns,omitempty"`
	LastEvent      int64   `json:"last_event_unix_ns,omitempty"`
	EventSeconds   float64 `json:"event_seconds"`         // first to last event
	DeliveryRate   float64 `json:"deliveries_per_second"` // received / event_seconds

	Latency latencySummary `json:"latency"`
	Hist    histData       `json:"latency_histogram"`

	// ByStream splits the clients by the stream that serves them, when the
	// plan has several streams (keys S0, S1, ...; see plan.Streams).
	ByStream map[string]*streamSummary `json:"by_stream,omitempty"`
}

// streamSummary is the part of a summary about the clients of one stream:
// their accounts, the ids they saw and their latencies.
type streamSummary struct {
	Clients   int `json:"clients"`
	Connected int `json:"connected"`
	Complete  int `json:"complete"`
	accountReport
	IDRegressions uint64         `json:"id_regressions"`
	Resets        uint64         `json:"resets"`
	Ended         uint64         `json:"ended"`
	Latency       latencySummary `json:"latency"`
	Hist          histData       `json:"latency_histogram"`
}

// finish computes the derived fields.
func (s *summary) finish() {
	if s.LastEvent > s.FirstEvent {
		s.EventSeconds = float64(s.LastEvent-s.FirstEvent) / 1e9
		s.DeliveryRate = float64(s.Received) / s.EventSeconds
	}
	s.Latency = s.Hist.summary()
	for _, st := range s.ByStream {
		st.Latency = st.Hist.summary()
	}
}

func (st *streamSummary) merge(o *streamSummary) {
	st.Clients += o.Clients
	st.Connected += o.Connected
	st.Complete += o.Complete
	st.accountReport.add(o.accountReport)
	st.IDRegressions += o.IDRegressions
	st.Resets += o.Resets
	st.Ended += o.Ended
	st.Hist.merge(o.Hist)
}

// clone is a copy that shares nothing with st.
func (st *streamSummary) clone() *streamSummary {
	c := *st
	c.Hist.Buckets = append([][2]uint64(nil), st.Hist.Buckets...)
	return &c
}

func (s *summary) merge(o *summary) {
	if s.Target != o.Target {
		s.Target += " " + o.Target
	}
	if s.Plan == "" {
		s.Plan = o.Plan
	}
	s.Processes += o.Processes
	s.Clients += o.Clients
	s.Connected += o.Connected
	s.Failed += o.Failed
	for k, v := range o.FailReasons {
		if s.FailReasons == nil {
			s.FailReasons = map[string]int{}
		}
		s.FailReasons[k] += v
	}
	s.Complete += o.Complete
	s.accountReport.add(o.accountReport)
	s.IDRegressions += o.IDRegressions
	s.Resets += o.Resets
	s.Expired += o.Expired
	s.Comments += o.Comments
	s.Reconnects += o.Reconnects
	s.Ended += o.Ended
	s.ConnectSeconds = max(s.ConnectSeconds, o.ConnectSeconds)
	if o.FirstEvent != 0 && (s.FirstEvent == 0 || o.FirstEvent < s.FirstEvent) {
		s.FirstEvent = o.FirstEvent
	}
	s.LastEvent = max(s.LastEvent, o.LastEvent)
	s.Hist.merge(o.Hist)
	for k, st := range o.ByStream {
		if s.ByStream == nil {
			s.ByStream = map[string]*streamSummary{}
		}
		if mine, ok := s.ByStream[k]; ok {
			mine.merge(st)
		} else {
			s.ByStream[k] = st.clone()
		}
	}
	s.finish()
}

// mergeSummaries merges several client summaries into one.
func mergeSummaries(ss []*summary) *summary {
	out := &summary{}
	for i, s := range ss {
		if i == 0 {
			c := *s
			c.Hist.Buckets = append([][2]uint64(nil), s.Hist.Buckets...)
			c.ByStream = nil
			for k, st := range s.ByStream {
				if c.ByStream == nil {
					c.ByStream = map[string]*streamSummary{}
				}
				c.ByStream[k] = st.clone()
			}
			out = &c
			continue
		}
		out.merge(s)
	}
	out.finish()
	return out
}

func writeJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cmdMerge: natsse-bench merge a.json b.json ... prints the merged summary.
func cmdMerge(args []string) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: natsse-bench merge a.json b.json ...: merge client summaries into one")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("no files")
	}
	var ss []*summary
	for _, name := range fs.Args() {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		s := &summary{}
		if err := json.Unmarshal(b, s); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		ss = append(ss, s)
	}
	return writeJSON(mergeSummaries(ss))
}
