"""Replay function: the replay queue's messages in, each one chunk of a replay (a page of the lake's
listing of a destination's stored events, read whole from the events table and queued for the
delivery); the next chunk queued after it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.destinations.adapters import replay_batch
from tracking.observability import route_package_logs
from tracking.settings import get_settings
from tracking.wiring import replayer

logger = Logger()
metrics = Metrics()
route_package_logs(logger)

_replayer = replayer(get_settings())
_processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = replay_batch(event, context, _replayer, _processor)
    metrics.add_metric(
        name="ReplayChunksRetried", unit=MetricUnit.Count, value=len(response["batchItemFailures"])
    )
    return response
