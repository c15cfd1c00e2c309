"""Forget function: deletion steps from the events table's stream in; a person's data removed, a
bounded amount per step."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.forget.stream import handle, new_processor
from tracking.observability import route_package_logs
from tracking.settings import get_settings
from tracking.wiring import forgetter

logger = Logger()
route_package_logs(logger)

_forgetter = forgetter(get_settings())
_processor = new_processor()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context, _forgetter, _processor)
