"""Aggregate function: DynamoDB Streams batches of the events table in, aggregates and rollups out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.aggregate.stream import handle, stream_processor
from tracking.observability import route_package_logs
from tracking.settings import get_settings
from tracking.wiring import aggregator

logger = Logger()
metrics = Metrics()
route_package_logs(logger)

_aggregator = aggregator(get_settings())
_processor = stream_processor()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="StreamRecords", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    response = handle(event, context, _aggregator, _processor)
    metrics.add_metric(
        name="StreamRecordsRetried", unit=MetricUnit.Count, value=len(response["batchItemFailures"])
    )
    return response
