"""Ingest function: API Gateway REST proxy events in, canonical events into the events table."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.ingest.routes import create_ingest_app
from tracking.observability import SERVICE, outcome_metric, route_package_logs
from tracking.settings import get_settings
from tracking.wiring import ingest_service

logger = Logger()
route_package_logs(logger)

app = create_ingest_app(ingest_service(get_settings()))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = app.resolve(event, context)
    # Requests that went wrong are counted here (alarms watch StorageUnavailable). Successes are
    # API Gateway's Count metric already; a metric line for each would add log ingestion of about a
    # sixth of what storing the event costs.
    outcome = outcome_metric(response["statusCode"])
    if outcome is not None:
        with single_metric(name=outcome, unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="service", value=SERVICE)
    return response
