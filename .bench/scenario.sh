#!/usr/bin/env bash
# One benchmark scenario of BENCHMARKS.md, end to end on loopback:
#   .bench/scenario.sh s1 [extra natsse-bench run flags...]
# builds natsse, natsse-bench and nats-server (from the module cache) into a
# temp dir, starts a standalone nats-server with JetStream, natsse in
# connected mode and the ceiling server against it, runs
# "natsse-bench run -scenario sN" (JSON on stdout, progress on stderr), then
# stops everything it started and removes the temp dir.
# Ports: BENCH_NATS_PORT (24222), BENCH_NATSSE_PORT (28080), BENCH_CEILING_PORT (28090).
# BENCH_PROFILE=<dir>: CPU profiles of natsse and the ceiling while they deliver
# (pprof on the HTTP port + 1 of each), written to <dir>/<run id>.pprof.
# BENCH_LOGS=<dir>: keep the servers' logs.
# BENCH_STREAMS=<n> (1): over n streams S0..S<n-1> on events0.> ..
# events<n-1>.> ("natsse-bench streams" creates them: natsse creates only
# one named stream), natsse with NATSSE_STREAM=S0,S1,..., the ceiling on the
# same subjects, and "run -streams n" (s3, s8).
set -euo pipefail
scenario="${1:?usage: .bench/scenario.sh s1|s2|...|s8 [run flags]}"
shift
cd "$(dirname "$0")/.."
nstreams="${BENCH_STREAMS:-1}"
nport="${BENCH_NATS_PORT:-24222}"
hport="${BENCH_NATSSE_PORT:-28080}"
cport="${BENCH_CEILING_PORT:-28090}"
tmp="$(mktemp -d /tmp/natsse-bench.XXXXXX)"
pids=()
cleanup() {
	if [ -n "${BENCH_LOGS:-}" ]; then
		mkdir -p "$BENCH_LOGS" && curl -s "http://127.0.0.1:$hport/metrics" >"$BENCH_LOGS/natsse.metrics" 2>/dev/null || true
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	if [ -n "${BENCH_LOGS:-}" ]; then mkdir -p "$BENCH_LOGS" && cp "$tmp"/*.log "$tmp"/ceiling.json "$BENCH_LOGS"/ 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/natsse" ./cmd/natsse
go build -o "$tmp/nb" ./cmd/natsse-bench
go build -o "$tmp/nats-server" github.com/nats-io/nats-server/v2

waitport() { # host:port, seconds
	for _ in $(seq 1 $(($2 * 10))); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listening on $1 after $2 s" >&2
	return 1
}

for port in "$nport" "$hport" "$cport"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "127.0.0.1:$port is already in use: set BENCH_NATS_PORT / BENCH_NATSSE_PORT / BENCH_CEILING_PORT" >&2
		exit 1
	fi
done

"$tmp/nats-server" -js -sd "$tmp/js" -a 127.0.0.1 -p "$nport" >"$tmp/nats.log" 2>&1 &
pids+=($!); natspid=$!
waitport "127.0.0.1:$nport" 10

profflags=()
natsseprof=()
ceilingprof=()
if [ -n "${BENCH_PROFILE:-}" ]; then
	natsseprof=(NATSSE_PPROF_ADDR="127.0.0.1:$((hport + 1))")
	ceilingprof=(-pprof "127.0.0.1:$((cport + 1))")
	profflags=(-profile "$BENCH_PROFILE" -natsse-pprof "http://127.0.0.1:$((hport + 1))" -ceiling-pprof "http://127.0.0.1:$((cport + 1))")
fi

streamenv=(NATSSE_STREAM_CREATE=true)
ceilingsubj=()
runstreams=()
if [ "$nstreams" -gt 1 ]; then
	names="$("$tmp/nb" streams -nats "nats://127.0.0.1:$nport" -n "$nstreams")"
	subjects=""
	for ((k = 0; k < nstreams; k++)); do subjects+="${subjects:+,}events$k.>"; done
	streamenv=(NATSSE_STREAM="$names")
	ceilingsubj=(-subject "$subjects")
	runstreams=(-streams "$nstreams")
fi

env "${natsseprof[@]}" "${streamenv[@]}" NATS_URL="nats://127.0.0.1:$nport" NATSSE_ANONYMOUS=true \
	NATSSE_HTTP_ADDR="127.0.0.1:$hport" NATSSE_LOG_LEVEL="${BENCH_NATSSE_LOG_LEVEL:-warn}" NATSSE_LOG_FORMAT=json \
	"$tmp/natsse" >"$tmp/natsse.log" 2>&1 &
pids+=($!); natssepid=$!
waitport "127.0.0.1:$hport" 20
for _ in $(seq 1 100); do # every stream found: /readyz 200
	if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/readyz")" = 200 ]; then break; fi
	sleep 0.1
done

"$tmp/nb" ceiling "${ceilingprof[@]}" -listen "127.0.0.1:$cport" -nats "nats://127.0.0.1:$nport" "${ceilingsubj[@]}" >"$tmp/ceiling.json" 2>"$tmp/ceiling.log" &
pids+=($!); ceilingpid=$!
waitport "127.0.0.1:$cport" 10

echo "nats-server pid $natspid, natsse pid $natssepid, ceiling pid $ceilingpid" >&2
"$tmp/nb" run -scenario "$scenario" "${runstreams[@]}" -nats "nats://127.0.0.1:$nport" \
	-url "http://127.0.0.1:$hport" -natsse-pid "$natssepid" \
	-ceiling-url "http://127.0.0.1:$cport" -ceiling-pid "$ceilingpid" \
	-nats-pid "$natspid" "${profflags[@]}" "$@"
