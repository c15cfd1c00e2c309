"""The routes anyone may call, with no key: health, the dashboard page (it asks for a key itself), the
browser SDK a plugin's page imports, and the OpenAPI document."""

from __future__ import annotations

from importlib import resources

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from tracking.http import json_response, operation
from tracking.query.replies import Health


def public_routes(app: APIGatewayRestResolver) -> None:
    @app.get("/health", **operation("Health", "health", reply=Health))
    def health() -> Response[str]:
        return json_response(200, Health())

    @app.get("/dashboard", **operation("The dashboard page", "dashboard", reply="html"))
    def dashboard_page() -> Response[str]:
        page = _text("dashboard.html")
        return Response(200, "text/html; charset=utf-8", page, {"Cache-Control": "no-cache"})

    @app.get("/sdk/tracking.js", **operation("The browser SDK: an ES module", "health", reply="javascript"))
    def browser_sdk() -> Response[str]:
        # Imported cross-origin by a plugin's page; kept an hour by browsers and caches between.
        script = resources.files("tracking").joinpath("sdk/tracking.js").read_text(encoding="utf-8")
        headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=3600"}
        return Response(200, "text/javascript; charset=utf-8", script, headers)

    @app.get("/openapi.json", **operation("This document", "health", reply="json"))
    def openapi() -> Response[str]:
        return Response(200, "application/json", _text("openapi.json"))


def _text(name: str) -> str:
    return resources.files("tracking.query").joinpath(name).read_text(encoding="utf-8")
