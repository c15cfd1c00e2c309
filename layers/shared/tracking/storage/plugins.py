"""The plugins in the control table: each plugin's published config and its people lists (one query
reads both), the list of plugins, and the write keys that name a plugin."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from tracking.json_text import dumps_compact
from tracking.keys import (
    CONFIG_SK,
    DESTINATION_SETTINGS_SK,
    PEOPLE_SK,
    PLUGIN_INDEX_PK,
    STAMP_SK,
    UNCONFIGURED_COUNT,
    config_pk,
    destinations_pk,
    suppression_key,
    write_key_pk,
)
from tracking.models.config import PluginConfig, PublishedConfig
from tracking.models.people import NO_PEOPLE_LISTS, PeopleLists, SuppressionFilter
from tracking.models.storage_failures import ConfigChanged, StorageUnavailable, WriteKeyTaken
from tracking.storage.dynamo import (
    batch_put,
    cancellation_codes,
    error_code,
    from_item,
    query,
    storage_errors,
    to_item,
)

logger = logging.getLogger(__name__)

# Chatbots listed without a config (they only ever sent widget events) are counted, and listed up to
# this many: a flood of calls naming new chatbot ids cannot grow the list without bound (past it, a
# chatbot is listed once it publishes a config).
UNCONFIGURED_MAX = 10_000
# How often a suppression rereads the filter when another one wrote it meanwhile, and how many
# suppressions one lifting transaction removes (with the people item and the stamp: within 100).
FILTER_WRITE_ATTEMPTS = 5
LIFT_MAX = 90


def plugin_index_item(plugin_id: str, at: int) -> dict[str, Any]:
    """The plugin's entry in the list of plugins (written with its config, a key, or its first event)."""
    return to_item({"pk": PLUGIN_INDEX_PK, "sk": plugin_id, "plugin_id": plugin_id, "updated_at": at})


def settings_item(published: PublishedConfig) -> dict[str, Any]:
    """What the plugin's destinations follow of its config, read with them (the router has no
    access to the config itself)."""
    values = {"pk": destinations_pk(published.plugin_id), "sk": DESTINATION_SETTINGS_SK}
    return to_item({**values, "bots": published.config.bots})


class PluginStore:
    def __init__(self, client: Any, table: str, *, unconfigured_max: int = UNCONFIGURED_MAX) -> None:
        self._client = client
        self._table = table
        self._unconfigured_max = unconfigured_max

    def get_config(self, plugin_id: str) -> PublishedConfig | None:
        return self.get_plugin(plugin_id)[0]

    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists]:
        published, people, _ = self.plugin_with_stamp(plugin_id)
        return published, people

    def stamp(self, plugin_id: str) -> int:
        """The plugin's stamp, read consistently (a small item: one read unit): it changes with every
        write of the config or the people lists, so a copy read with the same stamp is current."""
        with storage_errors("read config"):
            answer = self._client.get_item(
                TableName=self._table,
                Key=to_item({"pk": config_pk(plugin_id), "sk": STAMP_SK}),
                ConsistentRead=True,
            )
        return int(answer.get("Item", {}).get("n", {}).get("N", 0))

    def plugin_with_stamp(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists, int]:
        """The published config, the plugin's lists about people and their stamp, in one consistent
        query (the items sit under the plugin's key; together they are usually one read unit)."""
        answer = query(
            self._client,
            self._table,
            "pk = :pk",
            {":pk": config_pk(plugin_id)},
            "read config",
            ConsistentRead=True,
        )
        published: PublishedConfig | None = None
        people = NO_PEOPLE_LISTS
        stamp = 0
        for item in answer.get("Items", []):
            values = from_item(item)
            if values["sk"] == STAMP_SK:
                stamp = int(values["n"])
            elif values["sk"] == CONFIG_SK:
                published = PublishedConfig(
                    plugin_id=plugin_id,
                    config=PluginConfig.model_validate(json.loads(values["config"])),
                    version=int(values["version"]),
                    published_at=int(values["published_at"]),
                    resets={key: int(at) for key, at in values.get("resets", {}).items()},
                )
            elif values["sk"] == PEOPLE_SK:
                found = values.get("filter")
                people = PeopleLists(
                    suppressed=frozenset(values.get("suppressed", ())),
                    trait_names=tuple(sorted(values.get("trait_names", ()))),
                    filter=SuppressionFilter(bytes(found)) if found is not None else None,
                    confirm=functools.partial(self.is_suppressed, plugin_id),
                )
        return published, people, stamp

    def is_suppressed(self, plugin_id: str, digest: str) -> bool:
        """Whether the digest's own suppression item is there (read when the filter flags it)."""
        with storage_errors("read suppression"):
            answer = self._client.get_item(
                TableName=self._table,
                Key=to_item(suppression_key(plugin_id, digest)),
                ConsistentRead=True,
                ProjectionExpression="pk",
            )
        return "Item" in answer

    def suppress(self, plugin_id: str, hashes: Iterable[str]) -> None:
        """Suppress these digests: each gets its own item, then the plugin's filter takes them (with
        the stamp, in one transaction); a filter bit is only ever set for a digest whose item exists.
        Two suppressions at once: the filter is written on the version read, and read again if it
        moved."""
        digests = sorted(set(hashes))
        if not digests:
            return
        batch_put(
            self._client,
            self._table,
            [to_item({**suppression_key(plugin_id, digest), "plugin_id": plugin_id}) for digest in digests],
        )
        people_key = to_item({"pk": config_pk(plugin_id), "sk": PEOPLE_SK})
        for _ in range(FILTER_WRITE_ATTEMPTS):
            with storage_errors("read people"):
                stored = self._client.get_item(
                    TableName=self._table,
                    Key=people_key,
                    ConsistentRead=True,
                    ProjectionExpression="#f, filter_version",
                    ExpressionAttributeNames={"#f": "filter"},
                ).get("Item", {})
            current = SuppressionFilter(bytes(stored["filter"]["B"])) if "filter" in stored else None
            version = int(stored.get("filter_version", {}).get("N", 0))
            updated = (current or SuppressionFilter()).with_digests(digests)
            if updated == current:
                return
            update = {
                "TableName": self._table,
                "Key": people_key,
                "UpdateExpression": "SET #f = :filter, filter_version = :next",
                "ConditionExpression": "attribute_not_exists(filter_version) OR filter_version = :version",
                "ExpressionAttributeNames": {"#f": "filter"},
                "ExpressionAttributeValues": {
                    ":filter": {"B": updated.bits},
                    ":next": {"N": str(version + 1)},
                    ":version": {"N": str(version)},
                },
            }
            try:
                with storage_errors("update people"):
                    self._client.transact_write_items(
                        TransactItems=[{"Update": update}, {"Update": self._stamped(plugin_id)}]
                    )
                return
            except ClientError as exc:
                if "ConditionalCheckFailed" not in cancellation_codes(exc):
                    raise
        raise StorageUnavailable("The suppression filter kept changing; retry later")

    def lift_suppression(self, plugin_id: str, hashes: Iterable[str]) -> None:
        """The digests' items go, with the stamp, in one transaction (their filter bits stay: a
        flagged digest without an item is not suppressed); an older version's list loses them too."""
        digests = sorted(set(hashes))
        for start in range(0, len(digests), LIFT_MAX):
            chunk = digests[start : start + LIFT_MAX]
            deletes = [
                {"Delete": {"TableName": self._table, "Key": to_item(suppression_key(plugin_id, digest))}}
                for digest in chunk
            ]
            legacy = {
                "TableName": self._table,
                "Key": to_item({"pk": config_pk(plugin_id), "sk": PEOPLE_SK}),
                "UpdateExpression": "DELETE suppressed :hashes",
                "ExpressionAttributeValues": {":hashes": {"SS": chunk}},
            }
            with storage_errors("update people"):
                self._client.transact_write_items(
                    TransactItems=[*deletes, {"Update": legacy}, {"Update": self._stamped(plugin_id)}]
                )

    def add_trait_names(self, plugin_id: str, names: Iterable[str]) -> None:
        members = set(names)
        if not members:
            return
        with storage_errors("update people"):
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": to_item({"pk": config_pk(plugin_id), "sk": PEOPLE_SK}),
                            "UpdateExpression": "ADD trait_names :names",
                            "ExpressionAttributeValues": {":names": {"SS": sorted(members)}},
                        }
                    },
                    {"Update": self._stamped(plugin_id)},
                ]
            )

    def _stamped(self, plugin_id: str) -> dict[str, Any]:
        """The update that adds one to the plugin's stamp, in the transaction of what it stamps."""
        return {
            "TableName": self._table,
            "Key": to_item({"pk": config_pk(plugin_id), "sk": STAMP_SK}),
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }

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
        index_item = plugin_index_item(plugin_id, published.published_at)
        actions: list[tuple[tuple[str, str], dict[str, Any]]] = [
            (("config", plugin_id), {"Put": {"TableName": self._table, "Item": config_item, **config_put}}),
            (("index", plugin_id), {"Put": {"TableName": self._table, "Item": index_item}}),
            (("stamp", plugin_id), {"Update": self._stamped(plugin_id)}),
            (("settings", plugin_id), {"Put": {"TableName": self._table, "Item": settings_item(published)}}),
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

    def register_plugin(self, plugin_id: str, at: int) -> bool:
        """List a plugin that has events and no config (a chatbot that only ever sent widget events),
        counted, up to ``unconfigured_max`` of them; whether it is listed (now or before)."""
        listed = {
            "TableName": self._table,
            "Item": plugin_index_item(plugin_id, at),
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
                                "Item": plugin_index_item(plugin_id, at),
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

    def plugin_for_write_key(self, write_key: str) -> str | None:
        with storage_errors("read write key"):
            answer = self._client.get_item(
                TableName=self._table,
                Key=to_item({"pk": write_key_pk(write_key), "sk": "writekey"}),
            )
        item = answer.get("Item")
        return None if item is None else str(item["plugin_id"]["S"])
