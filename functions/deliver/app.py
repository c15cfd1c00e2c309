"""Deliver function: the delivery queue's messages in; each sent to its destination, retried with
backoff through the message's visibility, or recorded among the destination's failures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.destinations.adapters import deliver_batch, delivery_processor
from tracking.observability import route_package_logs
from tracking.settings import get_settings
from tracking.wiring import delivery, delivery_queue

logger = Logger()
metrics = Metrics()
route_package_logs(logger)

_settings = get_settings()
_delivery = delivery(_settings)
_queue = delivery_queue(_settings)
_processor = delivery_processor()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = deliver_batch(event, context, _delivery, _queue, _processor)
    metrics.add_metric(
        name="DeliveriesRetried", unit=MetricUnit.Count, value=len(response["batchItemFailures"])
    )
    return response
