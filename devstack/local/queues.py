"""SQS on one machine, for ``make run``: the template's queues, durable in SQLite under the stack's
state folder, served over SQS's own JSON protocol (the functions use their boto3 client, pointed here
by ``AWS_ENDPOINT_URL_SQS``); Lambda's SQS event source mapping is ``esm.QueuePoller``.

The semantics are SQS's, for what this service uses: a received message is hidden for the queue's
``VisibilityTimeout`` (or what ``ChangeMessageVisibility`` sets) and counted
(``ApproximateReceiveCount``); a message received more than the redrive policy's ``maxReceiveCount``
moves to its dead-letter queue instead; a receipt handle is valid until the message is received
again; messages outlive ``MessageRetentionPeriod`` by nothing. Every change is committed before it
is answered, so a stack stopped or killed at any point loses no message (one being handled comes
back after its visibility timeout, as on AWS). Standard queues only: no FIFO, no message attributes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

logger = logging.getLogger("devstack.local.queues")

ACCOUNT = "000000000000"
REGION = "us-east-1"


@dataclass(frozen=True)
class QueueSpec:
    name: str  # the template's logical id (the local queue's name)
    visibility_timeout_s: int = 30
    retention_s: int = 345_600
    dead_letter: str | None = None  # the dead-letter queue's logical id
    max_receive_count: int = 0

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.name}"


class QueueError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_received_at INTEGER,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS ready ON messages (queue, visible_at);
"""


class Queues:
    """The queues' messages in one SQLite file (WAL: the pollers and the HTTP server share it)."""

    def __init__(
        self, path: Path, specs: Iterable[QueueSpec], clock: Callable[[], float] = time.time
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def spec(self, name: str) -> QueueSpec:
        found = self.specs.get(name)
        if found is None:
            raise QueueError("AWS.SimpleQueueService.NonExistentQueue", f"The queue {name} does not exist")
        return found

    def send(self, queue: str, bodies: list[str], delay_s: int = 0) -> list[str]:
        self.spec(queue)
        now = self._now_ms()
        ids = [str(uuid.uuid4()) for _ in bodies]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO messages (id, queue, body, sent_at, visible_at) VALUES (?, ?, ?, ?, ?)",
                [(i, queue, body, now, now + delay_s * 1000) for i, body in zip(ids, bodies, strict=True)],
            )
            self._db.execute("COMMIT")
        return ids

    def receive(self, queue: str, limit: int, visibility_s: int | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` visible messages, each hidden for the visibility timeout and counted; one
        past its redrive policy's count goes to the dead-letter queue instead, one past the retention
        period is gone."""
        spec = self.spec(queue)
        hidden_for = spec.visibility_timeout_s if visibility_s is None else visibility_s
        now = self._now_ms()
        taken: list[dict[str, Any]] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "DELETE FROM messages WHERE queue = ? AND sent_at < ?", (queue, now - spec.retention_s * 1000)
            )
            rows = self._db.execute(
                "SELECT id, body, sent_at, receive_count, first_received_at FROM messages "
                "WHERE queue = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?",
                (queue, now, limit * 4),
            ).fetchall()
            for message_id, body, sent_at, count, first in rows:
                if len(taken) >= limit:
                    break
                if spec.dead_letter and spec.max_receive_count and count >= spec.max_receive_count:
                    self._db.execute(
                        "UPDATE messages SET queue = ?, visible_at = ?, receive_count = 0, receipt = NULL "
                        "WHERE id = ?",
                        (spec.dead_letter, now, message_id),
                    )
                    continue
                receipt = f"{message_id}#{uuid.uuid4().hex}"
                self._db.execute(
                    "UPDATE messages SET visible_at = ?, receive_count = ?, first_received_at = ?, "
                    "receipt = ? WHERE id = ?",
                    (now + hidden_for * 1000, count + 1, first or now, receipt, message_id),
                )
                taken.append(
                    {
                        "MessageId": message_id,
                        "ReceiptHandle": receipt,
                        "Body": body,
                        "MD5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                        "Attributes": {
                            "ApproximateReceiveCount": str(count + 1),
                            "SentTimestamp": str(sent_at),
                            "ApproximateFirstReceiveTimestamp": str(first or now),
                            "SenderId": ACCOUNT,
                        },
                    }
                )
            self._db.execute("COMMIT")
        return taken

    def delete(self, queue: str, receipt: str) -> bool:
        return self.delete_many(queue, [receipt]) == [True]

    def delete_many(self, queue: str, receipts: list[str]) -> list[bool]:
        """Delete by receipt handles in one commit; whether each was still valid."""
        found: list[bool] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for receipt in receipts:
                cursor = self._db.execute(
                    "DELETE FROM messages WHERE id = ? AND queue = ? AND receipt = ?",
                    (_message_of(receipt), queue, receipt),
                )
                found.append(cursor.rowcount > 0)
            self._db.execute("COMMIT")
        return found

    def change_visibility(self, queue: str, receipt: str, seconds: int) -> bool:
        if not 0 <= seconds <= 43_200:
            raise QueueError("InvalidParameterValue", "VisibilityTimeout must be 0 to 43200 seconds")
        with self._lock:
            cursor = self._db.execute(
                "UPDATE messages SET visible_at = ? WHERE id = ? AND queue = ? AND receipt = ?",
                (self._now_ms() + seconds * 1000, _message_of(receipt), queue, receipt),
            )
        return cursor.rowcount > 0

    def counts(self, queue: str) -> dict[str, int]:
        now = self._now_ms()
        with self._lock:
            visible, hidden = self._db.execute(
                "SELECT coalesce(sum(visible_at <= ?), 0), coalesce(sum(visible_at > ?), 0) "
                "FROM messages WHERE queue = ?",
                (now, now, queue),
            ).fetchone()
        return {"visible": int(visible), "hidden": int(hidden)}

    def purge(self, queue: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE queue = ?", (queue,))


def _message_of(receipt: str) -> str:
    """The message a receipt handle names (``{message id}#{random}``): found by its primary key, not
    by a scan of the queue."""
    return receipt.split("#", 1)[0]


def queue_specs(template: Any) -> list[QueueSpec]:
    """The template's SQS queues, with their visibility timeout, retention and redrive policy."""
    specs = []
    for name, resource in template.of_type("AWS::SQS::Queue").items():
        raw = resource.get("Properties", {})
        props = template.resolve(raw)
        redrive = props.get("RedrivePolicy") or {}
        target = (raw.get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        dead_letter = target.get("Fn::GetAtt", [None])[0] if isinstance(target, Mapping) else None
        specs.append(
            QueueSpec(
                name=name,
                visibility_timeout_s=int(props.get("VisibilityTimeout", 30)),
                retention_s=int(props.get("MessageRetentionPeriod", 345_600)),
                dead_letter=dead_letter,
                max_receive_count=int(redrive.get("maxReceiveCount", 0)),
            )
        )
    return specs


class QueueServer(ThreadingHTTPServer):
    """SQS's JSON protocol (``X-Amz-Target: AmazonSQS.<Operation>``) over the local queues."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], queues: Queues) -> None:
        super().__init__(address, _Handler)
        self.queues = queues

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, queue: str) -> str:
        return f"{self.endpoint}/{ACCOUNT}/{queue}"


class _Handler(BaseHTTPRequestHandler):
    server: QueueServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").removeprefix("AmazonSQS.")
        try:
            answer = _operate(self.server, operation, json.loads(body or b"{}"))
            status, payload = 200, answer
        except QueueError as error:
            status, payload = (
                error.status,
                {"__type": f"com.amazonaws.sqs#{error.code}", "message": error.message},
            )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _queue_of(request: Mapping[str, Any]) -> str:
    url = str(request.get("QueueUrl", ""))
    return url.rstrip("/").rsplit("/", 1)[-1]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _operate(server: QueueServer, operation: str, request: dict[str, Any]) -> dict[str, Any]:
    queues = server.queues
    if operation == "GetQueueUrl":
        queues.spec(str(request.get("QueueName")))
        return {"QueueUrl": server.url(str(request["QueueName"]))}
    queue = _queue_of(request)
    if operation == "SendMessage":
        (message_id,) = queues.send(queue, [request["MessageBody"]], int(request.get("DelaySeconds", 0)))
        return {"MessageId": message_id, "MD5OfMessageBody": _md5(request["MessageBody"])}
    if operation == "SendMessageBatch":
        entries = request["Entries"]
        by_delay: dict[int, list[int]] = {}
        for index, entry in enumerate(entries):
            by_delay.setdefault(int(entry.get("DelaySeconds", 0)), []).append(index)
        ids = [""] * len(entries)
        for delay, indexes in by_delay.items():
            sent = queues.send(queue, [entries[i]["MessageBody"] for i in indexes], delay)
            for index, message_id in zip(indexes, sent, strict=True):
                ids[index] = message_id
        return {
            "Successful": [
                {"Id": entry["Id"], "MessageId": message_id, "MD5OfMessageBody": _md5(entry["MessageBody"])}
                for entry, message_id in zip(entries, ids, strict=True)
            ],
            "Failed": [],
        }
    if operation == "ReceiveMessage":
        limit = int(request.get("MaxNumberOfMessages", 1))
        visibility = request.get("VisibilityTimeout")
        return {"Messages": queues.receive(queue, limit, None if visibility is None else int(visibility))}
    if operation == "DeleteMessage":
        queues.delete(queue, request["ReceiptHandle"])
        return {}
    if operation in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
        entries = request["Entries"]
        if operation == "DeleteMessageBatch":
            found = queues.delete_many(queue, [entry["ReceiptHandle"] for entry in entries])
        else:
            found = [
                queues.change_visibility(queue, entry["ReceiptHandle"], int(entry["VisibilityTimeout"]))
                for entry in entries
            ]
        stale = {"SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "stale"}
        return {
            "Successful": [{"Id": e["Id"]} for e, ok in zip(entries, found, strict=True) if ok],
            "Failed": [{"Id": e["Id"], **stale} for e, ok in zip(entries, found, strict=True) if not ok],
        }
    if operation == "ChangeMessageVisibility":
        if not queues.change_visibility(queue, request["ReceiptHandle"], int(request["VisibilityTimeout"])):
            raise QueueError("ReceiptHandleIsInvalid", "The receipt handle is not valid")
        return {}
    if operation == "GetQueueAttributes":
        spec, counts = queues.spec(queue), queues.counts(queue)
        return {
            "Attributes": {
                "QueueArn": spec.arn,
                "VisibilityTimeout": str(spec.visibility_timeout_s),
                "ApproximateNumberOfMessages": str(counts["visible"]),
                "ApproximateNumberOfMessagesNotVisible": str(counts["hidden"]),
            }
        }
    if operation == "PurgeQueue":
        queues.purge(queue)
        return {}
    raise QueueError(
        "UnsupportedOperation", f"{operation or 'no operation'} is not served by the local queues"
    )


def start_queues(template: Any, path: Path, *, fresh: bool) -> QueueServer:
    """The template's queues in ``path`` (emptied first when ``fresh``: a stack whose tables are in
    memory starts with no message either), served on a free port."""
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    server = QueueServer(("127.0.0.1", 0), Queues(path, queue_specs(template)))
    threading.Thread(target=server.serve_forever, name="queues", daemon=True).start()
    return server


def queue_environment(server: QueueServer) -> dict[str, str]:
    """What a function needs to reach the local queues with its own SQS client."""
    return {
        "AWS_ENDPOINT_URL_SQS": server.endpoint,
        "DELIVERY_QUEUE_URL": server.url("DeliveryQueue"),
        "REPLAY_QUEUE_URL": server.url("ReplayQueue"),
    }
