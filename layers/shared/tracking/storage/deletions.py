"""Deletion steps, in the events table under the plugin's own partition: each new step's stream record
hands it to the forget function (the stream filter sends ``kind = deletion`` there and nowhere else).
A finished deletion keeps its last step, which holds counts and no ids, for 30 days after it was
written (counted from the write, not from the request: a step written late must not be born expired)."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from tracking.keys import DELETION_KIND, deletion_prefix, deletion_sk, deletions_pk
from tracking.models.people import DeletionStep
from tracking.storage.dynamo import batch_delete, error_code, from_item, query, storage_errors, to_item

KEEP_DAYS = 30


def step_to_item(step: DeletionStep, written_s: int) -> dict[str, Any]:
    return to_item(
        {
            "pk": deletions_pk(step.plugin_id),
            "sk": deletion_sk(step.deletion_id, step.step),
            "kind": DELETION_KIND,
            "plugin_id": step.plugin_id,
            "deletion_id": step.deletion_id,
            "step": step.step,
            "user_id": step.user_id,
            "ids": list(step.ids),
            "requested_at": step.requested_at,
            "position": step.position,
            "phase": step.phase,
            "cursor": step.cursor,
            "removed_events": step.removed_events,
            "removed_aggregates": step.removed_aggregates,
            "removed_profiles": step.removed_profiles,
            "removed_rejections": step.removed_rejections,
            "removed_lake_rows": step.removed_lake_rows,
            "suppress": step.suppress,
            "sweep_after": step.sweep_after,
            "swept": step.swept,
            "merged_into": step.merged_into,
            "expires_at": written_s + KEEP_DAYS * 86_400,
        }
    )


def step_from_values(values: dict[str, Any]) -> DeletionStep:
    return DeletionStep(
        plugin_id=values["plugin_id"],
        deletion_id=values["deletion_id"],
        step=int(values["step"]),
        user_id=values.get("user_id", ""),
        ids=tuple(values.get("ids", ())),
        requested_at=int(values["requested_at"]),
        position=int(values.get("position", 0)),
        phase=values.get("phase", "events"),
        cursor=values.get("cursor"),
        removed_events=int(values.get("removed_events", 0)),
        removed_aggregates=int(values.get("removed_aggregates", 0)),
        removed_profiles=int(values.get("removed_profiles", 0)),
        removed_rejections=int(values.get("removed_rejections", 0)),
        removed_lake_rows=int(values.get("removed_lake_rows", 0)),
        suppress=bool(values.get("suppress", True)),
        sweep_after=int(values.get("sweep_after", 0)),
        swept=bool(values.get("swept", False)),
        merged_into=values.get("merged_into"),
    )


class DeletionStore:
    def __init__(self, client: Any, events_table: str) -> None:
        self._client = client
        self._table = events_table

    def write_step(self, step: DeletionStep) -> None:
        """Write a step once: a step retried after its successor was written leaves that alone."""
        try:
            with storage_errors("write deletion step"):
                self._client.put_item(
                    TableName=self._table,
                    Item=step_to_item(step, int(time.time())),
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def latest(self, plugin_id: str, deletion_id: str) -> DeletionStep | None:
        answer = query(
            self._client,
            self._table,
            "pk = :pk AND begins_with(sk, :deletion)",
            {":pk": deletions_pk(plugin_id), ":deletion": deletion_prefix(deletion_id)},
            "read deletion",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = answer.get("Items", [])
        return step_from_values(from_item(items[0])) if items else None

    def remove_steps(self, plugin_id: str, deletion_id: str, before: int) -> None:
        """Remove the steps before ``before`` (they held the forgotten ids)."""
        answer = query(
            self._client,
            self._table,
            "pk = :pk AND sk BETWEEN :first AND :last",
            {
                ":pk": deletions_pk(plugin_id),
                ":first": deletion_prefix(deletion_id),
                ":last": deletion_sk(deletion_id, before - 1),
            },
            "read deletion",
        )
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in answer.get("Items", [])]
        batch_delete(self._client, self._table, keys)
