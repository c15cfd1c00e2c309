"""The replies every route may give, success and the contract's error, and the base of every JSON
reply model (the query function's are in :mod:`tracking.query.replies`). Models build on first use
(``defer_build``): a cold start pays only for the ones its first request answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tracking.api_errors import CLIENT_ERROR_CODES, INTERNAL_ERROR_CODE

_REPLY = ConfigDict(defer_build=True, populate_by_name=True)


def _absent(value: Any) -> bool:
    return value is None


def absent_if_none(description: str | None = None) -> Any:
    """A field left out of the reply when it has no value (``null`` is never sent for it)."""
    return Field(None, description=description, exclude_if=_absent)


class Reply(BaseModel):
    """A reply as the routes send it, in declaration order."""

    model_config = _REPLY

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class Success(Reply):
    success: Literal[True] = True


class ErrorDetail(Reply):
    field: str
    message: str


class RejectedCall(Reply):
    """One call of a batch that was not stored, and why."""

    index: int | None
    messageId: str | None
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorInfo(Reply):
    code: str = Field(json_schema_extra={"enum": [*CLIENT_ERROR_CODES, INTERNAL_ERROR_CODE]})
    message: str
    # The fields at fault; for a batch none of whose calls is valid, each call and why.
    details: list[ErrorDetail | RejectedCall] | None = absent_if_none()


class Error(Reply):
    """Every failure: ``{"success": false, "error": {"code", "message", "details"?}}``."""

    success: Literal[False] = False
    error: ErrorInfo


class SegmentError(Reply):
    """A failure on a Segment-spec route: Segment's top-level ``code`` and ``message`` as well (the
    libraries read them)."""

    success: Literal[False] = False
    code: str
    message: str
    error: ErrorInfo


class BatchAccepted(Success):
    """A batch judged call by call: how many calls were stored (now or before), which were not."""

    accepted: int
    rejected: list[RejectedCall]
