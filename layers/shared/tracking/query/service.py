"""The query function's reads, each behind the API key that may do it: the dashboard's (columns, rows,
a person, the CSV, series, the summary, refused calls) and a person's data (access, deletion).
Managing plugins is :mod:`tracking.query.admin`'s. Routes resolve the caller here once, then make one
call with a typed request (:mod:`tracking.query.requests`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tracking.api_errors import NotFound
from tracking.clock import now_ms
from tracking.models.canonical import is_identifier
from tracking.models.config import PublishedConfig
from tracking.models.live import newest
from tracking.models.people import DeletionStep, PeopleLists, Person, new_deletion_id, suppression_hash
from tracking.models.rejections import RejectionsPage
from tracking.models.widget import widget_defaults
from tracking.query import access, csv_export, paging, people, rejections, rollups, rows
from tracking.query.auth import ApiKeyAuth, Caller
from tracking.query.requests import (
    DaysQuery,
    ExportQuery,
    PageQuery,
    Reading,
    RowsQuery,
    SeriesQuery,
    UserQuery,
)


class PluginReader(Protocol):
    """The control table as the reads need it."""

    def get_config(self, plugin_id: str) -> PublishedConfig | None: ...
    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists]: ...
    def suppress(self, plugin_id: str, hashes: Iterable[str]) -> None: ...
    def lift_suppression(self, plugin_id: str, hashes: Iterable[str]) -> None: ...
    def list_plugins(self, after: str | None, limit: int) -> tuple[list[str], bool]: ...
    def is_listed(self, plugin_id: str) -> bool: ...


class LiveReader(Protocol):
    def lines(self, plugin_id: str, now_ms: int) -> list[str]: ...


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


def plugin_id_of(raw: str) -> str:
    """A plugin id from a URL; one that cannot be a plugin's is an unknown plugin (404)."""
    if not is_identifier(raw):
        raise NotFound("Unknown plugin")
    return raw


class PersonForgetter(Protocol):
    def forget_person(
        self, plugin_id: str, deletion_id: str, user_id: str, ids: Sequence[str], at: int
    ) -> None:
        """Nothing of these ids stored before ``at`` leaves any more; the destinations are told."""


class QueryService:
    """Who may read what, and the reads: the route resolves its caller and plugin once
    (:meth:`caller`, :meth:`managed`, :meth:`reader`, :meth:`reading`) and passes a typed request."""

    def __init__(
        self,
        control: PluginReader,
        aggregates: AggregateReader,
        auth: ApiKeyAuth,
        rejections: rejections.RejectionReader,
        *,
        events: access.EventsReader,
        deletions: Deletions,
        destinations: PersonForgetter | None = None,
        live: LiveReader | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._destinations = destinations
        self._live = live
        self._control = control
        self._aggregates = aggregates
        self._events = events
        self._deletions = deletions
        self._rejections = rejections
        self._auth = auth
        self._clock = clock

    # -- who asks -------------------------------------------------------------------------------------

    def caller(self, api_key: str | None) -> Caller:
        return self._auth.caller(api_key)

    def managed(self, api_key: str | None, raw_plugin: str) -> str:
        """The plugin an admin request manages (401/403 for other keys, 404 for a bad plugin id)."""
        self._auth.admin(api_key)
        return plugin_id_of(raw_plugin)

    def reader(self, api_key: str | None, raw_plugin: str) -> str:
        """A plugin the caller may read (404 for a bad plugin id, then 401/403)."""
        plugin_id = plugin_id_of(raw_plugin)
        self._auth.reader(api_key, plugin_id)
        return plugin_id

    def reading(self, api_key: str | None, raw_plugin: str) -> Reading:
        """A plugin the caller may read, with its config (404 if it has none and never sent an event)."""
        plugin_id = self.reader(api_key, raw_plugin)
        published, people_lists = self._control.get_plugin(plugin_id)
        if published is None:
            # A chatbot that only ever sent widget events reads with the widget's columns.
            if not self._control.is_listed(plugin_id):
                raise NotFound(f"Plugin {plugin_id!r} has no published config")
            published = widget_defaults(plugin_id)
        return Reading(plugin_id, published, people_lists)

    # -- the dashboard --------------------------------------------------------------------------------

    def plugins(self, caller: Caller, page: PageQuery) -> tuple[list[str], str | None]:
        """A page of the plugins this caller reads (all of them for the admin key), and the next page's
        cursor."""
        if not caller.admin:
            return ([caller.plugin_id] if caller.plugin_id else []), None
        plugins, more = self._control.list_plugins(paging.decode_user_cursor(page.cursor), page.limit)
        return plugins, paging.encode_user_cursor(plugins[-1]) if more and plugins else None

    def columns(self, reading: Reading, lang: str | None) -> tuple[list[dict[str, Any]], list[str]]:
        """The plugin's columns, and its own origins (where the page loads images from by itself)."""
        origins = [origin for origin in reading.published.config.allowed_origins if origin != "*"]
        return rows.columns(reading.published, lang), origins

    def rows(self, reading: Reading, query: RowsQuery) -> rows.Page:
        return rows.page_of_rows(self._aggregates, reading.published, query.cursor, query.limit, query.chosen)

    def user(self, reading: Reading, user_id: str, query: UserQuery) -> UserView:
        """One person's values (every key with data, declared or not) and profile, for any of their
        ids: an id linked into a user answers that user's (404 when nothing is known of it)."""
        published = reading.published
        if not is_identifier(user_id):
            raise NotFound(f"Nothing tracked for user {user_id!r}")
        root, gathered = people.person_of(self._aggregates, published.plugin_id, user_id)
        values = rows.row_values(gathered.all_states(), published, query.chosen, declared_only=False)
        if not values and not gathered.profiles:
            raise NotFound(f"Nothing tracked for user {user_id!r}")
        shown, following = rows.values_page(values, query.cursor)
        return UserView(user_id, root, shown, gathered.person(), following)

    def export(self, reading: Reading, query: ExportQuery) -> CsvPart:
        text, cursor = csv_export.export_csv(
            self._aggregates,
            reading.published,
            lang=query.lang,
            chosen=query.chosen,
            cursor=query.cursor,
            trait_names=reading.people_lists.trait_names,
        )
        return CsvPart(reading.plugin_id, text, cursor)

    def recent_events(self, reading: Reading, limit: int) -> list[dict[str, Any]]:
        """The plugin's latest stored events, newest first (every shard's ring merged), each as a
        user's access export shows it; none of a person since forgotten."""
        lines = self._live.lines(reading.plugin_id, self._clock()) if self._live is not None else []
        shown = []
        for line in newest(lines, len(lines)):
            event = json.loads(line)
            ids = (event.get("user_id"), event.get("anonymous_id"), event.get("previous_id"))
            if not reading.people_lists.suppresses(*ids):
                shown.append(event)
            if len(shown) == limit:
                break
        return shown

    def rejections(self, plugin_id: str, page: PageQuery) -> RejectionsPage:
        """The calls refused for the plugin, newest first (empty when there were none)."""
        return rejections.newest_first(self._rejections, plugin_id, page.cursor, page.limit)

    def series(self, plugin_id: str, query: SeriesQuery) -> dict[str, Any]:
        """Events and distinct users per key per day (one query over the rollups)."""
        published = self._control.get_config(plugin_id)
        keys = rollups.series_keys(published, query.keys)
        return rollups.series(
            self._aggregates, plugin_id, published, keys=keys, first=query.first, last=query.last
        )

    def summary(self, plugin_id: str, query: DaysQuery) -> dict[str, Any]:
        result = rollups.summary(
            self._aggregates,
            plugin_id,
            self._control.get_config(plugin_id),
            first=query.first,
            last=query.last,
        )
        if result is None:
            raise NotFound(f"Nothing tracked for chatbot {plugin_id!r}")
        return result

    # -- people (admin) -------------------------------------------------------------------------------

    def user_events(self, plugin_id: str, user_id: str, cursor: str | None) -> tuple[str, str | None]:
        """The right of access: a page of every stored event of the person."""
        if not is_identifier(user_id):
            raise NotFound(f"Nothing tracked for user {user_id!r}")
        _, gathered = people.person_of(self._aggregates, plugin_id, user_id)
        return access.access_page(self._events, plugin_id, gathered, cursor)

    def forget(self, plugin_id: str, user_id: str, suppress: bool) -> DeletionStep:
        """Start forgetting an id and every id linked into it: suppressed at once (unless asked not
        to), removed by the forget function step by step."""
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
        if self._destinations is not None:  # from now on nothing of theirs is sent; webhooks are told
            self._destinations.forget_person(plugin_id, step.deletion_id, user_id, ids, step.requested_at)
        self._deletions.write_step(step)
        return step

    def deletion(self, plugin_id: str, deletion_id: str) -> DeletionStep:
        found = self._deletions.latest(plugin_id, deletion_id) if is_identifier(deletion_id) else None
        if found is None:
            raise NotFound(f"No deletion {deletion_id!r}")
        return found

    def lift_suppression(self, plugin_id: str, user_id: str) -> None:
        self._control.lift_suppression(plugin_id, [suppression_hash(user_id)])
