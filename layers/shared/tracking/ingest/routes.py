"""Ingest routes of the contract: widget (and its legacy aliases), plugin, and every Segment-spec call
(analytics.js's short paths included). Each route translates HTTP into one call of
:class:`~tracking.ingest.service.IngestService`."""

from __future__ import annotations

from tracking.api_errors import PayloadTooLarge
from tracking.http import (
    OK_BODY,
    APIGatewayRestResolver,
    QueryParam,
    Response,
    header,
    json_response,
    new_resolver,
    operation,
    path_param,
    read_body,
    request_info,
    segment_errors,
)
from tracking.ingest.dialects import segment, widget
from tracking.ingest.dialects.plugin import PluginBatch, PluginTrack
from tracking.ingest.service import IngestService
from tracking.models.responses import BatchAccepted, RejectedCall, SegmentError, Success
from tracking.payloads import parse_json_object

WIDGET_MAX_BYTES = 50_000
PLUGIN_MAX_BYTES = 50_000
METRICS_MAX_BYTES = 32 * 1024
LEGACY_QUERY = (
    QueryParam("e", "Event type", required=True),
    QueryParam("u", "User token", required=True),
    QueryParam("d", "URL-encoded JSON data"),
)
# Each Segment-spec call type: its route, analytics.js's short path, and what it is called.
SEGMENT_CALLS: tuple[tuple[segment.Route, str, str], ...] = (
    ("track", "t", "Segment-spec track"),
    ("identify", "i", "Segment-spec identify"),
    ("page", "p", "Segment-spec page"),
    ("screen", "s", "Segment-spec screen"),
    ("group", "g", "Segment-spec group"),
    ("alias", "a", "Segment-spec alias"),
)
SEGMENT_BATCHES = (
    ("/v1/batch", "Segment-spec batch, judged call by call"),
    ("/v1/import", "Segment-spec batch of historical calls (as /v1/batch)"),
    ("/v1/b", "Segment-spec batch (analytics.js)"),
    ("/beacon/v1/batch", "Segment-spec batch sent by navigator.sendBeacon (RudderStack's useBeacon)"),
)
BEACON_QUERY = (QueryParam("writeKey", "The source's write key (a beacon sends no Authorization)"),)


def create_ingest_app(service: IngestService) -> APIGatewayRestResolver:
    app = new_resolver()

    def accepted() -> Response[str]:
        """Every single call answers the same once its events are stored (or already were)."""
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
        service.widget(parse_json_object(body, judge_numbers=False), info)
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
        service.plugin(path_param(plugin_id), parse_json_object(body, judge_numbers=False), info)
        return accepted()

    @app.route(
        "/v1/plugins/<plugin_id>/track",
        method="OPTIONS",
        **operation("CORS preflight (answered for allowed origins)", "ingest", status=204, reply=None),
    )
    def plugin_preflight(plugin_id: str) -> Response[str]:
        service.check_preflight(path_param(plugin_id), header(app, "Origin"))
        return Response(status_code=204, body="", headers={"Access-Control-Allow-Methods": "OPTIONS,POST"})

    def segment_call(route: segment.Route) -> Response[str]:
        body = read_body(app, segment.BATCH_MAX_BYTES if route == "batch" else segment.CALL_MAX_BYTES)
        info = request_info(app)
        service.admit_source(info.ip, header(app, "Authorization"))
        payload = parse_json_object(body, judge_numbers=False)
        in_query = app.current_event.query_string_parameters.get("writeKey")
        outcome = service.segment(route, payload, header(app, "Authorization"), info, in_query)
        if route != "batch":
            return accepted()
        rejected = [RejectedCall.model_validate(rejection.reply()) for rejection in outcome.rejected]
        return json_response(200, BatchAccepted(accepted=outcome.accepted, rejected=rejected))

    def segment_route(path: str, summary: str, route: segment.Route) -> None:
        batch = route == "batch"
        docs = operation(
            summary,
            "ingest",
            body=segment.SegmentBatch if batch else segment.SegmentCall,
            reply=BatchAccepted if batch else Success,
            error=SegmentError,
            query=BEACON_QUERY if path.startswith("/beacon/") else (),
        )

        def handle() -> Response[str]:
            return segment_call(route)

        handle.__name__ = "segment_" + path.strip("/").replace("/", "_")
        app.post(path, middlewares=[segment_errors], **docs)(handle)

    for route, short, summary in SEGMENT_CALLS:
        segment_route(f"/v1/{route}", summary, route)
        segment_route(f"/v1/{short}", f"{summary} (analytics.js)", route)
    for path, summary in SEGMENT_BATCHES:
        segment_route(path, summary, "batch")

    @app.post(
        "/v1/m",
        middlewares=[segment_errors],
        **operation("analytics.js client metrics (answered, not stored)", "ingest", error=SegmentError),
    )
    def segment_metrics() -> Response[str]:
        read_body(app, METRICS_MAX_BYTES)
        service.admit(request_info(app).ip)
        return accepted()

    return app
