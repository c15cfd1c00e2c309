"""What every HTTP function shares: CORS, the contract's error shape, body and client helpers."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from tracking.dialects import RequestInfo
from tracking.errors import (
    INTERNAL_ERROR_CODE,
    ApiError,
    BadRequest,
    NotFound,
    PayloadTooLarge,
)
from tracking.jsonutil import dumps_compact

logger = logging.getLogger(__name__)

# Ingest answers any origin at the CORS layer; each plugin's allowed_origins is enforced per request.
CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["Content-Type", "Authorization", "X-Api-Key"],
    expose_headers=["Retry-After"],
    max_age=600,
)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=dumps_compact(body),
        headers=headers or {},
    )


OK_BODY = {"success": True}


def error_response(error: ApiError) -> Response[str]:
    if error.status >= 500:
        logger.warning("request failed", extra={"code": error.code, "reason": error.message})
    return json_response(error.status, error.body(), error.headers())


def _unexpected(error: Exception) -> Response[str]:
    logger.exception("unhandled error", exc_info=error)
    return json_response(
        500, {"success": False, "error": {"code": INTERNAL_ERROR_CODE, "message": "Internal error"}}
    )


def new_resolver() -> APIGatewayRestResolver:
    """A REST resolver answering every failure in the contract's error shape."""
    app = APIGatewayRestResolver(cors=CORS, serializer=dumps_compact)

    def not_found(_: NotFoundError) -> Response[str]:
        event = app.current_event
        return error_response(NotFound(f"No route {event.http_method} {event.path}"))

    app.exception_handler(ApiError)(error_response)
    app.not_found(not_found)
    app.exception_handler(Exception)(_unexpected)
    return app


def now_ms() -> int:
    return int(time.time() * 1000)


def read_body(app: APIGatewayRestResolver, max_bytes: int) -> str:
    """The raw body as text, refused with ANALYTICS_002 if over ``max_bytes`` before any parsing."""
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        if len(body) > (max_bytes + 2) // 3 * 4 + 4:
            raise PayloadTooLarge(f"Payload over {max_bytes} bytes")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("Invalid body encoding") from None
        if len(raw) > max_bytes:
            raise PayloadTooLarge(f"Payload over {max_bytes} bytes")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("Invalid event payload: body is not UTF-8") from None
    # A character is 1-4 bytes: most bodies are decided without encoding them.
    if len(body) > max_bytes or (len(body) * 4 > max_bytes and _utf8_length(body) > max_bytes):
        raise PayloadTooLarge(f"Payload over {max_bytes} bytes")
    return body


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def header(app: APIGatewayRestResolver, name: str) -> str | None:
    value = app.current_event.headers.get(name)  # case-insensitive
    return value if isinstance(value, str) else None


def request_info(app: APIGatewayRestResolver) -> RequestInfo:
    return RequestInfo(
        received_at=now_ms(),
        ip=app.current_event.request_context.identity.source_ip,
        origin=header(app, "Origin"),
        user_agent=header(app, "User-Agent"),
        referer=header(app, "Referer"),
    )


def path_param(value: str) -> str:
    """REST API Gateway keeps the path percent-encoded; route arguments are decoded here."""
    return unquote(value) if "%" in value else value
