"""Ingest function: API Gateway REST proxy events in, canonical events into the events table."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.api.ingest import create_ingest_app
from tracking.models.canonical import CanonicalEvent
from tracking.observability import outcome_metric, route_package_logs
from tracking.settings import get_settings
from tracking.wiring import ingest_service

logger = Logger()
metrics = Metrics()
route_package_logs(logger)


def _stored(dialect: str, events: list[CanonicalEvent]) -> None:
    metrics.add_metric(name=f"{dialect.capitalize()}EventsStored", unit=MetricUnit.Count, value=len(events))


app = create_ingest_app(ingest_service(get_settings()), _stored)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = app.resolve(event, context)
    metrics.add_metric(name=outcome_metric(response["statusCode"]), unit=MetricUnit.Count, value=1)
    return response
