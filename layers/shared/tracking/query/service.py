"""The query function's use cases: plugins and their configs and keys (admin), and the dashboard's
reads, each behind the API key that may do it. Routes translate HTTP into one call here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tracking.api_errors import NotFound, Unavailable, ValidationFailed, validate
from tracking.models.canonical import is_identifier
from tracking.models.config import PluginConfig, PublishedConfig
from tracking.models.control import DashboardKey
from tracking.models.people import DeletionStep, PeopleLists, Person, new_deletion_id, suppression_hash
from tracking.models.rejections import RejectionsPage
from tracking.models.storage_failures import ConfigChanged, WriteKeyTaken
from tracking.models.widget import widget_defaults
from tracking.query import access, csv_export, paging, people, rejections, rollups, rows
from tracking.query.auth import ApiKeyAuth, key_hash, new_dashboard_key


class ControlStore(Protocol):
    def get_config(self, plugin_id: str) -> PublishedConfig | None: ...
    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists]: ...
    def suppress(self, plugin_id: str, hashes: Iterable[str]) -> None: ...
    def lift_suppression(self, plugin_id: str, hashes: Iterable[str]) -> None: ...
    def save_config(self, published: PublishedConfig, previous: PublishedConfig | None) -> None: ...
    def list_plugins(self, after: str | None, limit: int) -> tuple[list[str], bool]: ...
    def save_dashboard_key(self, key: DashboardKey) -> None: ...
    def is_listed(self, plugin_id: str) -> bool: ...
    def list_keys(self, plugin_id: str) -> list[DashboardKey]: ...
    def listed_key(self, plugin_id: str, key_id: str) -> DashboardKey | None: ...
    def delete_dashboard_key(self, key: DashboardKey) -> None: ...


class AggregateReader(rows.Reader, Protocol):
    pass


class Deletions(Protocol):
    def write_step(self, step: DeletionStep) -> None: ...
    def latest(self, plugin_id: str, deletion_id: str) -> DeletionStep | None: ...


@dataclass(frozen=True, slots=True)
class UserView:
    """One person's row and profile, for the id asked about."""

    asked: str
    user_id: str
    values: dict[str, dict[str, Any]]
    person: Person
    next_cursor: str | None = None  # more keys than one answer holds


@dataclass(frozen=True, slots=True)
class CsvPart:
    plugin_id: str
    text: str
    next_cursor: str | None


def _now_ms() -> int:
    return int(time.time() * 1000)


def plugin_id_of(raw: str) -> str:
    """A plugin id from a URL; one that cannot be a plugin's is an unknown plugin (404)."""
    if not is_identifier(raw):
        raise NotFound("Unknown plugin")
    return raw


class QueryService:
    def __init__(
        self,
        control: ControlStore,
        aggregates: AggregateReader,
        auth: ApiKeyAuth,
        rejections: rejections.RejectionReader,
        *,
        events: access.EventsReader,
        deletions: Deletions,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._control = control
        self._aggregates = aggregates
        self._events = events
        self._deletions = deletions
        self._rejections = rejections
        self._auth = auth
        self._clock = clock

    # -- admin ----------------------------------------------------------------------------------------

    def plugins(self, api_key: str | None, params: Mapping[str, str]) -> tuple[list[str], str | None]:
        """A page of the plugins this key reads (all of them for the admin key), and the next page's
        cursor."""
        caller = self._auth.caller(api_key)
        limit = paging.parse_limit(params.get("limit"))
        if not caller.admin:
            return ([caller.plugin_id] if caller.plugin_id else []), None
        plugins, more = self._control.list_plugins(paging.decode_user_cursor(params.get("cursor")), limit)
        return plugins, paging.encode_user_cursor(plugins[-1]) if more and plugins else None

    def managed(self, api_key: str | None, raw_plugin: str) -> str:
        """The plugin an admin request manages (401/403 for other keys, 404 for a bad plugin id)."""
        self._auth.admin(api_key)
        return plugin_id_of(raw_plugin)

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

    def keys(self, api_key: str | None, raw_plugin: str) -> list[DashboardKey]:
        return self._control.list_keys(self.managed(api_key, raw_plugin))

    def revoke_key(self, api_key: str | None, raw_plugin: str, key_id: str) -> DashboardKey:
        """Revoke a dashboard key: refused from its next call on, in every container."""
        plugin_id = self.managed(api_key, raw_plugin)
        found = self._control.listed_key(plugin_id, key_id) if is_identifier(key_id) else None
        if found is None:
            raise NotFound(f"No key {key_id!r} for plugin {plugin_id!r}")
        self._control.delete_dashboard_key(found)
        return found

    # -- dashboard ------------------------------------------------------------------------------------

    def readable(self, api_key: str | None, raw_plugin: str) -> PublishedConfig:
        """The plugin's config, for a caller allowed to read it (404 if it has none)."""
        return self._readable(api_key, raw_plugin)[0]

    def _readable(self, api_key: str | None, raw_plugin: str) -> tuple[PublishedConfig, PeopleLists]:
        plugin_id = plugin_id_of(raw_plugin)
        self._auth.reader(api_key, plugin_id)
        published, people_lists = self._control.get_plugin(plugin_id)
        if published is None:
            # A chatbot that only ever sent widget events reads with the widget's columns.
            if not self._control.is_listed(plugin_id):
                raise NotFound(f"Plugin {plugin_id!r} has no published config")
            published = widget_defaults(plugin_id)
        return published, people_lists

    def columns(
        self, api_key: str | None, raw_plugin: str, lang: str | None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The plugin's columns, and its own origins (where the page loads images from by itself)."""
        published = self.readable(api_key, raw_plugin)
        origins = [origin for origin in published.config.allowed_origins if origin != "*"]
        return rows.columns(published, lang), origins

    def rows(self, api_key: str | None, raw_plugin: str, params: Mapping[str, str]) -> rows.Page:
        published = self.readable(api_key, raw_plugin)
        chosen = rows.chosen_aggregations(published, params)
        limit = paging.parse_limit(params.get("limit"))
        return rows.page_of_rows(self._aggregates, published, params.get("cursor"), limit, chosen)

    def user(self, api_key: str | None, raw_plugin: str, user_id: str, params: Mapping[str, str]) -> UserView:
        """One person's values (every key with data, declared or not) and profile, for any of their
        ids: an id linked into a user answers that user's (404 when nothing is known of it)."""
        published = self.readable(api_key, raw_plugin)
        chosen = rows.chosen_aggregations(published, params)
        if not is_identifier(user_id):
            raise NotFound(f"Nothing tracked for user {user_id!r}")
        root, gathered = people.person_of(self._aggregates, published.plugin_id, user_id)
        values = rows.row_values(gathered.all_states(), published, chosen, declared_only=False)
        if not values and not gathered.profiles:
            raise NotFound(f"Nothing tracked for user {user_id!r}")
        shown, following = rows.values_page(values, params.get("cursor"))
        return UserView(user_id, root, shown, gathered.person(), following)

    def user_events(
        self, api_key: str | None, raw_plugin: str, user_id: str, cursor: str | None
    ) -> tuple[str, str | None]:
        """The right of access: a page of every stored event of the person (admin key only)."""
        plugin_id = self.managed(api_key, raw_plugin)
        if not is_identifier(user_id):
            raise NotFound(f"Nothing tracked for user {user_id!r}")
        _, gathered = people.person_of(self._aggregates, plugin_id, user_id)
        return access.access_page(self._events, plugin_id, gathered, cursor)

    def forget(self, api_key: str | None, raw_plugin: str, user_id: str, suppress: bool) -> DeletionStep:
        """Start forgetting an id and every id linked into it: suppressed at once (unless asked not
        to), removed by the forget function step by step."""
        plugin_id = self.managed(api_key, raw_plugin)
        if not is_identifier(user_id):
            raise NotFound(f"Nothing tracked for user {user_id!r}")
        states, profile = self._aggregates.user_items(plugin_id, user_id)
        gathered = people.gather(self._aggregates, plugin_id, user_id, states, profile)
        ids = tuple(gathered.ids)
        if suppress:
            self._control.suppress(plugin_id, [suppression_hash(i) for i in ids])
        step = DeletionStep(
            plugin_id=plugin_id,
            deletion_id=new_deletion_id(),
            step=0,
            user_id=user_id,
            ids=ids,
            requested_at=self._clock(),
            suppress=suppress,
            merged_into=profile.merged_into if profile else None,
        )
        self._deletions.write_step(step)
        return step

    def deletion(self, api_key: str | None, raw_plugin: str, deletion_id: str) -> DeletionStep:
        plugin_id = self.managed(api_key, raw_plugin)
        found = self._deletions.latest(plugin_id, deletion_id) if is_identifier(deletion_id) else None
        if found is None:
            raise NotFound(f"No deletion {deletion_id!r}")
        return found

    def lift_suppression(self, api_key: str | None, raw_plugin: str, user_id: str) -> None:
        plugin_id = self.managed(api_key, raw_plugin)
        self._control.lift_suppression(plugin_id, [suppression_hash(user_id)])

    def export(self, api_key: str | None, raw_plugin: str, params: Mapping[str, str]) -> CsvPart:
        published, people_lists = self._readable(api_key, raw_plugin)
        chosen = rows.chosen_aggregations(published, params)
        text, cursor = csv_export.export_csv(
            self._aggregates,
            published,
            lang=params.get("lang"),
            chosen=chosen,
            cursor=params.get("cursor"),
            trait_names=people_lists.trait_names,
        )
        return CsvPart(published.plugin_id, text, cursor)

    def rejections(self, api_key: str | None, raw_plugin: str, params: Mapping[str, str]) -> RejectionsPage:
        """The calls refused for the plugin, newest first (empty when there were none)."""
        plugin_id = plugin_id_of(raw_plugin)
        self._auth.reader(api_key, plugin_id)
        limit = paging.parse_limit(params.get("limit"))
        return rejections.newest_first(self._rejections, plugin_id, params.get("cursor"), limit)

    def series(self, api_key: str | None, raw_plugin: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Events and distinct users per key per day (one query over the rollups)."""
        plugin_id = plugin_id_of(raw_plugin)
        self._auth.reader(api_key, plugin_id)
        published = self._control.get_config(plugin_id)
        keys = rollups.series_keys(published, params.get("keys"))
        return rollups.series(
            self._aggregates, plugin_id, published, keys=keys, first=params.get("from"), last=params.get("to")
        )

    def summary(
        self, api_key: str | None, raw_chatbot: str, first: str | None, last: str | None
    ) -> dict[str, Any]:
        plugin_id = plugin_id_of(raw_chatbot)
        self._auth.reader(api_key, plugin_id)
        result = rollups.summary(
            self._aggregates, plugin_id, self._control.get_config(plugin_id), first=first, last=last
        )
        if result is None:
            raise NotFound(f"Nothing tracked for chatbot {plugin_id!r}")
        return result
