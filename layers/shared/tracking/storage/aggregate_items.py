"""The items of the aggregates table, built from the aggregator's states and read back: every layout
from ``tracking.keys``, every size checked by DynamoDB's own rules before a write (``versioned``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from tracking.keys import (
    FUNNEL_KIND,
    aggregate_pk,
    aggregate_sk,
    funnel_pk,
    rollup_suffix,
    user_suffix,
)
from tracking.models.aggregates import (
    AggregateKey,
    AggregateState,
    Entry,
    Latest,
    RollupState,
    UserItems,
    UsersPage,
)
from tracking.models.funnel import Change as FunnelChange
from tracking.models.funnel import FunnelState, funnel_key
from tracking.models.people import ProfileState
from tracking.storage.dynamo import AttributeValue, check_size, from_item, to_item
from tracking.storage.profile_items import ItemsWrite, is_part, is_profile, profile_from_items, profile_write
from tracking.storage.rollup_items import rollup_to_item

State = AggregateState | RollupState | ProfileState | FunnelState


def funnel_to_item(state: FunnelState) -> dict[str, AttributeValue]:
    values: dict[str, Any] = {
        "pk": funnel_pk(state.plugin_id, state.user_id),
        "sk": state.user_id,
        "kind": FUNNEL_KIND,
        "plugin_id": state.plugin_id,
        "user_id": state.user_id,
        "version": state.version,
        "updated_at": state.updated_at,
        "applied": {shard: [str(seq), when] for shard, (seq, when) in state.applied.items()},
        "done": state.done,
        "entered_at": state.entered_at,
        "ab_group": state.group,
        "group_at": state.group_at,
        "paid": state.paid,
        "refunded": state.refunded,
    }
    if state.recent:
        values["recent"] = [
            [shard, str(seq), when, [list(change) for change in changes]]
            for (shard, seq), (when, changes) in state.recent.items()
        ]
    return to_item(values)


def funnel_from_item(item: dict[str, AttributeValue]) -> FunnelState:
    values = from_item(item)
    return FunnelState(
        plugin_id=values["plugin_id"],
        user_id=values["user_id"],
        version=int(values["version"]),
        applied={shard: (int(seq), int(when)) for shard, (seq, when) in values.get("applied", {}).items()},
        updated_at=int(values.get("updated_at", 0)),
        entered_at=_optional_int(values.get("entered_at")),
        done=int(values.get("done", 0)),
        group=values.get("ab_group"),
        group_at=_optional_int(values.get("group_at")),
        paid=int(values.get("paid", 0)),
        refunded=int(values.get("refunded", 0)),
        recent={
            (shard, int(seq)): (int(when), tuple(_funnel_change(change) for change in changes))
            for shard, seq, when, changes in values.get("recent", [])
        },
    )


def _funnel_change(stored: list[Any]) -> FunnelChange:
    """A remembered change; one written before A/B groups and revenue were kept is (day, step, users)."""
    if len(stored) == 3:
        day, step, users = stored
        return (str(day), funnel_key(int(step)), "none", int(users), 0)
    day, key, group, users, cents = stored
    return (str(day), str(key), str(group), int(users), int(cents))


def aggregate_item_key(key: AggregateKey) -> dict[str, AttributeValue]:
    plugin_id, name, user_id = key
    return to_item({"pk": aggregate_pk(plugin_id, user_id), "sk": aggregate_sk(user_id, name)})


def aggregate_to_item(state: AggregateState) -> dict[str, AttributeValue]:
    values: dict[str, Any] = {
        "pk": aggregate_pk(state.plugin_id, state.user_id),
        "sk": aggregate_sk(state.user_id, state.key),
        "plugin_id": state.plugin_id,
        "user_id": state.user_id,
        "key": state.key,
        "version": state.version,
        "reset_at": state.reset_at,
        "updated_at": state.updated_at,
        # Sequence numbers have up to 40 digits: beyond a DynamoDB number's 38, so kept as strings.
        "applied": {shard: [str(seq), when] for shard, (seq, when) in state.applied.items()},
        "count": state.count,
    }
    if state.first is not None:
        values["first"] = [state.first[0], str(state.first[1])]
    if state.numeric:
        values["total"], values["numeric"] = state.total, state.numeric
    if state.latest is not None:
        values["latest"] = {
            "value": state.latest.value,
            "at": state.latest.at,
            "event_id": state.latest.event_id,
        }
    if state.values_total:
        values["values"] = [[entry.value, entry.at, entry.event_id] for entry in state.values]
        values["values_total"] = state.values_total
    if state.first_at is not None:
        values["first_at"], values["last_at"] = state.first_at, state.last_at
    if state.pending_ids:
        values["pending_ids"] = [[event_id, at] for event_id, at in state.pending_ids]
    if state.days:
        # A bit per day from days_base, as hex: a year of daily activity is 92 characters.
        values["days"] = [state.days_base, format(state.days, "x")]
    if state.day_firsts:
        values["day_firsts"] = [
            [day, shard, str(seq), when] for day, (shard, seq, when) in state.day_firsts.items()
        ]
    if state.as_user:
        values["as_user"] = True
    if state.counts or state.other:
        # Pairs, not a map: a map key may not be empty, a tracked value may.
        values["counts"] = [[name, count] for name, count in state.counts.items()]
        values["other"] = state.other
    return to_item(values)


def aggregate_from_item(item: dict[str, AttributeValue]) -> AggregateState:
    values = from_item(item)
    latest = values.get("latest")
    first = values.get("first")
    days = values.get("days")
    return AggregateState(
        plugin_id=values["plugin_id"],
        user_id=values["user_id"],
        key=values["key"],
        version=int(values["version"]),
        reset_at=int(values.get("reset_at", 0)),
        applied={shard: (int(seq), int(when)) for shard, (seq, when) in values.get("applied", {}).items()},
        first=(first[0], int(first[1])) if first else None,
        count=int(values.get("count", 0)),
        total=values.get("total", Decimal(0)),
        numeric=int(values.get("numeric", 0)),
        latest=Latest(_scalar(latest["value"]), int(latest["at"]), latest["event_id"]) if latest else None,
        values=[_entry(v) for v in values.get("values", [])],
        values_total=int(values.get("values_total", 0)),
        counts={name: int(count) for name, count in values.get("counts", [])},
        other=int(values.get("other", 0)),
        updated_at=int(values.get("updated_at", 0)),
        first_at=_optional_int(values.get("first_at")),
        last_at=_optional_int(values.get("last_at")),
        pending_ids=[(event_id, int(at)) for event_id, at in values.get("pending_ids", [])],
        days_base=int(days[0]) if days else 0,
        days=int(days[1], 16) if days else 0,
        day_firsts={
            int(day): (shard, int(seq), int(when)) for day, shard, seq, when in values.get("day_firsts", [])
        },
        as_user=bool(values.get("as_user", False)),
    )


def _entry(stored: Any) -> Entry:
    """An array value as stored: [value, event time, event id]; a bare value from before times were
    kept reads as the oldest."""
    if isinstance(stored, list) and len(stored) == 3:
        return Entry(_scalar(stored[0]), int(stored[1]), str(stored[2]))
    return Entry(_scalar(stored), 0, "")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


Reread = Callable[[str, str], ProfileState | None]  # (plugin, id): a profile read whole, consistently


def user_states(
    items: Iterable[dict[str, AttributeValue]], reread: Reread
) -> Iterator[AggregateState | ProfileState]:
    """The states of users' items as a query returns them (in key order), a large profile assembled
    from its parts (they sort right after it) or, when they are not the ones it lists (written between
    the query's pages, or cut off by its limit), read again whole with ``reread``."""
    profile: dict[str, AttributeValue] | None = None
    parts: list[dict[str, AttributeValue]] = []
    for item in items:
        if is_part(item):
            parts.append(item)
            continue
        if profile is not None:
            yield from _whole(profile, parts, reread)
            profile = None
        parts = []
        if is_profile(item):
            profile = item
        else:
            yield aggregate_from_item(item)
    if profile is not None:
        yield from _whole(profile, parts, reread)


def _whole(
    item: dict[str, AttributeValue], parts: list[dict[str, AttributeValue]], reread: Reread
) -> Iterator[ProfileState]:
    found = profile_from_items(item, parts)
    if found is None:
        values = from_item(item)
        found = reread(values["plugin_id"], values["user_id"])
    if found is not None:
        yield found


def _scalar(value: Any) -> Any:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value


def user_items_of(items: Iterable[dict[str, AttributeValue]], reread: Reread) -> UserItems:
    """One id's aggregates and its profile, from its items."""
    states: list[AggregateState] = []
    profile: ProfileState | None = None
    for parsed in user_states(items, reread):
        if isinstance(parsed, ProfileState):
            profile = parsed
        else:
            states.append(parsed)
    return states, profile


def page_of_user_items(
    items: Iterable[dict[str, AttributeValue]],
    more: bool,
    read_user: Callable[[str], UserItems],
    reread: Reread,
) -> UsersPage:
    """A page of users from one query's items (``more``: it stopped at its limit). The last user may be
    cut short: it is left for the next page, unless it is the only one (then ``read_user`` reads it
    whole)."""
    page = UsersPage(users={}, more=more)
    for parsed in user_states(items, reread):
        page.add(parsed)
    if page.more and page.users:
        last = next(reversed(page.users))
        if len(page.users) > 1:
            page.drop(last)  # possibly cut short: it comes first on the next page
        else:
            states, profile = read_user(last)
            page.users[last] = states
            if profile is not None:
                page.profiles[last] = profile
    return page


def users_one_by_one(items: Iterable[dict[str, AttributeValue]], reread: Reread) -> Iterator[UsersPage]:
    """The users of items in user order, one page per user."""
    current = UsersPage(users={}, more=False)
    for parsed in user_states(items, reread):
        if current.users and parsed.user_id not in current.users:
            yield current
            current = UsersPage(users={}, more=False)
        current.add(parsed)
    if current.users:
        yield current


def state_to_item(state: AggregateState | RollupState | FunnelState) -> dict[str, AttributeValue]:
    if isinstance(state, AggregateState):
        return aggregate_to_item(state)
    if isinstance(state, FunnelState):
        return funnel_to_item(state)
    return rollup_to_item(state)


def removed_counts(items: Iterable[dict[str, AttributeValue]]) -> tuple[int, int]:
    """(aggregates, profiles) among an id's items being deleted (a large profile's parts count as
    neither: they are part of its profile)."""
    listed = list(items)
    profiles = sum(1 for item in listed if is_profile(item))
    return len(listed) - profiles - sum(1 for item in listed if is_part(item)), profiles


def suffix_of(state: State) -> tuple[str, int] | None:
    """Which list of the plugin's suffixes item names the suffix of ``state``'s item, and the suffix
    (None for a funnel item: only ever read by its user's key, never listed)."""
    if isinstance(state, AggregateState | ProfileState):
        return "users", user_suffix(state.user_id)
    if isinstance(state, RollupState):
        return "rollups", rollup_suffix(state.shard)
    return None


@contextmanager
def versioned(state: State) -> Iterator[tuple[ItemsWrite, int]]:
    """The items of ``state`` as its next version (``ItemsWrite``: one, or a large profile's), and the
    version it must replace (0: none yet); each item's size checked first (bounded by design: this is
    what says so if not). If the write fails, the state keeps its version; once it succeeded, a
    profile knows the parts it was written with."""
    expected = state.version
    state.version = expected + 1
    try:
        write = profile_write(state) if isinstance(state, ProfileState) else ItemsWrite(state_to_item(state))
        for item in write.items:
            check_size(item, "The aggregate")
        yield write, expected
    except BaseException:
        state.version = expected
        raise
    if isinstance(state, ProfileState):
        state.parts = write.listed
