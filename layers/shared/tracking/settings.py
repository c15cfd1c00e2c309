"""Environment, parsed once into a typed model (never read ad hoc from ``os.environ``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, Field, SecretStr


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
    retention_days: int = Field(400, ge=1, alias="RETENTION_DAYS")
    config_cache_seconds: float = Field(5.0, ge=0, alias="CONFIG_CACHE_SECONDS")
    admin_key: SecretStr | None = Field(None, alias="TRACKING_ADMIN_KEY")
    # The deployed API's usage plan: dashboard keys are registered there too (unset locally).
    api_usage_plan_id: str | None = Field(None, alias="API_USAGE_PLAN_ID")
    # Plugin that widget calls without ``data.chatbot_id`` are recorded under.
    default_plugin_id: str = Field("default", alias="DEFAULT_PLUGIN_ID")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        names = {field.alias for field in cls.model_fields.values() if field.alias}
        return cls.model_validate({name: env[name] for name in names if env.get(name, "") != ""})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
