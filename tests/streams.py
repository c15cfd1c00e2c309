"""Building DynamoDB Streams records and tumbling-window invocations of the aggregate function (the
builders the benchmarks use too)."""

from __future__ import annotations

from devstack.local.builders import STREAM_ARN, canonical, invocation, stream_record

__all__ = ["STREAM_ARN", "canonical", "invocation", "stream_record"]
