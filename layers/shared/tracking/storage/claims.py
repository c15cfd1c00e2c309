"""Claims: how an id the client chose (a Segment ``messageId``, an order number) stays unique per
plugin while its event sits in its user's partition. Before the event is written, the id is claimed
by a small item under its own key (``keys.client_id_pk``) naming the partition the event goes to;
an older version stored the event itself under that key, which holds the id as well. Pure logic over
three writes (``ClaimTable``): the events table and its fake run the same code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from tracking.keys import CLAIM_KIND, client_id_pk
from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.dynamo import AttributeValue
from tracking.storage.dynamo import Item as StoredItem

# A claim whose event is not stored, older than this, was left by an attempt that died (the ingest
# function's timeout, 28 s, is below it): another call with the same id may take the claim over.
CLAIM_STALE_MS = 60_000
CLAIM_ATTEMPTS = 3


def claim_to_item(item: StoredItem, now_ms: int) -> StoredItem:
    """The claim of a client-named event's id (from the event's item): a small item under the id's
    own key naming the partition the event is written to, expiring with the event."""
    event_id = item["sk"]["S"]
    return {
        "pk": {"S": client_id_pk(item["plugin_id"]["S"], event_id)},
        "sk": {"S": event_id},
        "kind": {"S": CLAIM_KIND},
        "plugin_id": item["plugin_id"],
        "owner": item["pk"],
        "claimed_at": {"N": str(now_ms)},
        "expires_at": item["expires_at"],
    }


class ClaimTable(Protocol):
    """The three writes ``store_named`` needs, on the events table or its fake."""

    def put_if_absent(self, item: StoredItem) -> Mapping[str, AttributeValue] | None:
        """Write the item unless its key is taken; None when written, else the item found there."""
        ...

    def exists(self, pk: str, sk: str) -> bool: ...

    def take_over(self, claim: StoredItem, previous: Mapping[str, AttributeValue]) -> bool:
        """Replace a stale claim, if it is still ``previous``."""
        ...


def store_named(table: ClaimTable, item: StoredItem, now_ms: int) -> bool:
    """Store a client-named event once per plugin: claim its id, then write the event in its user's
    partition. False when the id was stored before, whatever its user.

    A claim naming this event's partition was made by an earlier attempt of the same call (its event
    written, or not if that attempt died): the event is written if absent. A claim naming another
    partition is another call's: a duplicate if its event is stored; if not, that call is still
    writing (503: retry) or died (its claim is stale, and taken over)."""
    claim = claim_to_item(item, now_ms)
    for _ in range(CLAIM_ATTEMPTS):
        found = table.put_if_absent(claim)
        if found is None:
            return table.put_if_absent(item) is None
        if found.get("kind", {}).get("S") != CLAIM_KIND:
            return False  # the event itself, stored under its id by an older version
        owner = found["owner"]["S"]
        if owner == item["pk"]["S"]:
            return table.put_if_absent(item) is None
        if table.exists(owner, item["sk"]["S"]):
            return False
        if now_ms - int(found["claimed_at"]["N"]) < CLAIM_STALE_MS:
            raise StorageUnavailable("Another call with this id is being stored; retry later")
        if table.take_over(claim, found):
            return table.put_if_absent(item) is None
    raise StorageUnavailable("The call's id kept changing hands; retry later")
