"""A plugin's destinations in the control table, one item each under the plugin's destinations key
(one query reads them all, with the settings of the plugin's config they follow: the router reads
them once per cache period). The credential is stored
with the config, as the delivery needs it to sign or authenticate; the table is encrypted at rest
(with the stack's key when one is given) and nothing that reads it for a route shows it."""

from __future__ import annotations

import json
from typing import Any

from tracking.destinations.models import Destination, DestinationConfig
from tracking.json_text import dumps_compact
from tracking.keys import DESTINATION_SETTINGS_SK, destinations_pk
from tracking.storage.dynamo import from_item, query_all, storage_errors, to_item


def config_text(config: DestinationConfig) -> str:
    """The config as stored: its credential in the clear (``model_dump`` would mask it)."""
    values = config.model_dump(mode="json", exclude_none=True)
    name = "secret" if config.type == "webhook" else "write_key"
    values[name] = config.credential
    return dumps_compact(values)


def destination_from_values(values: dict[str, Any]) -> Destination:
    enabled_at = values.get("enabled_at")
    return Destination(
        plugin_id=values["plugin_id"],
        destination_id=values["sk"],
        config=DestinationConfig.model_validate(json.loads(values["config"])),
        created_at=int(values["created_at"]),
        updated_at=int(values["updated_at"]),
        enabled_at=None if enabled_at is None else int(enabled_at),
    )


class DestinationStore:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def destinations(self, plugin_id: str) -> list[Destination]:
        items = query_all(
            self._client,
            self._table,
            "pk = :pk",
            {":pk": destinations_pk(plugin_id)},
            "read destinations",
            ConsistentRead=True,
        )
        values = [from_item(item) for item in items]
        settings = next((v for v in values if v["sk"] == DESTINATION_SETTINGS_SK), {})
        bots = settings.get("bots", "exclude")  # a config published before destinations followed it
        return [
            destination_from_values(v).model_copy(update={"bots": bots})
            for v in values
            if v["sk"] != DESTINATION_SETTINGS_SK
        ]

    def save_destination(self, destination: Destination) -> None:
        values = {
            "pk": destinations_pk(destination.plugin_id),
            "sk": destination.destination_id,
            "plugin_id": destination.plugin_id,
            "config": config_text(destination.config),
            "created_at": destination.created_at,
            "updated_at": destination.updated_at,
            "enabled_at": destination.enabled_at,
        }
        with storage_errors("save destination"):
            self._client.put_item(TableName=self._table, Item=to_item(values))

    def delete_destination(self, plugin_id: str, destination_id: str) -> bool:
        with storage_errors("delete destination"):
            answer = self._client.delete_item(
                TableName=self._table,
                Key=to_item({"pk": destinations_pk(plugin_id), "sk": destination_id}),
                ReturnValues="ALL_OLD",
            )
        return "Attributes" in answer
