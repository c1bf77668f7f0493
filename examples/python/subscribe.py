#!/usr/bin/env python3
"""A natsse subscriber with the Python standard library only.

    python3 subscribe.py [--last-event-id N] URL

Prints each event as one JSON line: {"id": "4", "event": "message", "data": "hi"}.
When the stream ends (natsse restarts, NATSSE_MAX_STREAM_AGE, a load
balancer) or a connection fails, it reconnects with the Last-Event-ID of the
last event it printed, so nothing is lost or printed twice: after a stream
that ended it waits the server's retry:, after failed connections it backs
off exponentially with jitter, so a restarted natsse is not hit by every
client at once. An answer other than 200 is permanent (a bad path, token or
subject) and ends the program, as it ends an EventSource. NATSSE_TOKEN, when
set, is sent as Authorization: Bearer.
"""

import argparse
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request

MAX_BACKOFF = 30.0  # seconds between failed connections, at most


def backoff(retry, failures):
    """The server's retry, doubled per failure up to MAX_BACKOFF, with jitter
    (50 to 100 % of it) so that clients cut together come back apart."""
    d = min(retry * 2 ** failures, MAX_BACKOFF)
    return d / 2 + random.random() * d / 2


class Subscriber:
    def __init__(self, url, last_id, token):
        self.url = url
        self.last_id = last_id  # id of the last complete block: where to resume
        self.token = token
        self.retry = 1.0  # seconds; natsse's retry: replaces it

    def stream(self):
        """One request: print its events until it ends. Returns whether the
        request was answered with a stream; raises PermissionError for an
        answer that reconnecting will not change."""
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        try:
            # natsse sends a heartbeat at least every NATSSE_HEARTBEAT (15 s by
            # default): a minute of silence means a dead connection.
            resp = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=60)
        except urllib.error.HTTPError as e:
            raise PermissionError(f"{e.code} {e.reason}: {e.read(4096).decode(errors='replace')}")
        with resp:
            if resp.status != 200:
                raise PermissionError(f"{resp.status} {resp.reason}")
            self.read(resp)
        return True

    def read(self, resp):
        """Parse the event stream and print each complete event; a block cut
        off by the end of the stream is dropped, and its id not kept, so it
        comes again on the next connection."""
        ev_id, ev_type, data = None, "", None
        while True:
            raw = resp.readline()
            if not raw.endswith(b"\n"):
                return  # end of the stream (or a cut line): reconnect
            line = raw.decode("utf-8", errors="replace").rstrip("\n").removesuffix("\r")
            if line == "":  # end of a block
                if ev_id is not None:
                    self.last_id = ev_id
                if data is not None:
                    print(json.dumps({"id": self.last_id, "event": ev_type or "message", "data": "\n".join(data)}), flush=True)
                ev_id, ev_type, data = None, "", None
                continue
            if line.startswith(":"):
                continue  # a heartbeat comment
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                ev_id = value
            elif name == "event":
                ev_type = value
            elif name == "data":
                data = (data or []) + [value]
            elif name == "retry" and value.isdigit():
                self.retry = int(value) / 1000

    def run(self):
        failures = 0
        while True:
            try:
                self.stream()
                failures = 0  # the stream worked: it merely ended
                why = "the stream ended"
            except PermissionError:
                raise
            except OSError as e:  # refused, reset, timed out
                failures += 1
                why = str(e)
            wait = backoff(self.retry, failures)
            print(f"{why}; reconnecting in {wait:.2f} s with Last-Event-ID {self.last_id}", file=sys.stderr, flush=True)
            time.sleep(wait)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--last-event-id", help="resume after this id (0 = from the first stored event)")
    p.add_argument("url")
    args = p.parse_args()
    try:
        Subscriber(args.url, args.last_event_id, os.environ.get("NATSSE_TOKEN")).run()
    except PermissionError as e:
        sys.exit(f"natsse refused the stream: {e}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
