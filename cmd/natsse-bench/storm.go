package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// S6, the resume storm: groups of clients that were disconnected while
// events went by reconnect all at once with their Last-Event-ID, catch up and
// go live. Against natsse the missed events are stored first and the clients
// resume; the ceiling cannot resume, so its clients connect first and the
// same events are published live to them: the same deliveries, as fast as a
// server can push them, which is what natsse's replay is measured against.
type stormGroup struct {
	Name    string `json:"name"`
	Clients int    `json:"clients"`
	Subject string `json:"subject"`
	path    string
	Behind  uint64 `json:"behind"` // events on Subject the clients missed
}

// stormGroups are published in this order, so the last group's events are
// the newest in the stream and still in natsse's ring (10,000 events by
// default) while the first group's start far before it.
var stormGroups = []stormGroup{
	{Name: "jetstream", Clients: 500, Subject: "events.storm.js", path: "/events/storm/js", Behind: 20000},
	{Name: "ring", Clients: 5000, Subject: "events.storm.ring", path: "/events/storm/ring", Behind: 1000},
}

// stormLive is how many live events each group gets after it reconnected:
// a client is "caught up and live" when it has those too.
const stormLive = 100

type stormGroupResult struct {
	stormGroup
	LastEventID uint64   `json:"last_event_id,omitempty"` // natsse: the position the clients resume from
	Summary     *summary `json:"summary"`
}

type stormPhase struct {
	Target string              `json:"target"`
	Groups []*stormGroupResult `json:"groups"`
	// Seconds: natsse, from the reconnect storm until every client had every
	// missed and live event; ceiling, from the first publish until then.
	Seconds           float64    `json:"seconds"`
	MissedDeliveries  uint64     `json:"missed_deliveries"` // sum of clients × behind
	Received          uint64     `json:"received"`
	Server            *procDelta `json:"server,omitempty"`
	NATS              *procDelta `json:"nats,omitempty"`
	PerSecond         float64    `json:"deliveries_per_second"`
	PerServerCPU      float64    `json:"deliveries_per_server_cpu_second"`
	PerServerNATSCPU  float64    `json:"deliveries_per_server_and_nats_cpu_second,omitempty"`
	MaxConsumers      int        `json:"stream_max_consumers"`
	ConsumerSamples   int        `json:"stream_consumer_samples"`
	AllCaughtUpAndAck bool       `json:"all_caught_up_nothing_lost_or_repeated"`
}

type stormResult struct {
	Scenario string        `json:"scenario"`
	Phases   []*stormPhase `json:"phases"`
	// Ratio is natsse's deliveries per second over the ceiling's (BENCHMARKS.md, S6:
	// the target is ≥ 0.3).
	Ratio       float64 `json:"ratio_to_ceiling_rate,omitempty"`
	RatioPerCPU float64 `json:"ratio_to_ceiling_per_server_cpu,omitempty"`
}

func runStorm(c runConfig) (*stormResult, error) {
	res := &stormResult{Scenario: c.name}
	var err error
	res.Phases, err = eachTarget(c, stormPhaseRun, func(t runTarget, ph *stormPhase) {
		fmt.Fprintf(os.Stderr, "run %s %s: %d deliveries (%d missed) in %.2f s, %.0f/s, %.0f per server CPU-s, all caught up: %v\n",
			c.name, t.name, ph.Received, ph.MissedDeliveries, ph.Seconds, ph.PerSecond, ph.PerServerCPU, ph.AllCaughtUpAndAck)
	})
	if err != nil {
		return res, err
	}
	if len(res.Phases) == 2 && res.Phases[1].PerSecond > 0 && res.Phases[1].PerServerCPU > 0 {
		res.Ratio = res.Phases[0].PerSecond / res.Phases[1].PerSecond
		res.RatioPerCPU = res.Phases[0].PerServerCPU / res.Phases[1].PerServerCPU
		fmt.Fprintf(os.Stderr, "run %s: natsse's replay at %.2fx the ceiling's delivery rate (%.2fx per server CPU-s)\n", c.name, res.Ratio, res.RatioPerCPU)
	}
	return res, nil
}

func stormPhaseRun(c runConfig, t runTarget, runID string) (*stormPhase, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+30*time.Second)
	defer cancel()
	resume := t.name == "natsse"
	ph := &stormPhase{Target: t.name}
	plans := make([]plan, len(stormGroups))
	for i, g := range stormGroups {
		plans[i] = plan{Count: g.Behind + stormLive, Subjects: []string{g.Subject}, Run: runID + "-" + g.Name}
		ph.Groups = append(ph.Groups, &stormGroupResult{stormGroup: g})
		ph.MissedDeliveries += uint64(g.Clients) * g.Behind
	}
	// natsse: the events the clients will have missed are stored first.
	if resume {
		for i, g := range stormGroups {
			// Only the missed part: with one subject, the first Behind
			// messages of the plan are the plan cut at Behind.
			missed := plans[i]
			missed.Count = g.Behind
			pub, err := publish(ctx, publishConfig{natsURL: c.natsURL, plan: missed, size: 100, maxPending: 4000, ackTimeout: 30 * time.Second})
			if err != nil {
				return nil, fmt.Errorf("publish %s: %v", g.Name, err)
			}
			ph.Groups[i].LastEventID = pub.FirstSeq - 1
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	win, err := startWindow(c, t)
	if err != nil {
		return nil, err
	}
	cw := watchConsumers(ctx, c.natsURL, c.watched())
	prof := startProfile(ctx, c, t, runID)
	defer prof.wait()
	start := time.Now()
	var procs []*clientProc
	defer func() {
		for _, cp := range procs {
			cp.stop()
		}
	}()
	for i, g := range ph.Groups {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("natsse-bench-%s-%s.json", runID, g.Name))
		if c.outDir != "" {
			out = filepath.Join(c.outDir, fmt.Sprintf("%s-%s.json", runID, g.Name))
		}
		args := []string{"-url", t.url, "-paths", g.path, "-n", strconv.Itoa(g.Clients),
			"-expect", plans[i].String(), "-duration", c.timeout.String(), "-progress", "0", "-concurrency", "1000",
			"-reconnects", "10"} // as EventSource would, should a stream end
		if resume {
			args = append(args, "-last-event-id", strconv.FormatUint(g.LastEventID, 10))
		}
		cp, err := startClients(ctx, self, out, args)
		if err != nil {
			return nil, err
		}
		procs = append(procs, cp)
	}
	if err := awaitConnected(ctx, procs); err != nil {
		return nil, err
	}
	// The live part for natsse; everything for the ceiling, whose clients
	// could not resume. Groups publish concurrently, as they would live.
	if !resume {
		start = time.Now()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stormGroups))
	for i := range stormGroups {
		from := uint64(1)
		if resume {
			from = stormGroups[i].Behind + 1
		}
		wg.Go(func() {
			_, errs[i] = publish(ctx, publishConfig{natsURL: c.natsURL, plan: plans[i], from: from, size: 100, maxPending: 4000, ackTimeout: 30 * time.Second})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("publish: %v", err)
	}
	if err := awaitComplete(ctx, procs); err != nil {
		return nil, err
	}
	ph.Seconds = time.Since(start).Seconds()
	server, nats, total, err := win.finish()
	if err != nil {
		return nil, err
	}
	ph.Server, ph.NATS = server, nats
	ph.MaxConsumers, ph.ConsumerSamples = cw.stop()
	ph.AllCaughtUpAndAck = true
	for i, cp := range procs {
		select {
		case <-cp.exited:
		case <-ctx.Done():
			return nil, errors.New("client processes did not finish in time")
		}
		s, err := readSummary(cp.out)
		if c.outDir == "" {
			os.Remove(cp.out)
		}
		if err != nil {
			return nil, err
		}
		ph.Groups[i].Summary = s
		ph.Received += s.Received
		if s.Complete != ph.Groups[i].Clients || s.Lost+s.Duplicates+s.OutOfOrder+s.Unexpected+s.IDRegressions != 0 {
			ph.AllCaughtUpAndAck = false
		}
	}
	if ph.Seconds > 0 {
		ph.PerSecond = float64(ph.Received) / ph.Seconds
	}
	if ph.Server != nil && ph.Server.CPU > 0 {
		ph.PerServerCPU = float64(ph.Received) / ph.Server.CPU
	}
	if ph.NATS != nil && total > 0 {
		ph.PerServerNATSCPU = float64(ph.Received) / total
	}
	if c.outDir != "" {
		b, _ := json.MarshalIndent(ph, "", "  ")
		_ = os.WriteFile(filepath.Join(c.outDir, runID+".json"), b, 0o644)
	}
	return ph, nil
}
