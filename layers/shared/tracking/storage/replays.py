"""A destination's replays in the deliveries table: one item each (``keys.replay_key``), holding its
range, how far its listing got (advanced only by the chunk it names, so a chunk run twice moves it
once) and its counters (added to by the deliveries of its messages). It expires with the failures."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tracking.destinations.models import DestinationRef, Replay
from tracking.keys import replay_key
from tracking.storage.deliveries import DAY_S, FAILURE_DAYS
from tracking.storage.dynamo import error_code, from_item, storage_errors, to_item

ERROR_MAX = 500


class ReplayStore:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def create(self, replay: Replay) -> None:
        item = {
            **replay_key(replay.ref.plugin_id, replay.ref.destination_id, replay.replay_id),
            "first": replay.first,
            "last": replay.last,
            "created_at": replay.created_at,
            "chunk": 0,
            "listed": False,
            "queued": 0,
            "sent": 0,
            "failed": 0,
            "skipped": 0,
            "expires_at": replay.created_at // 1000 + FAILURE_DAYS * DAY_S,
        }
        with storage_errors("create replay"):
            self._client.put_item(
                TableName=self._table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
            )

    def get(self, ref: DestinationRef, replay_id: str) -> Replay | None:
        with storage_errors("read replay"):
            answer = self._client.get_item(
                TableName=self._table,
                Key=_key(ref, replay_id),
                ConsistentRead=True,
            )
        if "Item" not in answer:
            return None
        values = from_item(answer["Item"])
        return Replay(
            ref=ref,
            replay_id=replay_id,
            first=str(values["first"]),
            last=str(values["last"]),
            created_at=int(values["created_at"]),
            chunk=int(values["chunk"]),
            next_queued=int(values.get("next_queued", 0)),
            position=values.get("position"),
            listed=bool(values["listed"]),
            queued=int(values["queued"]),
            sent=int(values["sent"]),
            failed=int(values["failed"]),
            skipped=int(values["skipped"]),
            error=values.get("error"),
        )

    def advance(self, replay: Replay, *, position: str | None, queued: int, listed: bool) -> bool:
        """Record that chunk ``replay.chunk`` was queued (``queued`` messages) and where the next one
        starts; False if that chunk was recorded already (another run of it got there first)."""
        sets = "chunk = :next, listed = :listed, queued = queued + :queued"
        values: dict[str, Any] = {
            ":chunk": replay.chunk,
            ":next": replay.chunk + 1,
            ":listed": listed,
            ":queued": queued,
        }
        if position is not None:
            sets += ", #p = :position"
            values[":position"] = position
        else:
            sets += " REMOVE #p"
        try:
            with storage_errors("advance replay"):
                self._client.update_item(
                    TableName=self._table,
                    Key=_key(replay.ref, replay.replay_id),
                    UpdateExpression="SET " + sets,
                    ConditionExpression="chunk = :chunk",
                    ExpressionAttributeNames={"#p": "position"},
                    ExpressionAttributeValues=to_item(values),
                )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def fail(self, replay: Replay, error: str) -> None:
        with storage_errors("fail replay"):
            self._client.update_item(
                TableName=self._table,
                Key=_key(replay.ref, replay.replay_id),
                UpdateExpression="SET #e = :error",
                ExpressionAttributeNames={"#e": "error"},
                ExpressionAttributeValues=to_item({":error": error[:ERROR_MAX]}),
            )

    def queued_next(self, replay: Replay, chunk: int) -> None:
        """Record that chunk ``chunk``'s message is queued (never moving back)."""
        try:
            with storage_errors("record replay chunk"):
                self._client.update_item(
                    TableName=self._table,
                    Key=_key(replay.ref, replay.replay_id),
                    UpdateExpression="SET next_queued = :chunk",
                    ConditionExpression="attribute_not_exists(next_queued) OR next_queued < :chunk",
                    ExpressionAttributeValues=to_item({":chunk": chunk}),
                )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def settle(self, ref: DestinationRef, replay_id: str, *, sent: int, failed: int, skipped: int) -> None:
        """Add what a delivery did with some of the replay's messages (none is counted twice: a copy of
        one delivered already is not counted again). A replay that is gone is left gone."""
        try:
            with storage_errors("count replay"):
                self._client.update_item(
                    TableName=self._table,
                    Key=_key(ref, replay_id),
                    UpdateExpression="ADD sent :s, failed :f, skipped :k",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues=to_item({":s": sent, ":f": failed, ":k": skipped}),
                )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise


def _key(ref: DestinationRef, replay_id: str) -> dict[str, Any]:
    return to_item(replay_key(ref.plugin_id, ref.destination_id, replay_id))
