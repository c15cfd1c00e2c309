"""Read and admin routes: health, plugin configs (and, as they land, the dashboard routes)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from tracking.api.common import json_response, new_resolver, now_ms, path_param, read_body, require_admin
from tracking.errors import NotFound
from tracking.jsonutil import parse_json_object
from tracking.models.canonical import is_identifier
from tracking.plugins import ConfigStore, publish

CONFIG_MAX_BYTES = 256 * 1024


def create_query_app(configs: ConfigStore, admin_key: str | None) -> APIGatewayRestResolver:
    app = new_resolver()

    @app.get("/health")
    def health() -> Response[str]:
        return json_response(200, {"status": "ok"})

    @app.put("/v1/plugins/<plugin_id>/config")
    def put_config(plugin_id: str) -> Response[str]:
        require_admin(app, admin_key)
        plugin_id = _plugin(plugin_id)
        payload = parse_json_object(read_body(app, CONFIG_MAX_BYTES))
        published = publish(configs, plugin_id, payload, now_ms())
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
        require_admin(app, admin_key)
        plugin_id = _plugin(plugin_id)
        published = configs.get_config(plugin_id)
        if published is None:
            raise NotFound(f"Plugin {plugin_id!r} has no published config")
        return json_response(
            200, published.config.model_dump(mode="json"), {"ETag": f'"{published.version}"'}
        )

    return app


def _plugin(raw: str) -> str:
    plugin_id = path_param(raw)
    if not is_identifier(plugin_id):
        raise NotFound("Unknown plugin")
    return plugin_id
