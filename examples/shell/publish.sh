#!/usr/bin/env bash
# Publish one message for natsse with the nats CLI, as a JetStream publish
# (-J), so that the stream's ack is awaited and the stored sequence, which is
# the SSE id subscribers see, is printed.
#
#   examples/shell/publish.sh events.demo hello [event-type]
#
# NATS_URL chooses the server (default nats://127.0.0.1:4222, natsse's
# embedded NATS). The event type becomes the NATS header SSE-Event.
# The nats CLI: go install github.com/nats-io/natscli/nats@v0.5.1
set -eu
subject=${1:?usage: publish.sh SUBJECT MESSAGE [EVENT-TYPE]}
message=${2:?usage: publish.sh SUBJECT MESSAGE [EVENT-TYPE]}
type=${3:-}
exec nats --server "${NATS_URL:-nats://127.0.0.1:4222}" pub -J ${type:+-H "SSE-Event:$type"} "$subject" "$message"
