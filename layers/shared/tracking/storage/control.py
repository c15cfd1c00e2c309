"""The control table: published plugin configs, write keys, rate-limit windows (and order markers,
written by :mod:`tracking.storage.events`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from tracking.compact import dumps_compact
from tracking.keys import (
    CONFIG_SK,
    PEOPLE_SK,
    PLUGIN_INDEX_PK,
    UNCONFIGURED_COUNT,
    api_key_pk,
    config_pk,
    keys_pk,
    rate_pk,
    write_key_pk,
)
from tracking.models.config import PluginConfig, PublishedConfig
from tracking.models.control import DashboardKey, Grant
from tracking.models.failures import ConfigChanged, WriteKeyTaken
from tracking.models.people import NO_PEOPLE, People
from tracking.storage.dynamo import cancellation_codes, error_code, from_item, query, storage_errors, to_item

logger = logging.getLogger(__name__)


def _key_from_values(values: dict[str, Any]) -> DashboardKey:
    return DashboardKey(
        values["plugin_id"],
        values["key_hash"],
        int(values["created_at"]),
        values.get("label") or "",
        values.get("last4", ""),
        int(values["last_used"]) if "last_used" in values else None,
    )


# Chatbots listed without a config (they only ever sent widget events) are counted, and listed up to
# this many: a flood of calls naming new chatbot ids cannot grow the list without bound (past it, a
# chatbot is listed once it publishes a config).
UNCONFIGURED_MAX = 10_000


class ControlStore:
    def __init__(self, client: Any, table: str, *, unconfigured_max: int = UNCONFIGURED_MAX) -> None:
        self._client = client
        self._table = table
        self._unconfigured_max = unconfigured_max

    # -- plugin configs -------------------------------------------------------------------------

    def get_config(self, plugin_id: str) -> PublishedConfig | None:
        return self.get_plugin(plugin_id)[0]

    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, People]:
        """The published config and the plugin's lists about people, in one consistent query (both
        items sit under the plugin's key; together they are usually one read unit)."""
        answer = query(
            self._client,
            self._table,
            "pk = :pk",
            {":pk": config_pk(plugin_id)},
            "read config",
            ConsistentRead=True,
        )
        published: PublishedConfig | None = None
        people = NO_PEOPLE
        for item in answer.get("Items", []):
            values = from_item(item)
            if values["sk"] == CONFIG_SK:
                published = PublishedConfig(
                    plugin_id=plugin_id,
                    config=PluginConfig.model_validate(json.loads(values["config"])),
                    version=int(values["version"]),
                    published_at=int(values["published_at"]),
                    resets={key: int(at) for key, at in values.get("resets", {}).items()},
                )
            elif values["sk"] == PEOPLE_SK:
                people = People(
                    suppressed=frozenset(values.get("suppressed", ())),
                    trait_names=tuple(sorted(values.get("trait_names", ()))),
                )
        return published, people

    def suppress(self, plugin_id: str, hashes: Iterable[str]) -> None:
        self._update_people(plugin_id, "ADD suppressed :hashes", set(hashes))

    def lift_suppression(self, plugin_id: str, hashes: Iterable[str]) -> None:
        self._update_people(plugin_id, "DELETE suppressed :hashes", set(hashes))

    def add_trait_names(self, plugin_id: str, names: Iterable[str]) -> None:
        self._update_people(plugin_id, "ADD trait_names :hashes", set(names))

    def _update_people(self, plugin_id: str, expression: str, members: set[str]) -> None:
        if not members:
            return
        with storage_errors("update people"):
            self._client.update_item(
                TableName=self._table,
                Key=to_item({"pk": config_pk(plugin_id), "sk": PEOPLE_SK}),
                UpdateExpression=expression,
                ExpressionAttributeValues={":hashes": {"SS": sorted(members)}},
            )

    def save_config(self, published: PublishedConfig, previous: PublishedConfig | None) -> None:
        """Store a new version and its write keys in one transaction.

        Raises :class:`WriteKeyTaken` if a write key already belongs to another plugin, and
        :class:`ConfigChanged` if someone else published in between (the caller may publish again).
        """
        plugin_id = published.plugin_id
        config_item = to_item(
            {
                "pk": config_pk(plugin_id),
                "sk": CONFIG_SK,
                "config": dumps_compact(published.config.model_dump(mode="json")),
                "version": published.version,
                "published_at": published.published_at,
                "resets": published.resets,
            }
        )
        if previous is None:
            config_put: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            config_put = {
                "ConditionExpression": "version = :previous",
                "ExpressionAttributeValues": to_item({":previous": previous.version}),
            }
        # Each action with what it is: a cancelled transaction's reasons come back in the same order.
        index_item = self._index_item(plugin_id, published.published_at)
        actions: list[tuple[tuple[str, str], dict[str, Any]]] = [
            (("config", plugin_id), {"Put": {"TableName": self._table, "Item": config_item, **config_put}}),
            (("index", plugin_id), {"Put": {"TableName": self._table, "Item": index_item}}),
        ]
        owner = to_item({":plugin": plugin_id})
        for key in published.config.write_keys:
            item = to_item({"pk": write_key_pk(key), "sk": "writekey", "plugin_id": plugin_id})
            condition = {
                "ConditionExpression": "attribute_not_exists(pk) OR plugin_id = :plugin",
                "ExpressionAttributeValues": owner,
            }
            actions.append(
                (("write_key", key), {"Put": {"TableName": self._table, "Item": item, **condition}})
            )
        dropped = set(previous.config.write_keys if previous else ()) - set(published.config.write_keys)
        for key in sorted(dropped):
            item_key = to_item({"pk": write_key_pk(key), "sk": "writekey"})
            condition = {
                "ConditionExpression": "attribute_not_exists(pk) OR plugin_id = :plugin",
                "ExpressionAttributeValues": owner,
            }
            delete = {"Delete": {"TableName": self._table, "Key": item_key, **condition}}
            actions.append((("dropped_key", key), delete))
        try:
            with storage_errors("publish config"):
                self._client.transact_write_items(TransactItems=[action for _, action in actions])
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            failed = [
                what
                for (what, _), reason in zip(actions, reasons, strict=False)
                if reason.get("Code") == "ConditionalCheckFailed"
            ]
            if ("config", plugin_id) in failed:
                raise ConfigChanged(plugin_id) from exc
            taken = [name for kind, name in failed if kind == "write_key"]
            if taken:
                raise WriteKeyTaken(taken) from exc
            logger.error("publish cancelled", extra={"codes": sorted(cancellation_codes(exc))})
            raise

    def _index_item(self, plugin_id: str, at: int) -> dict[str, Any]:
        return to_item({"pk": PLUGIN_INDEX_PK, "sk": plugin_id, "plugin_id": plugin_id, "updated_at": at})

    def register_plugin(self, plugin_id: str, at: int) -> bool:
        """List a plugin that has events and no config (a chatbot that only ever sent widget events),
        counted, up to ``unconfigured_max`` of them; whether it is listed (now or before)."""
        listed = {
            "TableName": self._table,
            "Item": self._index_item(plugin_id, at),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        counted = {
            "Key": to_item(UNCONFIGURED_COUNT),
            "UpdateExpression": "ADD n :one",
            "ConditionExpression": "attribute_not_exists(n) OR n < :most",
            "ExpressionAttributeValues": to_item({":one": 1, ":most": self._unconfigured_max}),
        }
        try:
            with storage_errors("register plugin"):
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": self._index_item(plugin_id, at),
                                **listed,
                            }
                        },
                        {"Update": {"TableName": self._table, **counted}},
                    ]
                )
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons") or []]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return True  # listed already
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                logger.warning(
                    "unconfigured chatbots at their bound, not listed", extra={"plugin": plugin_id}
                )
                return False
            raise
        return True

    def is_listed(self, plugin_id: str) -> bool:
        with storage_errors("read plugin"):
            answer = self._client.get_item(
                TableName=self._table, Key=to_item({"pk": PLUGIN_INDEX_PK, "sk": plugin_id})
            )
        return "Item" in answer

    def list_plugins(self, after: str | None, limit: int) -> tuple[list[str], bool]:
        """Up to ``limit`` plugin ids after ``after``, in order; and whether there are more."""
        condition, values = "pk = :pk", {":pk": PLUGIN_INDEX_PK}
        if after is not None:
            condition += " AND sk > :after"
            values[":after"] = after
        plugins: list[str] = []
        start: dict[str, Any] = {}
        while len(plugins) <= limit:
            answer = query(
                self._client,
                self._table,
                condition,
                values,
                "list plugins",
                ProjectionExpression="sk",
                Limit=limit + 1 - len(plugins),
                **start,
            )
            plugins.extend(item["sk"]["S"] for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                break
            start = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}
        return plugins[:limit], len(plugins) > limit

    # -- dashboard keys -----------------------------------------------------------------------------

    def save_dashboard_key(self, key: DashboardKey) -> None:
        """Store a key (only its hash), list it under its plugin, and list the plugin, in one
        transaction."""
        values = {
            "plugin_id": key.plugin_id,
            "key_hash": key.key_hash,
            "created_at": key.created_at,
            "label": key.label or None,
            "last4": key.last4,
        }
        item = to_item({"pk": api_key_pk(key.key_hash), "sk": "apikey", **values})
        listed = to_item({"pk": keys_pk(key.plugin_id), "sk": key.key_id, **values})
        with storage_errors("create key"):
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": listed}},
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": self._index_item(key.plugin_id, key.created_at),
                        }
                    },
                ]
            )

    def dashboard_key(self, key_hash: str) -> DashboardKey | None:
        with storage_errors("read key"):
            answer = self._client.get_item(
                TableName=self._table, Key=to_item({"pk": api_key_pk(key_hash), "sk": "apikey"})
            )
        if "Item" not in answer:
            return None
        return _key_from_values({"key_hash": key_hash, **from_item(answer["Item"])})

    def list_keys(self, plugin_id: str) -> list[DashboardKey]:
        """The plugin's keys, as listed (never the keys themselves), oldest first."""
        values = {":pk": keys_pk(plugin_id)}
        keys: list[DashboardKey] = []
        start: dict[str, Any] = {}
        while True:
            answer = query(self._client, self._table, "pk = :pk", values, "list keys", **start)
            keys.extend(_key_from_values(from_item(item)) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return sorted(keys, key=lambda key: (key.created_at, key.key_id))
            start = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}

    def listed_key(self, plugin_id: str, key_id: str) -> DashboardKey | None:
        with storage_errors("read key"):
            answer = self._client.get_item(
                TableName=self._table,
                Key=to_item({"pk": keys_pk(plugin_id), "sk": key_id}),
                ConsistentRead=True,
            )
        return _key_from_values(from_item(answer["Item"])) if "Item" in answer else None

    def delete_dashboard_key(self, key: DashboardKey) -> None:
        """Forget a key: its hash (so it authenticates nothing from now on) and its listing."""
        with storage_errors("revoke key"):
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": to_item({"pk": api_key_pk(key.key_hash), "sk": "apikey"}),
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": to_item({"pk": keys_pk(key.plugin_id), "sk": key.key_id}),
                        }
                    },
                ]
            )

    def key_used(self, key: DashboardKey, at: int) -> None:
        """Record a key's use on its listing (the caller writes at most once per resolution)."""
        with storage_errors("record key use"):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=to_item({"pk": keys_pk(key.plugin_id), "sk": key.key_id}),
                    UpdateExpression="SET last_used = :at",
                    ConditionExpression=(
                        "attribute_exists(pk) AND (attribute_not_exists(last_used) OR last_used < :at)"
                    ),
                    ExpressionAttributeValues=to_item({":at": at}),
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise

    def plugin_for_write_key(self, write_key: str) -> str | None:
        with storage_errors("read write key"):
            answer = self._client.get_item(
                TableName=self._table,
                Key=to_item({"pk": write_key_pk(write_key), "sk": "writekey"}),
            )
        item = answer.get("Item")
        return None if item is None else str(item["plugin_id"]["S"])

    # -- rate limiting ----------------------------------------------------------------------------

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
