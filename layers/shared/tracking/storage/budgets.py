"""Shared budgets in the control table: a window per client IP (ingest's rate limit) or per API key
(its daily quota), from which every container takes leases (:mod:`tracking.ratelimit`)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from botocore.exceptions import ClientError

from tracking.keys import rate_pk, salt_pk
from tracking.models.control import Grant
from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.dynamo import error_code, from_item, storage_errors, to_item

logger = logging.getLogger(__name__)


class BudgetStore:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def reserve(
        self, client_ip: str, want: int, limit: int, window_ms: int, now_ms: int, *, joining: bool = True
    ) -> Grant:
        """Take up to ``want`` requests from the IP's budget of ``limit`` per window; ``joining``: the
        caller holds no lease of this window yet (it is counted among the budget's holders).

        The window starts with the IP's first request and lasts ``window_ms``; all Lambda containers
        share it. One conditional write, whether the IP is new or inside its window; a second only
        when a window has ended (to start the next) or the budget runs short. A grant of 0 means the
        IP is over its limit until ``window_start + window_ms``.
        """
        key = to_item({"pk": rate_pk(client_ip), "sk": "window"})
        stale = now_ms - window_ms
        for _ in range(4):
            try:
                with storage_errors("rate limit"):
                    answer = self._client.update_item(
                        TableName=self._table,
                        Key=key,
                        UpdateExpression=(
                            "SET ws = if_not_exists(ws, :now),"
                            " expires_at = if_not_exists(expires_at, :expires) ADD n :want, h :joining"
                        ),
                        ConditionExpression="attribute_not_exists(pk) OR (ws > :stale AND n <= :room)",
                        ExpressionAttributeValues=to_item(
                            {
                                ":want": want,
                                ":now": now_ms,
                                ":expires": (now_ms + window_ms) // 1000 + 60,
                                ":stale": stale,
                                ":room": limit - want,
                                ":joining": 1 if joining else 0,
                            }
                        ),
                        ReturnValues="ALL_NEW",
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    )
                now = from_item(answer["Attributes"])
                return Grant(int(now["ws"]), want, int(now.get("h", 1)), limit - int(now["n"]))
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
                old = exc.response.get("Item")
            if old is None or int(old["ws"]["N"]) <= stale:
                if self._open_window(key, want, window_ms, now_ms):
                    return Grant(now_ms, want, 1, limit - want)
                continue
            room = limit - int(old["n"]["N"])
            if room <= 0:
                return Grant(int(old["ws"]["N"]), 0, int(old.get("h", {}).get("N", 1)), 0)
            want = min(want, room)
        # Heavy contention on one IP's counter: grant nothing this time (the limit is never exceeded);
        # the client is told to retry in a second.
        logger.warning("rate limiter contention, request refused for now")
        return Grant(now_ms, 0, contended=True)

    def release(self, client_ip: str, window_start: int, count: int) -> None:
        """Give back ``count`` requests of a lease taken in the window starting at ``window_start``
        (nothing, if that window has ended)."""
        try:
            with storage_errors("rate limit"):
                self._client.update_item(
                    TableName=self._table,
                    Key=to_item({"pk": rate_pk(client_ip), "sk": "window"}),
                    UpdateExpression="ADD n :back",
                    ConditionExpression="ws = :ws",
                    ExpressionAttributeValues=to_item({":back": -count, ":ws": window_start}),
                )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def _open_window(self, key: dict[str, Any], want: int, window_ms: int, now_ms: int) -> bool:
        try:
            with storage_errors("rate limit"):
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        **key,
                        **to_item(
                            {"ws": now_ms, "n": want, "h": 1, "expires_at": (now_ms + window_ms) // 1000 + 60}
                        ),
                    },
                    ConditionExpression="attribute_not_exists(pk) OR ws <= :stale",
                    ExpressionAttributeValues=to_item({":stale": now_ms - window_ms}),
                )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def daily_salt(self, day: str, expires_at: int) -> bytes:
        """The day's secret salt, shared by every container: the first to ask creates it (a random
        32 bytes, written only if absent); it expires at ``expires_at`` (epoch seconds), after which
        no pseudonym of that day can be linked to an address again. A write whose answer was lost
        is read back (it may have landed) before the caller is told storage is unavailable."""
        key = to_item({"pk": salt_pk(day), "sk": "salt"})
        found = self._salt(key)
        if found is not None:
            return found
        salt = secrets.token_bytes(32)
        try:
            with storage_errors("rate limit"):
                self._client.put_item(
                    TableName=self._table,
                    Item={**key, "salt": {"B": salt}, **to_item({"expires_at": expires_at})},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            return salt
        except ClientError as exc:  # the condition failed: another container made it first
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
        except StorageUnavailable:
            pass  # throttled, or the answer lost: whether a salt is there now is read below
        found = self._salt(key)
        if found is None:
            raise StorageUnavailable("Storage is unavailable (rate limit); retry later")
        return found

    def _salt(self, key: dict[str, Any]) -> bytes | None:
        with storage_errors("rate limit"):
            item = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return bytes(item["salt"]["B"]) if item else None
