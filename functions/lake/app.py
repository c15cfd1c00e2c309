"""Lake function: Firehose's transformation of the events table's changes (Kinesis Data Streams for
DynamoDB) into lake rows, with their partition keys; Firehose writes them to S3 as Parquet."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.lake.transform import transform
from tracking.observability import route_package_logs

logger = Logger()
route_package_logs(logger)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return transform(event)
