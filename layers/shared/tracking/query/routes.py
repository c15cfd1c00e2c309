"""Read and admin routes: health, plugins and their configs and keys, the dashboard read model, the
dashboard page and the OpenAPI document. Each route resolves its caller once (``QueryService``),
reads its request into a typed model (:mod:`tracking.query.requests`) and makes one call."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from tracking.api_errors import ValidationFailed
from tracking.destinations.admin import DestinationsAdmin
from tracking.http import (
    APIGatewayRestResolver,
    QueryParam,
    Response,
    header,
    json_response,
    new_resolver,
    operation,
    path_param,
    read_body,
)
from tracking.models.config import PluginConfig
from tracking.payloads import parse_json, parse_json_object
from tracking.query import people
from tracking.query.admin import PluginAdmin
from tracking.query.destination_routes import destination_routes
from tracking.query.lake import LakeQuestions
from tracking.query.lake_routes import lake_routes
from tracking.query.pages import public_routes
from tracking.query.paging import parse_limit
from tracking.query.replies import (
    Column,
    Columns,
    CreatedKey,
    Deletion,
    KeyEntry,
    Keys,
    PluginEntry,
    Plugins,
    Published,
    RecentEvents,
    RecordedRejectionReply,
    Rejections,
    RevokedKey,
    Rows,
    Series,
    Summary,
    Suppression,
)
from tracking.query.replies import Person as PersonReply
from tracking.query.requests import ExportQuery, PageQuery, RowsQuery, SeriesQuery, SummaryQuery, UserQuery
from tracking.query.service import QueryService

CONFIG_MAX_BYTES = 256 * 1024
KEY_REQUEST_MAX_BYTES = 4 * 1024
KEY_REQUEST = {"type": "object", "properties": {"label": {"type": "string"}}}
AGGREGATION = QueryParam("aggregation.<key>", "Another of the key's listed aggregations")
CURSOR = QueryParam("cursor", "next_cursor of the previous page")
LIMIT = QueryParam("limit", "Users per page", {"type": "integer", "minimum": 1, "maximum": 200})
RECENT_LIMIT = QueryParam("limit", "Events (default 50)", {"type": "integer", "minimum": 1, "maximum": 200})
LANG = QueryParam("lang", "Language of the names (falls back to en)")
SUMMARY_QUERY = (
    QueryParam("chatbot_id", "The chatbot (plugin)", required=True),
    QueryParam("from", "First day (UTC)", {"type": "string", "format": "date"}),
    QueryParam("to", "Last day (UTC)", {"type": "string", "format": "date"}),
)

SERIES_QUERY = (
    QueryParam("keys", "Comma-separated keys (default: the declared ones; at most 20)"),
    QueryParam("from", "First day (UTC; default: 29 days before to)", {"type": "string", "format": "date"}),
    QueryParam("to", "Last day (UTC; default: today)", {"type": "string", "format": "date"}),
)


def create_query_app(
    service: QueryService, admin: PluginAdmin, lake: LakeQuestions, destinations: DestinationsAdmin
) -> APIGatewayRestResolver:
    app = new_resolver()
    _admin_routes(app, service, admin)
    destination_routes(app, service, destinations)
    _dashboard_routes(app, service)
    lake_routes(app, service, lake)
    _people_routes(app, service)
    public_routes(app)
    return app


def iso_time(epoch_ms: int) -> str:
    at = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _api_key(app: APIGatewayRestResolver) -> str | None:
    return header(app, "X-Api-Key")


def _admin_routes(app: APIGatewayRestResolver, service: QueryService, admin: PluginAdmin) -> None:
    @app.get(
        "/v1/plugins",
        **operation(
            "Plugins this key reads, a page at a time",
            "dashboard",
            api_key=True,
            query=(QueryParam("limit", "Plugins per page", LIMIT.schema), CURSOR),
            reply=Plugins,
        ),
    )
    def list_plugins() -> Response[str]:
        caller = service.caller(_api_key(app))
        plugins, cursor = service.plugins(caller, PageQuery.of(app.current_event.query_string_parameters))
        entries = [PluginEntry(plugin_id=p) for p in plugins]
        return json_response(200, Plugins(plugins=entries, next_cursor=cursor))

    @app.put(
        "/v1/plugins/<plugin_id>/config",
        **operation("Publish a plugin's config", "admin", api_key=True, body=PluginConfig, reply=Published),
    )
    def put_config(plugin_id: str) -> Response[str]:
        plugin_id = service.managed(_api_key(app), path_param(plugin_id))
        published = admin.publish(plugin_id, parse_json_object(read_body(app, CONFIG_MAX_BYTES)))
        return json_response(
            200,
            Published(plugin_id=plugin_id, version=published.version, published_at=published.published_at),
        )

    @app.get(
        "/v1/plugins/<plugin_id>/config",
        **operation("The published config", "admin", api_key=True, reply=PluginConfig),
    )
    def get_config(plugin_id: str) -> Response[str]:
        published = admin.config(service.managed(_api_key(app), path_param(plugin_id)))
        return json_response(
            200, published.config.model_dump(mode="json"), {"ETag": f'"{published.version}"'}
        )

    @app.post(
        "/v1/plugins/<plugin_id>/keys",
        **operation(
            "Create a dashboard key for the plugin",
            "admin",
            api_key=True,
            body=KEY_REQUEST,
            body_required=False,
            status=201,
            reply=CreatedKey,
        ),
    )
    def create_key(plugin_id: str) -> Response[str]:
        plugin_id = service.managed(_api_key(app), path_param(plugin_id))
        raw = read_body(app, KEY_REQUEST_MAX_BYTES)
        request = parse_json(raw) if raw.strip() else {}
        label = request.get("label", "") if isinstance(request, dict) else ""
        key, stored = admin.create_key(plugin_id, str(label)[:100])
        # The key is shown once; only its hash is stored.
        return json_response(201, CreatedKey(key=key, key_id=stored.key_id, plugin_id=plugin_id))

    @app.get(
        "/v1/plugins/<plugin_id>/keys",
        **operation(
            "The plugin's dashboard keys (never the keys themselves)", "admin", api_key=True, reply=Keys
        ),
    )
    def list_keys(plugin_id: str) -> Response[str]:
        entries = [
            KeyEntry(
                key_id=key.key_id,
                label=key.label,
                last4=key.last4,
                created_at=iso_time(key.created_at),
                last_used=iso_time(key.last_used) if key.last_used is not None else None,
            )
            for key in admin.keys(service.managed(_api_key(app), path_param(plugin_id)))
        ]
        return json_response(200, Keys(keys=entries))

    @app.delete(
        "/v1/plugins/<plugin_id>/keys/<key_id>",
        **operation(
            "Revoke a dashboard key (401 from its next call on)", "admin", api_key=True, reply=RevokedKey
        ),
    )
    def revoke_key(plugin_id: str, key_id: str) -> Response[str]:
        managed = service.managed(_api_key(app), path_param(plugin_id))
        revoked = admin.revoke_key(managed, path_param(key_id))
        return json_response(200, RevokedKey(key_id=revoked.key_id, revoked=True))


def _dashboard_routes(app: APIGatewayRestResolver, service: QueryService) -> None:
    def params() -> dict[str, str]:
        return app.current_event.query_string_parameters

    @app.get(
        "/v1/plugins/<plugin_id>/columns",
        **operation("Dashboard columns", "dashboard", api_key=True, query=(LANG,), reply=Columns),
    )
    def get_columns(plugin_id: str) -> Response[str]:
        reading = service.reading(_api_key(app), path_param(plugin_id))
        columns, origins = service.columns(reading, params().get("lang"))
        reply = Columns(columns=[Column.model_validate(c) for c in columns], image_origins=origins)
        return json_response(200, reply)

    @app.get(
        "/v1/plugins/<plugin_id>/rows",
        **operation(
            "A page of dashboard rows",
            "dashboard",
            api_key=True,
            query=(LIMIT, CURSOR, AGGREGATION),
            reply=Rows,
        ),
    )
    def get_rows(plugin_id: str) -> Response[str]:
        reading = service.reading(_api_key(app), path_param(plugin_id))
        page = service.rows(reading, RowsQuery.read(params(), reading.published))
        return json_response(200, Rows.model_validate({"rows": page.rows, "next_cursor": page.next_cursor}))

    @app.get(
        "/v1/plugins/<plugin_id>/users/<user_id>",
        **operation(
            "One user's row and profile (any of their ids)",
            "dashboard",
            api_key=True,
            query=(AGGREGATION, QueryParam("cursor", "next_cursor of the previous answer (more keys)")),
            reply=PersonReply,
        ),
    )
    def get_user(plugin_id: str, user_id: str) -> Response[str]:
        reading = service.reading(_api_key(app), path_param(plugin_id))
        view = service.user(reading, path_param(user_id), UserQuery.read(params(), reading.published))
        person = view.person
        reply = PersonReply.model_validate(
            {
                "user_id": view.user_id,
                "values": view.values,
                "merged_into": view.user_id if view.asked != view.user_id else None,
                "traits": people.traits_out(person.traits),
                "anonymous_ids": person.anonymous_ids,
                "groups": {gid: people.traits_out(traits) for gid, traits in sorted(person.groups.items())},
                "first_seen": iso_time(person.first_at) if person.first_at is not None else None,
                "last_seen": iso_time(person.last_at) if person.last_at is not None else None,
                "next_cursor": view.next_cursor,
            }
        )
        return json_response(200, reply)

    @app.get(
        "/v1/plugins/<plugin_id>/export.csv",
        **operation(
            "Every row as CSV (RFC 4180)",
            "dashboard",
            api_key=True,
            query=(
                QueryParam("lang", "Language of the header"),
                QueryParam("cursor", "X-Next-Cursor of a previous part"),
                AGGREGATION,
            ),
            reply="csv",
        ),
    )
    def export_csv(plugin_id: str) -> Response[str]:
        reading = service.reading(_api_key(app), path_param(plugin_id))
        part = service.export(reading, ExportQuery.read(params(), reading.published))
        headers = {"Content-Disposition": f'attachment; filename="{part.plugin_id}.csv"'}
        if part.next_cursor:
            headers["X-Next-Cursor"] = part.next_cursor
        return Response(200, "text/csv; charset=utf-8", part.text, headers)

    @app.get(
        "/v1/plugins/<plugin_id>/rejections",
        **operation(
            "Calls refused for the plugin, newest first",
            "dashboard",
            api_key=True,
            query=(LIMIT, CURSOR),
            reply=Rejections,
        ),
    )
    def get_rejections(plugin_id: str) -> Response[str]:
        readable = service.reader(_api_key(app), path_param(plugin_id))
        page = service.rejections(readable, PageQuery.of(params()))
        entries = [
            RecordedRejectionReply(
                at=iso_time(found.at),
                dialect=found.dialect,
                code=found.rejection.code,
                message=found.rejection.message,
                details=[dict(detail) for detail in found.rejection.details],
                payload=found.rejection.payload,
            )
            for found in page.rejections
        ]
        return json_response(200, Rejections(rejections=entries, next_cursor=page.next_cursor))

    @app.get(
        "/v1/plugins/<plugin_id>/events/recent",
        **operation(
            "The plugin's latest stored events, newest first (the live view)",
            "dashboard",
            api_key=True,
            query=(RECENT_LIMIT,),
            reply=RecentEvents,
        ),
    )
    def get_recent_events(plugin_id: str) -> Response[str]:
        reading = service.reading(_api_key(app), path_param(plugin_id))
        events = service.recent_events(reading, parse_limit(params().get("limit")))
        return json_response(200, RecentEvents(events=events), {"Cache-Control": "no-store"})

    @app.get(
        "/v1/plugins/<plugin_id>/series",
        **operation(
            "Events and distinct users per key per UTC day, zero-filled (at most 400 days)",
            "dashboard",
            api_key=True,
            query=SERIES_QUERY,
            reply=Series,
        ),
    )
    def get_series(plugin_id: str) -> Response[str]:
        readable = service.reader(_api_key(app), path_param(plugin_id))
        return json_response(200, Series.model_validate(service.series(readable, SeriesQuery.of(params()))))

    @app.get(
        "/api/analytics/summary",
        **operation(
            "Chatbot summary: counts, funnel, A/B groups, revenue in EUR",
            "dashboard",
            api_key=True,
            query=SUMMARY_QUERY,
            reply=Summary,
        ),
    )
    def get_summary() -> Response[str]:
        query = SummaryQuery.of(params())
        summary = service.summary(service.reader(_api_key(app), query.chatbot_id), query)
        return json_response(200, Summary.model_validate(summary))


def _people_routes(app: APIGatewayRestResolver, service: QueryService) -> None:
    @app.get(
        "/v1/plugins/<plugin_id>/users/<user_id>/events",
        **operation(
            "Every stored event of the user, their linked ids included, as NDJSON in event-time order",
            "admin",
            api_key=True,
            query=(QueryParam("cursor", "X-Next-Cursor of the previous page"),),
            reply="ndjson",
        ),
    )
    def get_user_events(plugin_id: str, user_id: str) -> Response[str]:
        cursor = app.current_event.query_string_parameters.get("cursor")
        managed = service.managed(_api_key(app), path_param(plugin_id))
        text, following = service.user_events(managed, path_param(user_id), cursor)
        headers = {"X-Next-Cursor": following} if following else {}
        return Response(200, "application/x-ndjson; charset=utf-8", text, headers)

    @app.delete(
        "/v1/plugins/<plugin_id>/users/<user_id>",
        **operation(
            "Forget a user and their linked ids (then suppress them unless suppress=false)",
            "admin",
            api_key=True,
            query=(QueryParam("suppress", "false: do not suppress later calls", {"type": "boolean"}),),
            status=202,
            reply=Deletion,
        ),
    )
    def delete_user(plugin_id: str, user_id: str) -> Response[str]:
        raw = app.current_event.query_string_parameters.get("suppress", "true")
        if raw not in ("true", "false"):
            raise ValidationFailed("Invalid suppress", [{"field": "suppress", "message": "true or false"}])
        managed = service.managed(_api_key(app), path_param(plugin_id))
        step = service.forget(managed, path_param(user_id), raw == "true")
        return json_response(202, Deletion(deletion_id=step.deletion_id, status="pending"))

    @app.get(
        "/v1/plugins/<plugin_id>/deletions/<deletion_id>",
        **operation("A deletion's progress", "admin", api_key=True, reply=Deletion),
    )
    def get_deletion(plugin_id: str, deletion_id: str) -> Response[str]:
        managed = service.managed(_api_key(app), path_param(plugin_id))
        step = service.deletion(managed, path_param(deletion_id))
        status: Literal["pending", "done"] = "done" if step.done else "pending"
        reply = Deletion(deletion_id=step.deletion_id, status=status, removed=step.removed())
        return json_response(200, reply)

    @app.delete(
        "/v1/plugins/<plugin_id>/suppressions/<user_id>",
        **operation("Lift a suppression: its calls count again", "admin", api_key=True, reply=Suppression),
    )
    def lift_suppression(plugin_id: str, user_id: str) -> Response[str]:
        user_id = path_param(user_id)
        service.lift_suppression(service.managed(_api_key(app), path_param(plugin_id)), user_id)
        return json_response(200, Suppression(user_id=user_id, suppressed=False))
