"""Ingest routes of the contract: widget (and its legacy aliases), plugin, and Segment-spec calls."""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from tracking.api.common import (
    OK_BODY,
    header,
    json_response,
    new_resolver,
    path_param,
    read_body,
    request_info,
)
from tracking.dialects import segment, widget
from tracking.errors import PayloadTooLarge
from tracking.ingest import IngestService
from tracking.jsonutil import parse_json_object
from tracking.models.canonical import CanonicalEvent

WIDGET_MAX_BYTES = 50_000
PLUGIN_MAX_BYTES = 50_000


def create_ingest_app(service: IngestService) -> APIGatewayRestResolver:
    app = new_resolver()

    def accepted(dialect: str, events: list[CanonicalEvent]) -> Response[str]:
        """Every dialect answers the same once its events are stored (or already were)."""
        return json_response(200, OK_BODY)

    @app.post("/api/analytics/track")
    @app.post("/api/events/track")
    @app.post("/api/save")
    def widget_post() -> Response[str]:
        body = read_body(app, WIDGET_MAX_BYTES)
        info = request_info(app)
        service.admit(info.ip)
        return accepted("widget", service.widget(parse_json_object(body), info))

    @app.get("/api/analytics/track")
    @app.get("/api/events/track")
    def widget_get() -> Response[str]:
        params = app.current_event.query_string_parameters
        if sum(len(k) + len(v or "") for k, v in params.items()) > WIDGET_MAX_BYTES:
            raise PayloadTooLarge(f"Payload over {WIDGET_MAX_BYTES} bytes")
        info = request_info(app)
        service.admit(info.ip)
        return accepted("widget", service.widget(widget.payload_from_query(params), info))

    @app.post("/v1/plugins/<plugin_id>/track")
    def plugin_track(plugin_id: str) -> Response[str]:
        body = read_body(app, PLUGIN_MAX_BYTES)
        info = request_info(app)
        service.admit(info.ip)
        return accepted("plugin", service.plugin(path_param(plugin_id), parse_json_object(body), info))

    @app.route("/v1/plugins/<plugin_id>/track", method="OPTIONS")
    def plugin_preflight(plugin_id: str) -> Response[str]:
        service.check_preflight(path_param(plugin_id), header(app, "Origin"))
        return Response(status_code=204, body="", headers={"Access-Control-Allow-Methods": "OPTIONS,POST"})

    def segment_call(call: Literal["track", "identify", "batch"], max_bytes: int) -> Response[str]:
        body = read_body(app, max_bytes)
        info = request_info(app)
        service.admit(info.ip)
        payload = parse_json_object(body)
        return accepted("segment", service.segment(call, payload, header(app, "Authorization"), info))

    @app.post("/v1/track")
    def segment_track() -> Response[str]:
        return segment_call("track", segment.CALL_MAX_BYTES)

    @app.post("/v1/identify")
    def segment_identify() -> Response[str]:
        return segment_call("identify", segment.CALL_MAX_BYTES)

    @app.post("/v1/batch")
    def segment_batch() -> Response[str]:
        return segment_call("batch", segment.BATCH_MAX_BYTES)

    return app
