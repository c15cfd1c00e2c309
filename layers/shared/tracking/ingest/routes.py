"""Ingest routes of the contract: widget (and its legacy aliases), plugin, and Segment-spec calls.
Each route translates HTTP into one call of :class:`~tracking.ingest.service.IngestService`."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from tracking.errors import PayloadTooLarge
from tracking.http import (
    OK_BODY,
    QueryParam,
    header,
    json_response,
    new_resolver,
    operation,
    path_param,
    read_body,
    request_info,
)
from tracking.ingest.dialects import segment, widget
from tracking.ingest.dialects.plugin import PluginBatch, PluginTrack
from tracking.ingest.service import IngestService
from tracking.payloads import parse_json_object

WIDGET_MAX_BYTES = 50_000
PLUGIN_MAX_BYTES = 50_000
LEGACY_QUERY = (
    QueryParam("e", "Event type", required=True),
    QueryParam("u", "User token", required=True),
    QueryParam("d", "URL-encoded JSON data"),
)


def create_ingest_app(service: IngestService) -> APIGatewayRestResolver:
    app = new_resolver()

    def accepted() -> Response[str]:
        """Every dialect answers the same once its events are stored (or already were)."""
        return json_response(200, OK_BODY)

    @app.post("/api/analytics/track", **operation("Track a widget event", "ingest", body=widget.WidgetTrack))
    @app.post(
        "/api/events/track", **operation("Track a widget event (alias)", "ingest", body=widget.WidgetTrack)
    )
    @app.post(
        "/api/save", **operation("Track a widget event (legacy alias)", "ingest", body=widget.WidgetTrack)
    )
    def widget_post() -> Response[str]:
        body = read_body(app, WIDGET_MAX_BYTES)
        info = request_info(app)
        service.admit(info.ip)
        service.widget(parse_json_object(body), info)
        return accepted()

    @app.get(
        "/api/analytics/track", **operation("Track a widget event (legacy GET)", "ingest", query=LEGACY_QUERY)
    )
    @app.get(
        "/api/events/track",
        **operation("Track a widget event (legacy GET alias)", "ingest", query=LEGACY_QUERY),
    )
    def widget_get() -> Response[str]:
        params = app.current_event.query_string_parameters
        if sum(len(k) + len(v or "") for k, v in params.items()) > WIDGET_MAX_BYTES:
            raise PayloadTooLarge(f"Payload over {WIDGET_MAX_BYTES} bytes")
        info = request_info(app)
        service.admit(info.ip)
        service.widget(widget.payload_from_query(params), info)
        return accepted()

    @app.post(
        "/v1/plugins/<plugin_id>/track",
        **operation("Track plugin events", "ingest", body=(PluginTrack, PluginBatch)),
    )
    def plugin_track(plugin_id: str) -> Response[str]:
        body = read_body(app, PLUGIN_MAX_BYTES)
        info = request_info(app)
        service.admit(info.ip)
        service.plugin(path_param(plugin_id), parse_json_object(body), info)
        return accepted()

    @app.route(
        "/v1/plugins/<plugin_id>/track",
        method="OPTIONS",
        **operation("CORS preflight (answered for allowed origins)", "ingest", status=204, reply=None),
    )
    def plugin_preflight(plugin_id: str) -> Response[str]:
        service.check_preflight(path_param(plugin_id), header(app, "Origin"))
        return Response(status_code=204, body="", headers={"Access-Control-Allow-Methods": "OPTIONS,POST"})

    def segment_call(route: segment.Route, max_bytes: int) -> Response[str]:
        body = read_body(app, max_bytes)
        info = request_info(app)
        service.admit(info.ip)
        service.segment(route, parse_json_object(body), header(app, "Authorization"), info)
        return accepted()

    @app.post("/v1/track", **operation("Segment-spec track", "ingest", body=segment.SegmentCall))
    def segment_track() -> Response[str]:
        return segment_call("track", segment.CALL_MAX_BYTES)

    @app.post("/v1/identify", **operation("Segment-spec identify", "ingest", body=segment.SegmentCall))
    def segment_identify() -> Response[str]:
        return segment_call("identify", segment.CALL_MAX_BYTES)

    @app.post("/v1/batch", **operation("Segment-spec batch", "ingest", body=segment.SegmentBatch))
    def segment_batch() -> Response[str]:
        return segment_call("batch", segment.BATCH_MAX_BYTES)

    return app
