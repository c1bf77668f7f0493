// Command natsse-bench is the load tool of natsse: SSE clients over raw TCP
// with exact accounting, a JetStream publisher, a raw-socket "ceiling" SSE
// server that every natsse figure is compared against, a /proc sampler, and
// an orchestrator for the scenarios of BENCHMARKS.md.
//
// The subcommands are separate processes on purpose: one process can hold at
// most ~19,000 sockets on the benchmark machines, so many clients mean several
// client processes whose JSON summaries are merged afterwards.
package main

import (
	"fmt"
	"os"
)

const usage = `natsse-bench: load tool for natsse

usage:
  natsse-bench clients  -url URL -paths P1,P2 -n N -expect PLAN [-duration D]   SSE clients, JSON summary on stdout
  natsse-bench publish  -nats URL (-subjects S1,S2 | -users N) -count N -rate R  JetStream publisher
  natsse-bench ceiling  -listen ADDR -nats URL [-subject S1,S2]                 raw-socket SSE ceiling server
  natsse-bench streams  -nats URL -n N                                          create streams S0..S<N-1> on events0.> .. (for run -streams N)
  natsse-bench stat     -pid P1,P2 [-duration D]                                CPU seconds and RSS from /proc
  natsse-bench merge    a.json b.json ...                                       merge client summaries
  natsse-bench run      -scenario s1 ...                                        orchestrate a scenario (s1-s3 s7 s8 events, -streams N over N streams; s4 s5 idle RSS; s6 resume storm)

Run "natsse-bench <command> -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"clients": cmdClients,
		"publish": cmdPublish,
		"ceiling": cmdCeiling,
		"stat":    cmdStat,
		"merge":   cmdMerge,
		"streams": cmdStreams,
		"run":     cmdRun,
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Print(usage)
		return
	}
	f, ok := cmds[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "natsse-bench: unknown command %q\n\n%s", name, usage)
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "natsse-bench %s: %v\n", name, err)
		os.Exit(1)
	}
}
