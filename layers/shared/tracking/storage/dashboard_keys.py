"""Dashboard keys in the control table: each key's hash (what authenticates it), its listing under
its plugin (label, last 4 characters, last use). The key itself is stored nowhere."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tracking.keys import api_key_pk, keys_pk
from tracking.models.control import DashboardKey
from tracking.storage.dynamo import error_code, from_item, query, storage_errors, to_item
from tracking.storage.plugins import plugin_index_item


def _key_from_values(values: dict[str, Any]) -> DashboardKey:
    return DashboardKey(
        values["plugin_id"],
        values["key_hash"],
        int(values["created_at"]),
        values.get("label") or "",
        values.get("last4", ""),
        int(values["last_used"]) if "last_used" in values else None,
    )


class DashboardKeyStore:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

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
                            "Item": plugin_index_item(key.plugin_id, key.created_at),
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
