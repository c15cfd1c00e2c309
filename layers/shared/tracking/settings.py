"""Environment, parsed once into a typed model (never read ad hoc from ``os.environ``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, Field, SecretStr, field_validator


class Settings(BaseModel):
    events_table: str = Field("EventsTable", alias="EVENTS_TABLE")
    control_table: str = Field("ControlTable", alias="CONTROL_TABLE")
    aggregates_table: str = Field("AggregatesTable", alias="AGGREGATES_TABLE")
    # Requests per minute per client IP on ingest routes; 0 disables the app's own limiter.
    rate_limit_per_minute: int = Field(120, ge=0, alias="RATE_LIMIT_PER_MINUTE")
    # Requests one container may take from the shared per-IP budget in one DynamoDB write (half of
    # it at first, growing to all of it for busy IPs), so an IP costs far fewer than one write per
    # request.
    rate_limit_max_lease: int = Field(16, ge=1, le=120, alias="RATE_LIMIT_MAX_LEASE")
    # Requests per minute per Segment write key (known to this service), in place of the per-IP limit:
    # a server's source sends from one IP. 0 disables it.
    write_key_rate_per_minute: int = Field(60_000, ge=0, alias="WRITE_KEY_RATE_PER_MINUTE")
    retention_days: int = Field(400, ge=1, alias="RETENTION_DAYS")
    config_cache_seconds: float = Field(5.0, ge=0, alias="CONFIG_CACHE_SECONDS")
    # The admin key: given as is (the local stack), or the id of the Secrets Manager secret that
    # holds it (the deployed stack: no secret in the environment). The secret wins when both are set.
    admin_key: SecretStr | None = Field(None, alias="TRACKING_ADMIN_KEY")
    admin_key_secret: str | None = Field(None, alias="ADMIN_KEY_SECRET_ARN")
    # Seconds a container keeps the secret's value (how long a rotated-out key may still work).
    admin_key_max_age: int = Field(300, ge=0, alias="ADMIN_KEY_MAX_AGE")
    # Requests per day (rolling, from the key's first request) each admin or dashboard key may make,
    # across all containers; 0 disables the quota.
    key_quota_per_day: int = Field(100_000, ge=0, alias="KEY_QUOTA_PER_DAY")
    # The lake the query function asks: a folder of Parquet files (the local stack), or Athena's
    # workgroup and Glue database (the deployed stack).
    lake_dir: str | None = Field(None, alias="LAKE_DIR")
    lake_workgroup: str | None = Field(None, alias="LAKE_WORKGROUP")
    lake_database: str | None = Field(None, alias="LAKE_DATABASE")
    lake_bucket: str | None = Field(None, alias="LAKE_BUCKET")  # where a deletion rewrites the files
    # How soon a stored event is in the lake (a deletion rewrites the lake after this and a margin).
    lake_flush_seconds: float = Field(300.0, ge=0, alias="LAKE_FLUSH_SECONDS")
    # Events out: the deliveries table, the queue the router fills and the delivery reads, how long a
    # message is retried, and whether http://127.0.0.1:<port> destinations are allowed (local only).
    deliveries_table: str = Field("DeliveriesTable", alias="DELIVERIES_TABLE")
    delivery_queue_url: str | None = Field(None, alias="DELIVERY_QUEUE_URL")
    # The queue whose messages run a replay's chunks (the replay function's).
    replay_queue_url: str | None = Field(None, alias="REPLAY_QUEUE_URL")
    delivery_max_age_seconds: int = Field(86_400, ge=60, le=1_209_600, alias="DELIVERY_MAX_AGE_SECONDS")
    destinations_allow_local: bool = Field(False, alias="DESTINATIONS_ALLOW_LOCAL")
    # The first retry's wait (then doubling to an hour): the contract's "within 30 s" is its most.
    delivery_first_retry_seconds: int = Field(30, ge=1, le=30, alias="DELIVERY_FIRST_RETRY_SECONDS")
    # Plugin that widget calls without ``data.chatbot_id`` are recorded under.
    default_plugin_id: str = Field("default", alias="DEFAULT_PLUGIN_ID")

    @field_validator("admin_key")
    @classmethod
    def _not_a_dashboard_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().startswith("dk_"):
            raise ValueError("the admin key must not start with dk_ (dashboard keys do)")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        names = {field.alias for field in cls.model_fields.values() if field.alias}
        return cls.model_validate({name: env[name] for name in names if env.get(name, "") != ""})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
