"""Events out on ``make run`` (issue 25): events sent through the plugin API at the load run's ingest
rate (``pace_per_s``, in batches of 20) to one healthy webhook receiver on loopback, each timed from
when the service stored it (its ``receivedAt``) to when the receiver got it:
``destinations.delivery_p50_ms`` / ``p99_ms``, and ``destinations.events_per_s``: how many a second
reach the receiver, between the 5th and the 95th percentile of arrivals. Delivery keeps up when that
matches the pace; then the wait does not grow over the run (``lag_growth_ms``: the median wait of the
last tenth stored less that of the first tenth). Counting from the first *sent* to the last received
(as this bench first did) puts the pipeline's fixed wait (the router's and the queue's one-second
windows) in the rate, which then stays below the pace however fast delivery runs. The added price per
million delivered messages is ``bill.destinations`` (devstack/bench/bill.py)."""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.local.stack import eventually, start_stack, stop_stack

PLUGIN = "bench-out"
CONFIG = {
    "tracking": {"events": [{"key": "clicks", "name": {"en": "Clicks"}, "aggregations": ["increment"]}]}
}
SECRET = "whsec_bench-destination-0001"  # noqa: S105 - the bench receiver's own
BATCH = 20


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    arrivals: dict[str, tuple[float, float]]  # messageId -> (seconds since stored, when it came)
    lock: threading.Lock

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        received = datetime.fromisoformat(message["receivedAt"].replace("Z", "+00:00")).timestamp()
        now = time.time()
        with self.lock:
            self.arrivals.setdefault(message["messageId"], (now - received, now))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def destination_figures(quick: bool, pace_per_s: float = 200.0) -> dict[str, Any]:
    events = 300 if quick else 3_000
    arrivals: dict[str, tuple[float, float]] = {}
    handler = type("Receiver", (_Receiver,), {"arrivals": arrivals, "lock": threading.Lock()})
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    receiver.daemon_threads = True
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    try:
        with tempfile.TemporaryDirectory(prefix="tracking-out-") as scratch:
            stack = start_stack(Path(scratch))
            try:
                assert stack.admin("PUT", f"/v1/plugins/{PLUGIN}/config", CONFIG).status == 200
                config = {"type": "webhook", "url": url, "secret": SECRET}
                assert stack.admin("PUT", f"/v1/plugins/{PLUGIN}/destinations/bench", config).status == 200
                started = time.time()
                for batch in range(events // BATCH):
                    time.sleep(max(0.0, started + batch * BATCH / pace_per_s - time.time()))
                    body = {"user_id": f"u-{batch}", "events": [{"key": "clicks"}] * BATCH}
                    client = f"127.0.8.{batch % 250 + 1}"
                    reply = stack.request("POST", f"/v1/plugins/{PLUGIN}/track", body, source_ip=client)
                    assert reply.status == 200, reply.raw
                sent_s = time.time() - started
                eventually(lambda: len(arrivals) >= events, timeout_s=600)
            finally:
                stop_stack(stack)
    finally:
        receiver.shutdown()
        receiver.server_close()
    latencies = sorted(seconds * 1000 for seconds, _ in arrivals.values())
    # The rate between the 5th and the 95th percentile of arrivals: the first and the last alone
    # would add the spread of single waits (2 to 4 s) to the span.
    times = sorted(at for _, at in arrivals.values())
    low, high = int(len(times) * 0.05), int(len(times) * 0.95) - 1
    by_stored = [seconds * 1000 for seconds, at in sorted(arrivals.values(), key=lambda a: a[1] - a[0])]
    tenth = max(1, len(by_stored) // 10)
    return {
        "events": events,
        "pace_per_s": round(pace_per_s, 1),
        "sent_per_s": round(events / sent_s, 1),
        "delivered": len(arrivals),
        "ingest_s": round(sent_s, 2),
        "events_per_s": round((high - low) / (times[high] - times[low]), 1),
        "lag_growth_ms": round(
            statistics.median(by_stored[-tenth:]) - statistics.median(by_stored[:tenth]), 1
        ),
        "delivery_p50_ms": round(statistics.median(latencies), 1),
        "delivery_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "delivery_max_ms": round(latencies[-1], 1),
    }
