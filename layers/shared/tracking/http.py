"""What every HTTP function shares: CORS, the contract's error shape, body and client helpers, and
how a route declares what it takes and answers (:func:`operation`), from which ``make openapi``
assembles ``/openapi.json``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tracking.clock import now_ms
from tracking.rest_resolver import rest_resolver_only

rest_resolver_only()  # before the package's first import: its other resolvers are never loaded

# isort: split
# The resolver and its Response are re-exported: the routes take them from here, after the above.
from aws_lambda_powertools.event_handler import APIGatewayRestResolver as APIGatewayRestResolver
from aws_lambda_powertools.event_handler import CORSConfig, content_types
from aws_lambda_powertools.event_handler import Response as Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from pydantic import BaseModel

from tracking.api_errors import INTERNAL_ERROR_CODE, ApiError, NotFound, PayloadTooLarge, Unavailable
from tracking.json_text import dumps_compact
from tracking.models.request import RequestInfo
from tracking.models.responses import Error, Reply, Success
from tracking.models.storage_failures import ItemTooLarge, StorageUnavailable
from tracking.payloads import body_text

logger = logging.getLogger(__name__)

# Headers the browser SDKs send, which their CORS preflights ask for (a header the preflight does not
# allow blocks the call): analytics.js retries with X-Retry-Count; RudderStack's SDK sends AnonymousId
# and SentAt with every call and its Rsa-* headers on retries; some clients send Content-Encoding.
SDK_HEADERS = (
    "Content-Type",
    "Content-Encoding",
    "Authorization",
    "X-Api-Key",
    "X-Retry-Count",
    "AnonymousId",
    "SentAt",
    "Rsa-Recovered",
    "Rsa-Retry-Attempt",
    "Rsa-Retry-Reason",
    "Rsa-Since-First-Attempt",
    "Rsa-Since-Last-Attempt",
)
# Ingest answers any origin at the CORS layer; each plugin's allowed_origins is enforced per request.
CORS = CORSConfig(
    allow_origin="*",
    allow_headers=list(SDK_HEADERS),
    expose_headers=["Retry-After"],
    max_age=600,
)


def json_response(status: int, body: Reply | Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=dumps_compact(body.body() if isinstance(body, Reply) else body),
        headers=headers or {},
    )


OK_BODY = {"success": True}


def error_response(error: ApiError, *, segment: bool = False) -> Response[str]:
    if error.status >= 500:
        logger.warning("request failed", extra={"code": error.code, "reason": error.message})
    return json_response(error.status, error.segment_body() if segment else error.body(), error.headers())


def segment_errors(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[str]:
    """Route middleware of the Segment-spec routes: their errors carry Segment's top-level fields."""
    try:
        return next_middleware(app)
    except ApiError as error:
        return error_response(error, segment=True)
    except StorageUnavailable as exc:
        return error_response(Unavailable(str(exc)), segment=True)
    except ItemTooLarge as exc:
        return error_response(too_large(exc), segment=True)


def storage_unavailable(error: StorageUnavailable) -> Response[str]:
    """Storage throttled or down: a 503 the client may retry (nothing was half-written)."""
    return error_response(Unavailable(str(error)))


def too_large(error: ItemTooLarge) -> PayloadTooLarge:
    """What one request would store does not fit an item: refused before anything was written."""
    return PayloadTooLarge(str(error))


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
    app.exception_handler(StorageUnavailable)(storage_unavailable)
    app.exception_handler(ItemTooLarge)(lambda error: error_response(too_large(error)))
    app.not_found(not_found)
    app.exception_handler(Exception)(_unexpected)
    return app


def read_body(app: APIGatewayRestResolver, max_bytes: int) -> str:
    """The raw body as text (decoded, inflated), refused with ANALYTICS_002 if over ``max_bytes`` before
    any parsing."""
    event = app.current_event
    return body_text(
        event.body or "",
        base64_encoded=bool(event.is_base64_encoded),
        content_encoding=header(app, "Content-Encoding"),
        max_bytes=max_bytes,
    )


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
        do_not_track=any((header(app, name) or "").strip() == "1" for name in ("DNT", "Sec-GPC")),
    )


def path_param(value: str) -> str:
    """REST API Gateway keeps the path percent-encoded; route arguments are decoded here."""
    return unquote(value) if "%" in value else value


# -- how routes document themselves -----------------------------------------------------------------

ERRORS = {
    400: "Malformed JSON or payload shape (ANALYTICS_001), or too large (ANALYTICS_002)",
    401: "Missing or unknown key (UNAUTHORIZED)",
    403: "Key of another plugin, or origin not allowed (FORBIDDEN)",
    404: "Unknown route or plugin (NOT_FOUND)",
    422: "Validation failed (VALIDATION); details name each field",
    429: "Rate limited per client IP, or a key over its daily quota (RATE_LIMITED); see Retry-After",
    503: "Storage unavailable (UNAVAILABLE); retry, nothing was half-written",
}
# Request bodies the routes declare, by component name (``make openapi`` adds their schemas).
BODY_MODELS: dict[str, type[BaseModel]] = {}
# Non-JSON replies, by what a route names them.
_TEXT_REPLIES = {
    "csv": {"text/csv": {"schema": {"type": "string"}}},
    "html": {"text/html": {"schema": {"type": "string"}}},
    "javascript": {"text/javascript": {"schema": {"type": "string"}}},
    "json": {"application/json": {"schema": {"type": "object"}}},
    "ndjson": {"application/x-ndjson": {"schema": {"type": "string"}}},
}


@dataclass(frozen=True, slots=True)
class QueryParam:
    """A query parameter a route reads itself (Powertools validation is off: it costs cold start)."""

    name: str
    description: str
    schema: dict[str, Any] | None = None
    required: bool = False

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "description": self.description,
            "schema": self.schema or {"type": "string"},
        }


def operation(
    summary: str,
    tag: str,
    *,
    api_key: bool = False,
    status: int = 200,
    reply: type[BaseModel] | str | None = Success,
    body: type[BaseModel] | Sequence[type[BaseModel]] | dict[str, Any] | None = None,
    body_required: bool = True,
    query: Sequence[QueryParam] = (),
    error: type[BaseModel] = Error,
    also: Mapping[int, type[BaseModel]] | None = None,
) -> dict[str, Any]:
    """What a route takes and answers, as the keyword arguments of Powertools' route decorator.

    ``reply`` is a reply model, ``"csv"``, ``"html"`` or ``"json"`` (any object), or None (no body);
    ``body`` a request model, several (any one of them), or a JSON schema; ``also`` other successful
    answers by status (a 202 while a query runs).
    """
    answer: dict[str, Any] = {"description": "Success", "content": {}}  # None: a reply without a body
    if isinstance(reply, str):
        answer["content"] = _TEXT_REPLIES[reply]
    elif reply is not None:
        answer["content"] = {content_types.APPLICATION_JSON: {"model": reply}}
    responses: dict[int, Any] = {status: answer}
    for code, model in (also or {}).items():
        responses[code] = {
            "description": model.__doc__ or "Success",
            "content": {content_types.APPLICATION_JSON: {"model": model}},
        }
    for code, description in ERRORS.items():
        responses[code] = {
            "description": description,
            "content": {content_types.APPLICATION_JSON: {"model": error}},
        }
    extensions: dict[str, Any] = {}
    if body is not None:
        extensions["requestBody"] = {
            "required": body_required,
            "content": {content_types.APPLICATION_JSON: {"schema": _body_schema(body)}},
        }
    if query:
        extensions["x-query-parameters"] = [param.spec() for param in query]
    return {
        "summary": summary,
        "tags": [tag],
        "security": [{"apiKey": []}] if api_key else None,
        "responses": responses,
        "openapi_extensions": extensions or None,
    }


def _body_schema(body: type[BaseModel] | Sequence[type[BaseModel]] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    models = [body] if isinstance(body, type) else list(body)
    for model in models:
        BODY_MODELS[model.__name__] = model
    refs = [{"$ref": f"#/components/schemas/{model.__name__}"} for model in models]
    return refs[0] if len(refs) == 1 else {"oneOf": refs}
