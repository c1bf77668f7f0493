// A natsse subscription for a browser page, with the native EventSource and
// what it leaves to the page:
//
// - resume across reloads: the last id is kept in localStorage and a new
//   EventSource starts with ?lastEventId= (the browser's own reconnects send
//   the Last-Event-ID header, which natsse prefers to the query);
// - `expired`: natsse ends the stream when the token expires, and a
//   reconnect with the old token would be refused; reopen with a fresh one;
// - `reset`: the position is gone from the stream (purged, or the stream was
//   recreated): the events before it are lost, so refetch the state, then go
//   on with the events that follow;
// - the browser giving up: an EventSource whose readyState is CLOSED never
//   retries. Every browser does that on a refused answer (401, 403, 404,
//   5xx), and Firefox also when a reconnect is refused or reset at the TCP
//   level, e.g. while a single natsse restarts. Reopen, with exponential
//   backoff and jitter so that clients do not come back all at once.
//
// subscribe() returns {close(), eventSource, lastEventId, storageKey}.
export function subscribe({
  url, // the stream URL, e.g. "/events/orders/*" or "https://sse.example.com/events/demo"
  storageKey = "natsse:lastEventId:" + url, // where the last id is kept
  types = [], // SSE-Event types to deliver besides "message" (EventSource only delivers named types it listens to)
  getToken = null, // async () => token for ?access_token=, or null without JWT
  onEvent = () => {}, // (MessageEvent) for every message and listed type
  refetch = async () => {}, // ({requested, first, id}) after a reset: reload state from your API
  onOpen = () => {}, // (url) each time a new EventSource is created
  onExpired = () => {}, // () when natsse ended the stream because the token expired
  backoff = { base: 1000, max: 30000 }, // ms, for reopening after CLOSED
}) {
  let es = null;
  let failures = 0; // reopens since the last event
  let timer = null;
  let closed = false;

  const lastId = () => localStorage.getItem(storageKey);
  const keep = (e) => {
    localStorage.setItem(storageKey, e.lastEventId);
    failures = 0;
  };

  async function open() {
    timer = null;
    let token = null;
    try {
      if (getToken) token = await getToken();
    } catch (err) {
      // The token endpoint is unreachable too: try again later.
      if (!closed) reopenLater();
      return;
    }
    if (closed) return;
    const u = new URL(url, location.href);
    if (token) u.searchParams.set("access_token", token);
    const last = lastId();
    if (last !== null) u.searchParams.set("lastEventId", last);
    const source = new EventSource(u);
    es = source;
    onOpen(u.href);

    const deliver = (e) => {
      keep(e);
      onEvent(e);
    };
    source.addEventListener("message", deliver);
    for (const type of types) source.addEventListener(type, deliver);

    source.addEventListener("reset", async (e) => {
      // The reset's id is a valid position: keep it, so that the next
      // reconnect does not get the same reset again.
      keep(e);
      await refetch({ ...JSON.parse(e.data), id: e.lastEventId });
    });

    source.addEventListener("expired", () => {
      // No id on this event: the position stays where it was.
      source.close();
      onExpired();
      open();
    });

    source.addEventListener("error", () => {
      // CONNECTING: the browser retries by itself, with Last-Event-ID.
      if (source !== es || source.readyState !== EventSource.CLOSED || closed) return;
      reopenLater();
    });
  }

  function reopenLater() {
    const d = Math.min(backoff.max, backoff.base * 2 ** failures++);
    timer = setTimeout(open, d / 2 + (Math.random() * d) / 2);
  }

  open();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (es) es.close();
    },
    get eventSource() {
      return es;
    },
    get lastEventId() {
      return lastId();
    },
    storageKey,
  };
}
