"""The delivery queue (SQS): the router's messages in, in batches of 10 sent side by side; a message's
next attempt set through its visibility. Entries SQS refuses for a moment are sent again; what still
fails raises ``StorageUnavailable`` (the router's batch is retried then)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tracking.destinations.messages import json_text
from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.dynamo import Workers

SQS_BATCH = 10
SEND_ATTEMPTS = 3


class SqsQueue:
    def __init__(self, client: Callable[[], Any], url: str, workers: int = 8) -> None:
        self._client = client  # made on first use
        self._url = url
        self._workers = Workers(workers, "queue")

    def send(self, bodies: Sequence[dict[str, Any]], delay_s: int = 0) -> None:
        delay: dict[str, Any] = {"DelaySeconds": delay_s} if delay_s else {}
        entries: list[dict[str, Any]] = [
            {"Id": uuid.uuid4().hex, "MessageBody": json_text(body), **delay} for body in bodies
        ]
        batches = [entries[start : start + SQS_BATCH] for start in range(0, len(entries), SQS_BATCH)]
        self._workers.map(self._send_batch, batches)

    def _send_batch(self, entries: list[dict[str, Any]]) -> None:
        pending = entries
        for _ in range(SEND_ATTEMPTS):
            answer = self._call("send_message_batch", QueueUrl=self._url, Entries=pending)
            failed = {failure["Id"] for failure in answer.get("Failed", []) if not failure.get("SenderFault")}
            refused = [failure for failure in answer.get("Failed", []) if failure.get("SenderFault")]
            if refused:
                raise StorageUnavailable(f"The queue refused a message ({refused[0].get('Code')})")
            pending = [entry for entry in pending if entry["Id"] in failed]
            if not pending:
                return
        raise StorageUnavailable("The queue is unavailable; retry later")

    def show_again(self, receipts: Sequence[tuple[str, int]]) -> None:
        for start in range(0, len(receipts), SQS_BATCH):
            entries = [
                {"Id": str(number), "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                for number, (receipt, seconds) in enumerate(receipts[start : start + SQS_BATCH])
            ]
            self._call("change_message_visibility_batch", QueueUrl=self._url, Entries=entries)

    def _call(self, operation: str, **arguments: Any) -> Any:
        try:
            return getattr(self._client(), operation)(**arguments)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"The queue is unavailable ({operation}); retry later") from exc
