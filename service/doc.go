// Package service is natsse's HTTP front door: it serves the messages of
// JetStream streams to browsers as Server-Sent Events, one SSE stream per
// request, fanned out from one upstream consumer per served stream and
// process, which runs only while the stream has readers.
//
// It promises what docs/protocol.md describes ("Paths and subjects", "The
// stream", "Heartbeats", "Resuming", "Reset", "Errors", "The soft refusal",
// "Operations"): one event per stored message with id = stream sequence,
// strictly increasing per SSE stream, and exact resume from any position
// (Last-Event-ID, lastEventId, since) with no gap or duplicate at the switch
// from replay to live. A slow client never slows anyone else: it falls back
// to catching up from the ring or JetStream, and a client that stops reading
// is cut off by its write deadline. With a JWT key source configured, no
// stream opens without a token that allows it, and none outlives its token
// (docs/protocol.md, "Access control").
//
// The rooms, each with one job:
//
//   - this package: routing, request parsing, CORS, limits, the connection
//     budget (connections.go), the open SSE streams (registry.go), the
//     writer of each SSE stream (ssestream.go, replay.go, sink.go), and
//     publishing over HTTP (publish.go; docs/protocol.md, "Publishing over
//     HTTP");
//   - ui: the live page at the base path (docs/protocol.md, "The page");
//   - refusal: how a request is refused, a problem or softly;
//   - access: tokens, claims and what they grant;
//   - fanout: a served stream's frames, ring, index and per-stream queues;
//   - upstream: the ordered consumer that feeds a fan-out core while the
//     stream is read, readiness, moves to another NATS server;
//   - heartbeat: the one clock that keeps idle SSE streams alive;
//   - resume: replay slots and the replay cache (shared by every served
//     stream), and each stream's bounds;
//   - cursors: named cursors, their durable consumers and takeovers.
//
// A served stream (served.go) is one JetStream stream with its core, its
// upstream, its resumer and its cursors; the served set (servedset.go) is
// the streams served (NATSSE_STREAM: a list, or * kept current), routes a
// request to the one stream that captures its subjects and says whether
// natsse is ready (docs/configuration.md, "Several streams"). An SSE stream
// gets its served stream and the clock when it is made, and reaches
// nothing else.
package service
