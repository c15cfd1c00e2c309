"""Calls the service refused, as recorded for the plugin they were meant for: what the rejections
route lists and the summary counts per code."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PAYLOAD_MAX_BYTES = 2048
RETENTION_DAYS = 30


def cut_payload(text: str, max_bytes: int = PAYLOAD_MAX_BYTES) -> str:
    """At most ``max_bytes`` of UTF-8, cut on a character boundary (what cannot be UTF-8, a lone
    surrogate, becomes ``?``)."""
    return text.encode("utf-8", errors="replace")[:max_bytes].decode("utf-8", errors="ignore")


# Calls a plugin respecting Do Not Track was sent with DNT or GPC: counted with the rejections' counts
# (nothing of the call kept), reported by the summary as ``opted_out``, never listed as refused.
OPTED_OUT = "OPTED_OUT"
# Stored bot events of a plugin that leaves bots out: counted by the aggregator in their own rollup
# (nothing else of them counts), reported by the summary as ``bots``.
BOTS = "BOTS"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused call: the contract's error, and what the client sent (cut to 2 KB)."""

    code: str
    message: str
    details: tuple[Mapping[str, Any], ...] = ()
    payload: str = ""
    index: int | None = None  # its place in a batch
    message_id: str | None = None

    def mentions(self, ids: Iterable[str]) -> bool:
        """Whether what it keeps of the call names one of ``ids``: as a JSON string in its payload or
        details, or cut short at the payload's end."""
        text = self.payload + json.dumps([dict(detail) for detail in self.details], ensure_ascii=False)
        tail = self.payload[self.payload.rfind('"') :] if '"' in self.payload else ""
        for user_id in ids:
            quoted = json.dumps(user_id, ensure_ascii=False)
            if quoted in text or repr(user_id) in text or (len(tail) > 1 and quoted.startswith(tail)):
                return True
        return False

    def redacted(self) -> Rejection:
        """The same refusal with nothing of the call kept: still counted and listed, naming nobody."""
        return dataclasses.replace(self, payload="", message_id=None)

    def reply(self) -> dict[str, Any]:
        """As a batch reply lists it."""
        entry: dict[str, Any] = {"index": self.index, "messageId": self.message_id, "code": self.code}
        entry["message"] = self.message
        entry["details"] = [dict(detail) for detail in self.details]
        return entry


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    """What one request leaves behind (one write): the rejections it records, and how many calls were
    refused in all per code, including those over the recording cap that it carries along."""

    plugin_id: str
    at: int  # epoch ms
    dialect: str
    rejections: tuple[Rejection, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedRejection:
    """One rejection as the route lists it."""

    at: int
    dialect: str
    rejection: Rejection


@dataclass
class RejectionsPage:
    rejections: list[RecordedRejection]
    next_cursor: str | None
