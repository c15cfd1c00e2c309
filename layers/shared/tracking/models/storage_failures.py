"""What can go wrong below the HTTP layer, in the domain's words: storage raises these, and the
domain (or the HTTP layer, for :class:`StorageUnavailable`) turns them into contract errors."""

from __future__ import annotations

from collections.abc import Sequence


class StorageUnavailable(Exception):
    """Storage throttled, down or unreachable after retries; nothing was half-written."""


class LakeQueryFailed(StorageUnavailable):
    """The lake's engine could not answer (a query over the workgroup's scan limit, the lake
    unreadable): asking again the same way fails again."""


class Conflict(Exception):
    """Someone else wrote the item since it was read."""


class ConfigChanged(Exception):
    """Another publish of the same plugin's config landed in between."""


class WriteKeyTaken(Exception):
    """Write keys a publish asked for that already belong to another plugin."""

    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__(f"write keys already in use: {', '.join(keys)}")
        self.keys = tuple(keys)


class ItemTooLarge(Exception):
    """An item would exceed DynamoDB's 400 KB: refused before anything of the request is written."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} would take {size:,} bytes, over DynamoDB's limit of {limit:,} per item")
        self.what = what
        self.size = size
        self.limit = limit
