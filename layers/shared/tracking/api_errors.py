"""The contract's error vocabulary: every failure a client can cause maps to one of these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error answered to the client as ``{"success": false, "error": {...}}``."""

    status = 400
    code = "ANALYTICS_001"

    def __init__(self, message: str, details: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details or [])

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"success": False, "error": error}

    def segment_body(self) -> dict[str, Any]:
        """The same, with Segment's top-level ``code`` and ``message`` (its libraries read those)."""
        body = self.body()
        return {"success": False, "code": self.code, "message": self.message, "error": body["error"]}

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(ApiError):
    """Malformed JSON or a payload of the wrong shape."""


class PayloadTooLarge(ApiError):
    code = "ANALYTICS_002"


class Unauthorized(ApiError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(ApiError):
    status = 403
    code = "FORBIDDEN"


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class ValidationFailed(ApiError):
    status = 422
    code = "VALIDATION"


class RateLimited(ApiError):
    status = 429
    code = "RATE_LIMITED"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message or f"Too many requests; retry in {retry_after} s")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unavailable(ApiError):
    """Storage throttled or down after retries: nothing was half-written, the client may retry."""

    status = 503
    code = "UNAVAILABLE"


# Every code a client can be answered with; ``INTERNAL`` (500) is only ever a defect of ours.
# A tuple, in declaration order, so the OpenAPI document built from it is stable.
CLIENT_ERROR_CODES = tuple(
    error.code
    for error in (
        BadRequest,
        PayloadTooLarge,
        Unauthorized,
        Forbidden,
        NotFound,
        ValidationFailed,
        RateLimited,
        Unavailable,
    )
)
INTERNAL_ERROR_CODE = "INTERNAL"


def field_path(loc: Iterable[int | str], prefix: str = "") -> str:
    """Render a pydantic location as ``data.items[3].currency``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "body"


def validation_details(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[dict[str, str]]:
    """Turn ``ValidationError.errors()`` into the contract's ``details`` list."""
    details = []
    for err in errors:
        # Union members and function validators add their own names to the location; the client's field
        # path is only made of the keys and indexes of what it sent.
        loc = [p for p in err.get("loc", ()) if isinstance(p, int) or not _is_schema_tag(p)]
        message = str(err.get("msg", "invalid"))
        details.append({"field": field_path(loc, prefix), "message": message.removeprefix("Value error, ")})
    return details


def _is_schema_tag(part: str) -> bool:
    return part.startswith("function-") or part in {"str", "int", "float", "bool", "decimal"}


def validate(model: type[M], payload: Any, prefix: str = "") -> M:
    """Validate ``payload`` into ``model``; a failure is a 422 naming every bad field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        details = validation_details(exc.errors(include_url=False, include_input=False), prefix)
        raise ValidationFailed("The payload failed validation", details) from None
