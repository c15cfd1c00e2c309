"""Read and admin routes: health, plugins and their configs and keys, the dashboard read model,
the dashboard page and the OpenAPI document."""

from __future__ import annotations

from importlib import resources
from typing import Protocol

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from tracking import dashboard
from tracking.access import Access, key_hash, new_dashboard_key
from tracking.api.common import header, json_response, new_resolver, now_ms, path_param, read_body
from tracking.errors import NotFound
from tracking.jsonutil import parse_json, parse_json_object
from tracking.models.canonical import is_identifier
from tracking.models.config import PublishedConfig
from tracking.plugins import ConfigStore, publish
from tracking.storage.aggregates import AggregateStore
from tracking.storage.control import DashboardKey
from tracking.storage.gateway import GatewayKeys

CONFIG_MAX_BYTES = 256 * 1024
KEY_REQUEST_MAX_BYTES = 4 * 1024


class ControlReads(ConfigStore, Protocol):
    def list_plugins(self) -> list[str]: ...
    def save_dashboard_key(self, key: DashboardKey) -> None: ...
    def dashboard_key(self, key_hash: str) -> DashboardKey | None: ...


def static_text(name: str) -> str:
    return resources.files("tracking.api").joinpath(name).read_text(encoding="utf-8")


def create_query_app(
    control: ControlReads, aggregates: AggregateStore, access: Access, gateway: GatewayKeys | None = None
) -> APIGatewayRestResolver:
    app = new_resolver()
    _admin_routes(app, control, access, gateway)
    _dashboard_routes(app, control, aggregates, access)
    _public_routes(app)
    return app


def _api_key(app: APIGatewayRestResolver) -> str | None:
    return header(app, "X-Api-Key")


def _plugin(raw: str) -> str:
    plugin_id = path_param(raw)
    if not is_identifier(plugin_id):
        raise NotFound("Unknown plugin")
    return plugin_id


def _admin_routes(
    app: APIGatewayRestResolver, control: ControlReads, access: Access, gateway: GatewayKeys | None
) -> None:
    @app.get("/v1/plugins")
    def list_plugins() -> Response[str]:
        caller = access.caller(_api_key(app))
        plugins = control.list_plugins() if caller.admin else [caller.plugin_id]
        return json_response(200, {"plugins": [{"plugin_id": p} for p in plugins if p]})

    @app.put("/v1/plugins/<plugin_id>/config")
    def put_config(plugin_id: str) -> Response[str]:
        access.admin(_api_key(app))
        plugin_id = _plugin(plugin_id)
        payload = parse_json_object(read_body(app, CONFIG_MAX_BYTES))
        published = publish(control, plugin_id, payload, now_ms())
        return json_response(
            200,
            {
                "success": True,
                "plugin_id": plugin_id,
                "version": published.version,
                "published_at": published.published_at,
            },
        )

    @app.get("/v1/plugins/<plugin_id>/config")
    def get_config(plugin_id: str) -> Response[str]:
        access.admin(_api_key(app))
        published = control.get_config(_plugin(plugin_id))
        if published is None:
            raise NotFound("This plugin has no published config")
        return json_response(
            200, published.config.model_dump(mode="json"), {"ETag": f'"{published.version}"'}
        )

    @app.post("/v1/plugins/<plugin_id>/keys")
    def create_key(plugin_id: str) -> Response[str]:
        access.admin(_api_key(app))
        plugin_id = _plugin(plugin_id)
        raw = read_body(app, KEY_REQUEST_MAX_BYTES)
        request = parse_json(raw) if raw.strip() else {}
        label = request.get("label", "") if isinstance(request, dict) else ""
        key, label = new_dashboard_key(), str(label)[:100]
        gateway_key_id = gateway.register(key, plugin_id, label) if gateway else None
        try:
            control.save_dashboard_key(
                DashboardKey(plugin_id, key_hash(key), now_ms(), label, gateway_key_id)
            )
        except Exception:
            if gateway and gateway_key_id:
                gateway.unregister(gateway_key_id)  # nothing half-made: no key the app would not know
            raise
        # The key is shown once; only its hash is stored.
        return json_response(201, {"key": key, "plugin_id": plugin_id})


def _dashboard_routes(
    app: APIGatewayRestResolver, control: ControlReads, aggregates: AggregateStore, access: Access
) -> None:
    def params() -> dict[str, str]:
        return app.current_event.query_string_parameters

    def readable(raw_plugin: str) -> PublishedConfig:
        """The plugin's config, for a caller allowed to read it (404 if it has none)."""
        plugin_id = _plugin(raw_plugin)
        access.reader(_api_key(app), plugin_id)
        published = control.get_config(plugin_id)
        if published is None:
            raise NotFound(f"Plugin {plugin_id!r} has no published config")
        return published

    @app.get("/v1/plugins/<plugin_id>/columns")
    def get_columns(plugin_id: str) -> Response[str]:
        published = readable(plugin_id)
        return json_response(200, {"columns": dashboard.columns(published, params().get("lang"))})

    @app.get("/v1/plugins/<plugin_id>/rows")
    def get_rows(plugin_id: str) -> Response[str]:
        published = readable(plugin_id)
        query = params()
        chosen = dashboard.chosen_aggregations(published, query)
        limit = dashboard.parse_limit(query.get("limit"))
        page = dashboard.rows(aggregates, published, query.get("cursor"), limit, chosen)
        return json_response(200, {"rows": page.rows, "next_cursor": page.next_cursor})

    @app.get("/v1/plugins/<plugin_id>/users/<user_id>")
    def get_user(plugin_id: str, user_id: str) -> Response[str]:
        published = readable(plugin_id)
        user_id = path_param(user_id)
        chosen = dashboard.chosen_aggregations(published, params())
        states = aggregates.user_aggregates(published.plugin_id, user_id) if is_identifier(user_id) else []
        values = dashboard.row_values(states, published, chosen, declared_only=False)
        if not values:
            raise NotFound(f"No tracked events for user {user_id!r}")
        return json_response(200, {"user_id": user_id, "values": values})

    @app.get("/v1/plugins/<plugin_id>/export.csv")
    def export_csv(plugin_id: str) -> Response[str]:
        published = readable(plugin_id)
        query = params()
        chosen = dashboard.chosen_aggregations(published, query)
        text, cursor = dashboard.export_csv(
            aggregates, published, lang=query.get("lang"), chosen=chosen, cursor=query.get("cursor")
        )
        headers = {"Content-Disposition": f'attachment; filename="{published.plugin_id}.csv"'}
        if cursor:
            headers["X-Next-Cursor"] = cursor
        return Response(200, "text/csv; charset=utf-8", text, headers)

    @app.get("/api/analytics/summary")
    def get_summary() -> Response[str]:
        query = params()
        plugin_id = _plugin(query.get("chatbot_id", ""))
        access.reader(_api_key(app), plugin_id)
        result = dashboard.summary(
            aggregates,
            plugin_id,
            control.get_config(plugin_id),
            first=query.get("from"),
            last=query.get("to"),
        )
        if result is None:
            raise NotFound(f"Nothing tracked for chatbot {plugin_id!r}")
        return json_response(200, result)


def _public_routes(app: APIGatewayRestResolver) -> None:
    @app.get("/health")
    def health() -> Response[str]:
        return json_response(200, {"status": "ok"})

    @app.get("/dashboard")
    def dashboard_page() -> Response[str]:
        return Response(
            200, "text/html; charset=utf-8", static_text("dashboard.html"), {"Cache-Control": "no-cache"}
        )

    @app.get("/openapi.json")
    def openapi() -> Response[str]:
        return Response(200, "application/json", static_text("openapi.json"))
