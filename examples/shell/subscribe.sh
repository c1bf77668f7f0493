#!/usr/bin/env bash
# Follow a natsse stream with curl, resuming with Last-Event-ID whenever the
# stream ends or a connection fails, and print the events as natsse sends
# them (complete blocks only, so a stream cut in the middle of an event
# prints nothing of it: it comes again after the reconnect).
#
#   examples/shell/subscribe.sh http://localhost:8080/events/demo [last-event-id]
#
# A last id of 0 starts from the first stored event; none, from now on.
# Waits 1 s between attempts, doubling up to 30 s while they fail, with jitter.
set -u
url=${1:?usage: subscribe.sh URL [last-event-id]}
last=${2:-}
failures=0

while :; do
	got=0
	block=()
	# Process substitution, not a pipe: the loop runs in this shell, so
	# `last` survives the connection.
	while IFS= read -r line; do
		line=${line%$'\r'}
		if [ -n "$line" ]; then
			block+=("$line")
			continue
		fi
		# A blank line ends a block: print it and remember its id.
		for field in "${block[@]}"; do
			case $field in
			id:*) last=${field#id:} last=${last# } ;;
			data:*) got=1 ;;
			esac
		done
		if [ ${#block[@]} -gt 0 ]; then
			printf '%s\n' "${block[@]}" ''
		fi
		block=()
	done < <(curl -sSN --fail -H 'Accept: text/event-stream' ${last:+-H "Last-Event-ID: $last"} "$url")
	wait $! # curl's exit status (bash 4.4 and later)
	if [ $? = 22 ]; then
		# --fail: natsse refused the request (4xx), which a retry will not
		# change; an EventSource gives up too.
		echo "natsse refused the stream" >&2
		exit 1
	fi
	if [ "$got" = 1 ]; then failures=0; else failures=$((failures + 1)); fi
	wait=$((1000 * 2 ** (failures < 5 ? failures : 5)))
	wait=$((wait > 30000 ? 30000 : wait))
	wait=$((wait / 2 + RANDOM % (wait / 2 + 1)))
	echo "stream ended; reconnecting in ${wait} ms with Last-Event-ID ${last:-none}" >&2
	sleep "$(printf '%d.%03d' $((wait / 1000)) $((wait % 1000)))"
done
