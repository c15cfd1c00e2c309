"""Managing a plugin (the admin key only; the route has resolved the plugin with
:meth:`QueryService.managed`): publishing its config, its dashboard keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tracking.api_errors import NotFound, Unavailable, ValidationFailed, validate
from tracking.models.canonical import is_identifier
from tracking.models.config import PluginConfig, PublishedConfig
from tracking.models.control import DashboardKey
from tracking.models.storage_failures import ConfigChanged, WriteKeyTaken
from tracking.query.auth import key_hash, new_dashboard_key


class PluginControl(Protocol):
    def get_config(self, plugin_id: str) -> PublishedConfig | None: ...
    def save_config(self, published: PublishedConfig, previous: PublishedConfig | None) -> None: ...
    def save_dashboard_key(self, key: DashboardKey) -> None: ...
    def list_keys(self, plugin_id: str) -> list[DashboardKey]: ...
    def listed_key(self, plugin_id: str, key_id: str) -> DashboardKey | None: ...
    def delete_dashboard_key(self, key: DashboardKey) -> None: ...


class PluginAdmin:
    def __init__(self, control: PluginControl, clock: Callable[[], int]) -> None:
        self._control = control
        self._clock = clock

    def publish(self, plugin_id: str, payload: Any) -> PublishedConfig:
        """Validate and store a new version of a plugin's config.

        Keys published with ``delete_existing_events: true`` are reset: events received before this
        publish no longer count for them (see the aggregator).
        """
        config = validate(PluginConfig, payload)
        now = self._clock()
        previous = self._control.get_config(plugin_id)
        resets = dict(previous.resets) if previous else {}
        for event in config.tracking.events:
            if event.delete_existing_events:
                resets[event.key] = now
        published = PublishedConfig(
            plugin_id=plugin_id,
            config=config,
            version=previous.version + 1 if previous else 1,
            published_at=now,
            resets=resets,
        )
        try:
            self._control.save_config(published, previous)
        except ConfigChanged:
            raise Unavailable("The config was published concurrently; publish again") from None
        except WriteKeyTaken as taken:
            details = [
                {"field": f"write_keys[{index}]", "message": "already in use"}
                for index, key in enumerate(config.write_keys)
                if key in taken.keys
            ]
            raise ValidationFailed("A write key belongs to another plugin", details) from None
        return published

    def config(self, plugin_id: str) -> PublishedConfig:
        published = self._control.get_config(plugin_id)
        if published is None:
            raise NotFound("This plugin has no published config")
        return published

    def create_key(self, plugin_id: str, label: str) -> tuple[str, DashboardKey]:
        """A new dashboard key of the plugin, shown once: only its hash is stored, here and nowhere
        else (the gateway does not know dashboard keys: they are checked and metered here)."""
        key = new_dashboard_key()
        stored = DashboardKey(plugin_id, key_hash(key), self._clock(), label, last4=key[-4:])
        self._control.save_dashboard_key(stored)
        return key, stored

    def keys(self, plugin_id: str) -> list[DashboardKey]:
        return self._control.list_keys(plugin_id)

    def revoke_key(self, plugin_id: str, key_id: str) -> DashboardKey:
        """Revoke a dashboard key: refused from its next call on, in every container."""
        found = self._control.listed_key(plugin_id, key_id) if is_identifier(key_id) else None
        if found is None:
            raise NotFound(f"No key {key_id!r} for plugin {plugin_id!r}")
        self._control.delete_dashboard_key(found)
        return found
