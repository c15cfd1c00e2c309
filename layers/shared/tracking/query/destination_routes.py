"""A plugin's destinations (admin key): save, list with counters, remove; a destination's failures,
and sending them again (``tracking.destinations.admin``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tracking.destinations.admin import DestinationsAdmin
from tracking.destinations.models import DestinationConfig
from tracking.http import (
    APIGatewayRestResolver,
    QueryParam,
    Response,
    header,
    json_response,
    operation,
    path_param,
    read_body,
)
from tracking.payloads import parse_json_object
from tracking.query.cursors import decode_cursor, encode_cursor
from tracking.query.paging import parse_limit
from tracking.query.replies import (
    DeletedDestination,
    Destinations,
    DestinationShown,
    Failures,
    ReplayShown,
    ReplayStarted,
    RetriedFailures,
)
from tracking.query.service import QueryService

DESTINATION_MAX_BYTES = 16_384
REPLAY_MAX_BYTES = 1024
FAILURES_QUERY = (
    QueryParam("limit", "Failures per page (default 50)", {"type": "integer", "minimum": 1, "maximum": 200}),
    QueryParam("cursor", "next_cursor of the previous page"),
)
ONE = "/v1/plugins/<plugin_id>/destinations/<destination_id>"


class ReplayRange(BaseModel):
    """The body of a replay (checked by ``DestinationsAdmin.replay``): UTC days of event time."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: date = Field(alias="from")
    to: date


def _start(fields: dict[str, Any]) -> tuple[int, str | None] | None:
    suffix, after = fields.get("n"), fields.get("after")
    if isinstance(suffix, int) and 0 <= suffix < 1000 and (after is None or isinstance(after, str)):
        return suffix, after
    return None


def destination_routes(app: APIGatewayRestResolver, service: QueryService, admin: DestinationsAdmin) -> None:
    def managed(plugin_id: str) -> str:
        return service.managed(header(app, "X-Api-Key"), path_param(plugin_id))

    @app.put(
        ONE,
        **operation(
            "Create or replace a destination",
            "admin",
            api_key=True,
            body=DestinationConfig,
            reply=DestinationShown,
        ),
    )
    def put_destination(plugin_id: str, destination_id: str) -> Response[str]:
        plugin = managed(plugin_id)
        payload = parse_json_object(read_body(app, DESTINATION_MAX_BYTES))
        return json_response(
            200, DestinationShown.model_validate(admin.save(plugin, path_param(destination_id), payload))
        )

    @app.get(
        ONE, **operation("One destination, with its counters", "admin", api_key=True, reply=DestinationShown)
    )
    def get_destination(plugin_id: str, destination_id: str) -> Response[str]:
        shown = admin.one(managed(plugin_id), path_param(destination_id))
        return json_response(200, DestinationShown.model_validate(shown))

    @app.get(
        "/v1/plugins/<plugin_id>/destinations",
        **operation(
            "The plugin's destinations, with their counters", "admin", api_key=True, reply=Destinations
        ),
    )
    def list_destinations(plugin_id: str) -> Response[str]:
        shown = [DestinationShown.model_validate(d) for d in admin.listed(managed(plugin_id))]
        return json_response(200, Destinations(destinations=shown))

    @app.delete(ONE, **operation("Remove a destination", "admin", api_key=True, reply=DeletedDestination))
    def delete_destination(plugin_id: str, destination_id: str) -> Response[str]:
        admin.remove(managed(plugin_id), path_param(destination_id))
        return json_response(200, DeletedDestination(destination_id=path_param(destination_id), deleted=True))

    @app.get(
        f"{ONE}/failures",
        **operation(
            "The messages not delivered", "admin", api_key=True, query=FAILURES_QUERY, reply=Failures
        ),
    )
    def list_failures(plugin_id: str, destination_id: str) -> Response[str]:
        plugin = managed(plugin_id)
        params = app.current_event.query_string_parameters or {}
        start = decode_cursor(params.get("cursor"), _start) or (0, None)
        limit = parse_limit(params.get("limit"))
        listed, following = admin.failures(plugin, path_param(destination_id), start, limit)
        cursor = encode_cursor({"n": following[0], "after": following[1]}) if following else None
        return json_response(200, Failures.model_validate({"failures": listed, "next_cursor": cursor}))

    @app.post(
        f"{ONE}/failures/retry",
        **operation("Send every failure again", "admin", api_key=True, status=202, reply=RetriedFailures),
    )
    def retry_failures(plugin_id: str, destination_id: str) -> Response[str]:
        retried = admin.retry_failures(managed(plugin_id), path_param(destination_id))
        return json_response(202, RetriedFailures.model_validate(retried))

    @app.post(
        f"{ONE}/replay",
        **operation(
            "Send again the stored events of a range of days",
            "admin",
            api_key=True,
            body=ReplayRange,
            status=202,
            reply=ReplayStarted,
        ),
    )
    def replay(plugin_id: str, destination_id: str) -> Response[str]:
        plugin = managed(plugin_id)
        payload = parse_json_object(read_body(app, REPLAY_MAX_BYTES))
        started = admin.replay(plugin, path_param(destination_id), payload)
        return json_response(202, ReplayStarted.model_validate(started))

    @app.get(
        f"{ONE}/replays/<replay_id>",
        **operation("How far a replay got", "admin", api_key=True, reply=ReplayShown),
    )
    def replay_status(plugin_id: str, destination_id: str, replay_id: str) -> Response[str]:
        shown = admin.replay_status(managed(plugin_id), path_param(destination_id), path_param(replay_id))
        return json_response(200, ReplayShown.model_validate(shown))
