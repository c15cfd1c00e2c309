"""Route function: the events table's changes (its Kinesis data stream) in; for each stored event, one
queue message per destination of its plugin that wants it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.destinations.adapters import route_batch, router_processor
from tracking.observability import route_package_logs
from tracking.settings import get_settings
from tracking.wiring import router

logger = Logger()
metrics = Metrics()
route_package_logs(logger)

_router = router(get_settings())
_processor = router_processor()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = route_batch(event, context, _router, _processor)
    metrics.add_metric(name="ChangesRetried", unit=MetricUnit.Count, value=len(response["batchItemFailures"]))
    return response
