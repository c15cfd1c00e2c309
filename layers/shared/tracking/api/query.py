"""Read and admin routes: health, plugin configs (and, as they land, the dashboard routes)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from tracking.api.common import json_response, new_resolver, now_ms, path_param, read_body, require_admin
from tracking.errors import NotFound, ValidationFailed
from tracking.jsonutil import parse_json_object
from tracking.models.canonical import is_identifier
from tracking.models.config import Aggregation, PublishedConfig
from tracking.plugins import ConfigStore, publish
from tracking.storage.aggregates import AggregateStore
from tracking.views import cell, current

CONFIG_MAX_BYTES = 256 * 1024


def create_query_app(
    configs: ConfigStore, aggregates: AggregateStore, admin_key: str | None
) -> APIGatewayRestResolver:
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

    @app.get("/v1/plugins/<plugin_id>/users/<user_id>")
    def get_user(plugin_id: str, user_id: str) -> Response[str]:
        require_admin(app, admin_key)
        plugin_id, user_id = _plugin(plugin_id), path_param(user_id)
        published = configs.get_config(plugin_id)
        if published is None:
            raise NotFound(f"Plugin {plugin_id!r} has no published config")
        chosen = chosen_aggregations(published, app.current_event.query_string_parameters)
        values = {}
        for state in aggregates.user_aggregates(plugin_id, user_id) if is_identifier(user_id) else []:
            if current(state, published):
                shown = cell(state, chosen.get(state.key) or default_aggregation(published, state.key))
                if shown is not None:
                    values[state.key] = shown
        if not values:
            raise NotFound(f"No tracked events for user {user_id!r}")
        return json_response(200, {"user_id": user_id, "values": values})

    return app


def default_aggregation(published: PublishedConfig, key: str) -> Aggregation:
    """A key's first listed aggregation; a key the config does not declare is a counter."""
    tracked = published.config.tracked_key(key)
    return tracked.aggregations[0] if tracked else "increment"


def chosen_aggregations(published: PublishedConfig, params: dict[str, str]) -> dict[str, Aggregation]:
    """``aggregation.<key>=<name>`` picks another of the key's listed aggregations."""
    chosen: dict[str, Aggregation] = {}
    problems = []
    for name, value in params.items():
        if not name.startswith("aggregation."):
            continue
        key = name.removeprefix("aggregation.")
        tracked = published.config.tracked_key(key)
        listed = tracked.aggregations if tracked else ("increment",)
        match = next((aggregation for aggregation in listed if aggregation == value), None)
        if match is None:
            problems.append({"field": name, "message": f"must be one of {', '.join(listed)}"})
        else:
            chosen[key] = match
    if problems:
        raise ValidationFailed("Unknown aggregation", problems)
    return chosen


def _plugin(raw: str) -> str:
    plugin_id = path_param(raw)
    if not is_identifier(plugin_id):
        raise NotFound("Unknown plugin")
    return plugin_id
