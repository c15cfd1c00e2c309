"""Composition root: builds each function's services from settings (handlers call only this)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracking.settings import Settings

if TYPE_CHECKING:
    from tracking.access import Access
    from tracking.aggregator import Aggregator
    from tracking.ingest import IngestService
    from tracking.storage.aggregates import AggregateStore
    from tracking.storage.control import ControlStore
    from tracking.storage.gateway import GatewayKeys


def control_store(settings: Settings) -> ControlStore:
    from tracking.storage.control import ControlStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

    return ControlStore(client(), settings.control_table)


def ingest_service(settings: Settings) -> IngestService:
    from tracking.ingest import IngestService  # noqa: PLC0415
    from tracking.plugins import PluginDirectory  # noqa: PLC0415
    from tracking.ratelimit import RateLimiter  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415
    from tracking.storage.events import EventStore  # noqa: PLC0415

    control = control_store(settings)
    return IngestService(
        directory=PluginDirectory(control, settings.config_cache_seconds),
        sink=EventStore(client(), settings.events_table, settings.control_table, settings.retention_days),
        limiter=RateLimiter(control, settings.rate_limit_per_minute, max_lease=settings.rate_limit_max_lease),
        default_plugin_id=settings.default_plugin_id,
    )


def aggregate_store(settings: Settings) -> AggregateStore:
    from tracking.storage.aggregates import AggregateStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

    return AggregateStore(client(), settings.aggregates_table)


def aggregator(settings: Settings) -> Aggregator:
    from tracking.aggregator import Aggregator  # noqa: PLC0415

    return Aggregator(aggregate_store(settings), control_store(settings))


def access(settings: Settings) -> Access:
    from tracking.access import Access  # noqa: PLC0415

    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    return Access(admin_key, control_store(settings))


def gateway_keys(settings: Settings) -> GatewayKeys | None:
    from tracking.storage.gateway import GatewayKeys  # noqa: PLC0415

    return GatewayKeys(settings.api_usage_plan_id) if settings.api_usage_plan_id else None
