"""Composition root: builds each function's service from settings (handlers call only this). With
``storage/``, the only module that knows DynamoDB and Secrets Manager exist."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracking.settings import Settings

if TYPE_CHECKING:
    from tracking.aggregate.aggregator import Aggregator
    from tracking.destinations.admin import DestinationsAdmin
    from tracking.destinations.delivery import Delivery
    from tracking.destinations.replay import Replayer
    from tracking.destinations.router import CachedDestinations, Router
    from tracking.forget.service import Forgetter
    from tracking.ingest.service import IngestService
    from tracking.query.admin import PluginAdmin
    from tracking.query.auth import AdminKey
    from tracking.query.lake import LakeQuestions
    from tracking.query.service import QueryService
    from tracking.storage.budgets import BudgetStore
    from tracking.storage.control import ControlStore
    from tracking.storage.dashboard_keys import DashboardKeyStore
    from tracking.storage.deliveries import DeliveryStore
    from tracking.storage.lake_engines import AthenaLake, DuckDbLake
    from tracking.storage.plugins import PluginStore
    from tracking.storage.queue import SqsQueue
    from tracking.storage.replays import ReplayStore


def control_store(settings: Settings) -> ControlStore:
    """The control table whole (the query service reads plugins and manages keys)."""
    from tracking.storage.control import ControlStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

    return ControlStore(client(), settings.control_table)


def plugin_store(settings: Settings) -> PluginStore:
    from tracking.storage.dynamo import client  # noqa: PLC0415
    from tracking.storage.plugins import PluginStore  # noqa: PLC0415

    return PluginStore(client(), settings.control_table)


def budget_store(settings: Settings) -> BudgetStore:
    from tracking.storage.budgets import BudgetStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

    return BudgetStore(client(), settings.control_table)


def dashboard_key_store(settings: Settings) -> DashboardKeyStore:
    from tracking.storage.dashboard_keys import DashboardKeyStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

    return DashboardKeyStore(client(), settings.control_table)


def ingest_service(settings: Settings) -> IngestService:
    from tracking.ingest.configs import PluginDirectory  # noqa: PLC0415
    from tracking.ingest.privacy import PseudonymousBudgets  # noqa: PLC0415
    from tracking.ingest.rejections import RejectionLog  # noqa: PLC0415
    from tracking.ingest.service import IngestService  # noqa: PLC0415
    from tracking.ratelimit import RateLimiter  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415
    from tracking.storage.events import EventStore  # noqa: PLC0415
    from tracking.storage.rejections import RejectionStore  # noqa: PLC0415

    limit, lease = settings.rate_limit_per_minute, settings.rate_limit_max_lease
    budgets = budget_store(settings)
    return IngestService(
        directory=PluginDirectory(plugin_store(settings), settings.config_cache_seconds),
        sink=EventStore(client(), settings.events_table, settings.retention_days),
        # Windows kept under the day's pseudonym of an address, never the address.
        limiter=RateLimiter(PseudonymousBudgets(budgets, budgets), limit, max_lease=lease),
        # A source's budget is large: a lease of 64 requests costs one write.
        key_limiter=RateLimiter(budgets, settings.write_key_rate_per_minute, max_lease=64),
        rejections=RejectionLog(RejectionStore(client(), settings.events_table)),
        default_plugin_id=settings.default_plugin_id,
    )


def aggregator(settings: Settings) -> Aggregator:
    from tracking.aggregate.aggregator import Aggregator  # noqa: PLC0415
    from tracking.aggregate.ports import CurrentConfigs  # noqa: PLC0415
    from tracking.storage.aggregates import AggregateStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415
    from tracking.storage.live import live_store  # noqa: PLC0415
    from tracking.storage.rejections import RejectionStore  # noqa: PLC0415
    from tracking.storage.user_events import UserEvents  # noqa: PLC0415

    return Aggregator(
        AggregateStore(client(), settings.aggregates_table),
        CurrentConfigs(plugin_store(settings)),
        index=UserEvents(client(), settings.events_table, settings.retention_days),
        rejections=RejectionStore(client(), settings.events_table),
        live=live_store(client(), settings.aggregates_table),
    )


def query_service(settings: Settings) -> QueryService:
    from tracking.query.auth import QUOTA_WINDOW_MS, ApiKeyAuth  # noqa: PLC0415
    from tracking.query.service import QueryService  # noqa: PLC0415
    from tracking.ratelimit import RateLimiter  # noqa: PLC0415
    from tracking.storage.aggregates import AggregateStore  # noqa: PLC0415
    from tracking.storage.deletions import DeletionStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415
    from tracking.storage.live import live_store  # noqa: PLC0415
    from tracking.storage.rejections import RejectionStore  # noqa: PLC0415
    from tracking.storage.user_events import UserEvents  # noqa: PLC0415

    quota = RateLimiter(budget_store(settings), settings.key_quota_per_day, window_ms=QUOTA_WINDOW_MS)
    keys = dashboard_key_store(settings)
    return QueryService(
        control=control_store(settings),
        aggregates=AggregateStore(client(), settings.aggregates_table),
        auth=ApiKeyAuth(admin_key(settings), keys, quota=quota if quota.enabled else None),
        rejections=RejectionStore(client(), settings.events_table),
        events=UserEvents(client(), settings.events_table, settings.retention_days),
        deletions=DeletionStore(client(), settings.events_table),
        destinations=destinations_admin(settings) if settings.delivery_queue_url else None,
        live=live_store(client(), settings.aggregates_table),
    )


def lake_questions(settings: Settings) -> LakeQuestions:
    """Breakdown and retention over the stack's lake: DuckDB over a folder, else Athena (None: the
    routes answer 503)."""
    from tracking.query.lake import LakeQuestions  # noqa: PLC0415

    return LakeQuestions(lake_engine(settings))


def lake_engine(settings: Settings) -> DuckDbLake | AthenaLake | None:
    """DuckDB over the local stack's folder, else the deployed stack's Athena (None: neither)."""
    if settings.lake_dir:
        from pathlib import Path  # noqa: PLC0415

        from tracking.storage.lake_engines import DuckDbLake  # noqa: PLC0415

        return DuckDbLake(Path(settings.lake_dir))
    if settings.lake_workgroup and settings.lake_database:
        return athena_lake(settings)
    return None


def athena_lake(settings: Settings) -> AthenaLake:
    """The deployed lake's engine: the stack's Athena workgroup over its Glue database."""
    from functools import partial  # noqa: PLC0415

    from tracking.storage.dynamo import aws_client  # noqa: PLC0415
    from tracking.storage.lake_engines import AthenaLake  # noqa: PLC0415

    return AthenaLake(
        partial(aws_client, "athena"), settings.lake_workgroup or "", settings.lake_database or ""
    )


def plugin_admin(settings: Settings) -> PluginAdmin:
    from tracking.clock import now_ms  # noqa: PLC0415
    from tracking.query.admin import PluginAdmin  # noqa: PLC0415

    return PluginAdmin(control_store(settings), now_ms)


def admin_key(settings: Settings) -> AdminKey:
    from tracking.query.auth import StaticAdminKey  # noqa: PLC0415

    if settings.admin_key_secret:
        from tracking.storage.secrets import AdminKeySecret  # noqa: PLC0415

        return AdminKeySecret(settings.admin_key_secret, max_age=settings.admin_key_max_age)
    return StaticAdminKey(settings.admin_key.get_secret_value() if settings.admin_key else None)


def forgetter(settings: Settings) -> Forgetter:
    from tracking.forget.service import Forgetter, LakeEraser  # noqa: PLC0415
    from tracking.storage.aggregates import AggregateStore  # noqa: PLC0415
    from tracking.storage.deletions import DeletionStore  # noqa: PLC0415
    from tracking.storage.deliveries import PluginFailures  # noqa: PLC0415
    from tracking.storage.destinations import DestinationStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415
    from tracking.storage.live import live_store  # noqa: PLC0415
    from tracking.storage.rejections import RejectionStore  # noqa: PLC0415
    from tracking.storage.user_events import UserEvents  # noqa: PLC0415

    lake: LakeEraser | None = None
    if settings.lake_dir:
        from pathlib import Path  # noqa: PLC0415

        from tracking.storage.lake_erasers import LocalLakeEraser  # noqa: PLC0415

        lake = LocalLakeEraser(Path(settings.lake_dir))
    elif settings.lake_workgroup and settings.lake_database and settings.lake_bucket:
        from functools import partial  # noqa: PLC0415

        from tracking.storage.dynamo import aws_client  # noqa: PLC0415
        from tracking.storage.lake_erasers import AthenaLakeEraser  # noqa: PLC0415

        lake = AthenaLakeEraser(athena_lake(settings), partial(aws_client, "s3"), settings.lake_bucket)
    return Forgetter(
        DeletionStore(client(), settings.events_table),
        UserEvents(client(), settings.events_table, settings.retention_days),
        AggregateStore(client(), settings.aggregates_table),
        RejectionStore(client(), settings.events_table),
        cache_seconds=settings.config_cache_seconds,
        lake=lake,
        lake_flush_seconds=settings.lake_flush_seconds,
        failures=PluginFailures(delivery_store(settings), DestinationStore(client(), settings.control_table)),
        live=live_store(client(), settings.aggregates_table),
    )


# A message's lease while one delivery sends it (longer than one send: 10 s, and a margin), and how
# long its marker outlives the longest retry.
DELIVERY_LEASE_MS = 60_000
MARKER_MARGIN_S = 2 * 86_400


def delivery_store(settings: Settings) -> DeliveryStore:
    from tracking.storage.deliveries import DeliveryStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

    keep_s = settings.delivery_max_age_seconds + MARKER_MARGIN_S
    return DeliveryStore(client(), settings.deliveries_table, lease_ms=DELIVERY_LEASE_MS, keep_s=keep_s)


def cached_destinations(settings: Settings) -> CachedDestinations:
    from tracking.destinations.router import CachedDestinations  # noqa: PLC0415
    from tracking.storage.destinations import DestinationStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

    return CachedDestinations(
        DestinationStore(client(), settings.control_table), settings.config_cache_seconds
    )


def delivery_queue(settings: Settings) -> SqsQueue:
    return _queue(settings.delivery_queue_url, "DELIVERY_QUEUE_URL")


def replay_queue(settings: Settings) -> SqsQueue:
    return _queue(settings.replay_queue_url, "REPLAY_QUEUE_URL")


def _queue(url: str | None, name: str) -> SqsQueue:
    from functools import partial  # noqa: PLC0415

    from tracking.storage.dynamo import aws_client  # noqa: PLC0415
    from tracking.storage.queue import SqsQueue  # noqa: PLC0415

    if not url:
        raise RuntimeError(f"{name} is not set")
    return SqsQueue(partial(aws_client, "sqs"), url)


def replay_store(settings: Settings) -> ReplayStore:
    from tracking.storage.dynamo import client  # noqa: PLC0415
    from tracking.storage.replays import ReplayStore  # noqa: PLC0415

    return ReplayStore(client(), settings.deliveries_table)


def replayer(settings: Settings) -> Replayer:
    from tracking.clock import now_ms  # noqa: PLC0415
    from tracking.destinations.replay import NoLake, Replayer  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415
    from tracking.storage.user_events import UserEvents  # noqa: PLC0415

    return Replayer(
        replay_store(settings),
        lake_engine(settings) or NoLake(),
        UserEvents(client(), settings.events_table, settings.retention_days),
        destinations=cached_destinations(settings),
        deliveries=delivery_queue(settings),
        chunks=replay_queue(settings),
        counter=delivery_store(settings),
        clock_ms=now_ms,
    )


def destinations_admin(settings: Settings) -> DestinationsAdmin:
    from tracking.clock import now_ms  # noqa: PLC0415
    from tracking.destinations.admin import DestinationsAdmin  # noqa: PLC0415
    from tracking.storage.destinations import DestinationStore  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

    return DestinationsAdmin(
        DestinationStore(client(), settings.control_table),
        delivery_store(settings),
        delivery_queue(settings) if settings.delivery_queue_url else None,
        now_ms,
        allow_local=settings.destinations_allow_local,
        replays=(replay_store(settings), replay_queue(settings)) if settings.replay_queue_url else None,
    )


def router(settings: Settings) -> Router:
    from tracking.clock import now_ms  # noqa: PLC0415
    from tracking.destinations.router import Router  # noqa: PLC0415

    return Router(cached_destinations(settings), delivery_queue(settings), delivery_store(settings), now_ms)


def delivery(settings: Settings) -> Delivery:
    from tracking.clock import now_ms  # noqa: PLC0415
    from tracking.destinations.delivery import Delivery  # noqa: PLC0415
    from tracking.destinations.sender import Sender  # noqa: PLC0415

    return Delivery(
        cached_destinations(settings),
        delivery_store(settings),
        Sender(),
        now_ms,
        max_age_s=settings.delivery_max_age_seconds,
        first_retry_s=settings.delivery_first_retry_seconds,
        allow_local=settings.destinations_allow_local,
        replays=replay_store(settings),
    )
