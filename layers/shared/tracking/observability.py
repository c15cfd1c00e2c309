"""Logging and metrics plumbing for handlers: the domain logs through stdlib ``logging``; its records
are emitted by the function's Powertools Logger as structured JSON."""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers


def route_package_logs(logger: Logger) -> None:
    logging.getLogger("tracking")
    copy_config_to_registered_loggers(source_logger=logger, include={"tracking"})


SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "event-tracking")


def outcome_metric(status: int) -> str | None:
    """The metric a failed response counts toward, named for what happened; None for a success."""
    if status == 429:
        return "RequestsRateLimited"
    if status == 503:
        return "StorageUnavailable"
    if status >= 500:
        return "RequestsFailed"
    if status >= 400:
        return "RequestsRejected"
    return None
