"""A user's events as deletion and the right of access find them, and the index items an older
version wrote of the events it stored under their own ids."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from tracking.keys import INDEX_KIND, client_id_pk, event_pk, index_sk
from tracking.models.canonical import CanonicalEvent
from tracking.models.people import PartitionPage
from tracking.models.request import is_client_named
from tracking.storage.dynamo import (
    AttributeValue,
    batch_delete,
    batch_get,
    from_item,
    query,
    storage_errors,
    to_item,
)
from tracking.storage.events import event_from_item, event_from_values, is_event, stored_keys


def index_to_item(
    plugin_id: str, user_id: str, name: str, entries: Sequence[tuple[str, int]], retention_s: int
) -> dict[str, AttributeValue]:
    """An index item: the ids of a user's client-named events, in the user's partition."""
    return to_item(
        {
            "pk": event_pk(plugin_id, user_id),
            "sk": index_sk(name),
            "kind": INDEX_KIND,
            "plugin_id": plugin_id,
            "user_id": user_id,
            "entries": [[event_id, at] for event_id, at in entries],
            "expires_at": int(time.time()) + retention_s,
        }
    )


class UserEvents:
    """A user's events as deletion and the right of access find them: the user's partition holds the
    events this service named and index items listing the events the client named (kept under their
    own ids, beside them); the lists not yet moved to an index sit on the aggregates and profile."""

    def __init__(self, client: Any, events_table: str, retention_days: int) -> None:
        self._client = client
        self._table = events_table
        self._retention_s = retention_days * 86_400

    def put_index(self, plugin_id: str, user_id: str, name: str, entries: Sequence[tuple[str, int]]) -> None:
        """Rewriting the same index item (a retried batch) changes nothing."""
        item = index_to_item(plugin_id, user_id, name, entries, self._retention_s)
        with storage_errors("write index"):
            self._client.put_item(TableName=self._table, Item=item)

    def partition(self, plugin_id: str, user_id: str, start: str | None, limit: int) -> PartitionPage:
        """Up to ``limit`` items of the user's partition after sort key ``start``."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": event_pk(plugin_id, user_id)}
        if start is not None:
            condition += " AND sk > :start"
            values[":start"] = start
        answer = query(self._client, self._table, condition, values, "read events", Limit=limit)
        items = [from_item(item) for item in answer.get("Items", [])]
        events = [event_from_values(item) for item in items if is_event(item)]
        named = [
            (str(event_id), int(at))
            for item in items
            if item.get("kind") == INDEX_KIND
            for event_id, at in item.get("entries", [])
        ]
        following = items[-1]["sk"] if "LastEvaluatedKey" in answer and items else None
        return PartitionPage(events, named, [item["sk"] for item in items], following)

    def named(self, plugin_id: str, event_ids: Sequence[str]) -> list[CanonicalEvent]:
        """The client-named events with these ids (those that are gone are left out)."""
        keys = [
            {"pk": {"S": client_id_pk(plugin_id, event_id)}, "sk": {"S": event_id}}
            for event_id in dict.fromkeys(event_ids)
        ]
        return [event_from_item(item) for item in batch_get(self._client, self._table, keys, "read events")]

    def stored(self, plugin_id: str, keys: Sequence[tuple[str, str]]) -> list[CanonicalEvent]:
        """The stored events of these (user, event id) keys, in their users' partitions, those that
        are gone left out (a client-named event an older version kept under its id is read there)."""
        wanted = list(dict.fromkeys(keys))
        items = batch_get(
            self._client,
            self._table,
            [{"pk": {"S": event_pk(plugin_id, user)}, "sk": {"S": event_id}} for user, event_id in wanted],
            "read events",
        )
        found = [event_from_values(values) for values in map(from_item, items) if is_event(values)]
        have = {event.event_id for event in found}
        older = [event_id for _, event_id in wanted if event_id not in have and is_client_named(event_id)]
        return found + (self.named(plugin_id, older) if older else [])

    def forget(self, events: Sequence[CanonicalEvent]) -> None:
        """Delete these stored events and their ids' claims, wherever a version put them (deleting what
        is gone is a no-op)."""
        keys = {key for event in events for key in stored_keys(event)}
        batch_delete(
            self._client, self._table, [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in sorted(keys)]
        )

    def delete_named(self, plugin_id: str, event_ids: Sequence[str]) -> None:
        keys = [
            {"pk": {"S": client_id_pk(plugin_id, event_id)}, "sk": {"S": event_id}}
            for event_id in dict.fromkeys(event_ids)
        ]
        batch_delete(self._client, self._table, keys)

    def delete_in_partition(self, plugin_id: str, user_id: str, sort_keys: Sequence[str]) -> None:
        pk = event_pk(plugin_id, user_id)
        batch_delete(self._client, self._table, [{"pk": {"S": pk}, "sk": {"S": sk}} for sk in sort_keys])
