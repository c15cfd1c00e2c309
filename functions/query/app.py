"""Query function: health, plugins and their configs, keys and destinations (admin), the dashboard
read routes, the dashboard page and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.observability import route_package_logs
from tracking.query.routes import create_query_app
from tracking.settings import get_settings
from tracking.wiring import destinations_admin, lake_questions, plugin_admin, query_service

logger = Logger()
route_package_logs(logger)

settings = get_settings()
app = create_query_app(
    query_service(settings), plugin_admin(settings), lake_questions(settings), destinations_admin(settings)
)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
