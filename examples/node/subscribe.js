// A Node subscriber for natsse with the npm package `eventsource`, printing
// each event as one JSON line: {"id":"4","event":"message","data":"hi"}.
//
//   npm ci && node subscribe.js [--last-event-id N] [--types a,b] URL
//
// `eventsource` reconnects by itself, with Last-Event-ID, when a stream ends
// or a connection fails. Like a browser it gives up for good (readyState
// CLOSED) on an answer other than 200; this program then opens a new
// EventSource with the last id as `lastEventId`, backing off exponentially
// with jitter, so a client outlives a natsse that restarts or a token that
// expires. NATSSE_TOKEN, when set, is sent as Authorization: Bearer.
import { EventSource } from "eventsource";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  options: {
    "last-event-id": { type: "string" }, // resume after this id (0 = everything stored)
    types: { type: "string", default: "" }, // SSE-Event types to print besides "message"
  },
  allowPositionals: true,
});
if (positionals.length !== 1) {
  console.error("usage: node subscribe.js [--last-event-id N] [--types a,b] URL");
  process.exit(2);
}
const url = positionals[0];
// natsse's own types, reset and expired, come without being published.
const types = ["message", "reset", "expired", ...values.types.split(",").filter(Boolean)];

let lastEventId = values["last-event-id"] ?? null;
let es = null;
let failures = 0; // reopens since the last event: the backoff grows with them

// freshToken stands for your backend's token endpoint: natsse sends
// `expired` when the token ends, and only a new token continues.
async function freshToken() {
  return process.env.NATSSE_TOKEN || null;
}

async function open() {
  const token = await freshToken();
  const u = new URL(url);
  // A new EventSource knows no last id: pass it in the query. On its own
  // reconnects it sends the Last-Event-ID header, which natsse prefers.
  if (lastEventId !== null) u.searchParams.set("lastEventId", lastEventId);
  const source = new EventSource(u, {
    fetch: (input, init) =>
      fetch(input, { ...init, headers: { ...init.headers, ...(token ? { Authorization: "Bearer " + token } : {}) } }),
  });
  es = source;
  for (const type of types) {
    source.addEventListener(type, (e) => {
      if (type === "expired") {
        // natsse closes the stream after this event; a reconnect with the
        // same token would be refused. No id: the position stays.
        console.log(JSON.stringify({ id: lastEventId, event: type, data: e.data }));
        source.close();
        open();
        return;
      }
      lastEventId = e.lastEventId;
      failures = 0;
      console.log(JSON.stringify({ id: e.lastEventId, event: type, data: e.data }));
    });
  }
  source.onerror = (e) => {
    if (source !== es || source.readyState !== EventSource.CLOSED) return; // it retries by itself
    const delay = backoff(failures++);
    console.error(`EventSource closed (${e.message ?? "error"}); reopening in ${delay} ms after id ${lastEventId}`);
    setTimeout(open, delay);
  };
}

// backoff doubles from 1 s up to 30 s, with jitter (50 to 100 % of it) so
// that clients cut at the same moment do not come back in step.
function backoff(n) {
  const d = Math.min(30000, 1000 * 2 ** n);
  return Math.round(d / 2 + (Math.random() * d) / 2);
}

open();
