// Package service is natsse's HTTP side: it serves JetStream messages as
// Server-Sent Events, fanning one upstream consumer out to every connection.
//
// It promises what docs/protocol.md describes ("The stream", "Resuming",
// "Reset", "The soft refusal", "Operations"): one event per stored
// message with id = stream sequence, strictly increasing per connection, and
// exact resume from any position (Last-Event-ID, lastEventId, since) with no
// gap or duplicate at the switch from replay to live. A slow client never
// slows anyone else: it falls back to catching up from the ring or JetStream,
// and a client that stops reading is cut off by its write deadline.
//
// With a JWT key source configured it also promises access control (docs/protocol.md, "Access control"):
// no stream without a verified token whose natsse claim allows every
// requested subject, and none that outlives its token.
package service
