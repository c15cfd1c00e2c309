"""Answers from the daily rollups: a series per key and day, and the chatbot summary (counts, the
ordered funnel, A/B groups, revenue)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tracking.api_errors import ValidationFailed
from tracking.keys import AB_CONVERSIONS_KEY, AB_USERS_KEY, REFUNDS_KEY
from tracking.models.aggregates import REJECTED_GROUP, RollupState
from tracking.models.config import PublishedConfig
from tracking.models.funnel import FUNNEL, funnel_step, is_internal_key
from tracking.models.rejections import BOTS, OPTED_OUT
from tracking.query.cells import json_number
from tracking.query.rows import Reader
from tracking.query.significance import comparison

GROUPS = ("control", "test")
MAX_SUMMARY_DAYS = 366
MAX_SERIES_DAYS = 400
MAX_SERIES_KEYS = 20
# The summary's counts per event type: the most frequent first, the rest summed (a Segment source may
# send thousands of event names).
SUMMARY_COUNTS_MAX = 500


def days_before(day: date, days: int, field: str) -> date:
    try:
        return day - timedelta(days=days)
    except OverflowError:
        raise ValidationFailed("Invalid date", [{"field": field, "message": "too early a date"}]) from None


def parse_day(raw: str | None, field: str, default: date) -> date:
    if raw is None or raw == "":
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(
            "Invalid date", [{"field": field, "message": "a date as YYYY-MM-DD"}]
        ) from None


def day_range(first: str | None, last: str | None, today: date | None, most: int) -> tuple[date, date]:
    """The UTC days ``from``..``to`` asked (the last 30 days by default), at most ``most`` of them."""
    last_day = parse_day(last, "to", today or datetime.now(UTC).date())
    first_day = parse_day(first, "from", days_before(last_day, 29, "to"))
    if first_day > last_day:
        raise ValidationFailed("Invalid range", [{"field": "from", "message": "after 'to'"}])
    if (last_day - first_day).days >= most:
        raise ValidationFailed("Invalid range", [{"field": "from", "message": f"at most {most} days"}])
    return first_day, last_day


def series_keys(published: PublishedConfig | None, raw: str | None) -> list[str]:
    """The keys asked (comma-separated), else the declared ones; at most ``MAX_SERIES_KEYS``."""
    if raw:
        keys = list(dict.fromkeys(key.strip() for key in raw.split(",") if key.strip()))
    else:
        keys = [event.key for event in published.config.tracking.events] if published else []
    if not keys or len(keys) > MAX_SERIES_KEYS:
        raise ValidationFailed(
            "Invalid keys", [{"field": "keys", "message": f"1 to {MAX_SERIES_KEYS} keys, comma-separated"}]
        )
    return keys


def series(
    reader: Reader,
    plugin_id: str,
    published: PublishedConfig | None,
    *,
    keys: list[str],
    first: str | None,
    last: str | None,
    today: date | None = None,
) -> dict[str, Any]:
    """Events and distinct users per key per UTC day, zero-filled, from the rollups (one query). A
    rollup counts a user on a day once, on the event that made the day active for that user and key
    (exact, however many users)."""
    first_day, last_day = day_range(first, last, today, MAX_SERIES_DAYS)
    days = [(first_day + timedelta(days=n)).isoformat() for n in range((last_day - first_day).days + 1)]
    wanted = set(keys)
    totals: dict[tuple[str, str], list[int]] = {}
    for rollup in reader.rollups(plugin_id, days[0], days[-1], keys):
        if rollup.group == REJECTED_GROUP or rollup.key not in wanted or is_internal_key(rollup.key):
            continue
        if published is not None and rollup.reset_at < published.reset_at(rollup.key):
            continue  # counted before the key was reset
        found = totals.setdefault((rollup.key, rollup.day), [0, 0])
        found[0] += rollup.count
        found[1] += rollup.active
    return {
        "plugin_id": plugin_id,
        "from": days[0],
        "to": days[-1],
        "series": {
            key: [
                {
                    "day": day,
                    "events": totals.get((key, day), [0, 0])[0],
                    "users": totals.get((key, day), [0, 0])[1],
                }
                for day in days
            ]
            for key in keys
        },
    }


def summary(
    reader: Reader,
    plugin_id: str,
    published: PublishedConfig | None,
    *,
    first: str | None,
    last: str | None,
    today: date | None = None,
) -> dict[str, Any] | None:
    """Counts per event type, the visitor funnel, A/B groups and revenue in EUR, from the rollups
    of the days asked (UTC). None when the chatbot has neither a config nor ever an event."""
    first_day, last_day = day_range(first, last, today, MAX_SUMMARY_DAYS)
    rollups = [
        r
        for r in reader.rollups(plugin_id, first_day.isoformat(), last_day.isoformat())
        if published is None or r.reset_at >= published.reset_at(r.key)
    ]
    if not rollups and published is None and not reader.has_rollups(plugin_id):
        return None
    counts: dict[str, int] = {}
    purchases, refunds = Decimal(0), Decimal(0)  # refunds taken off: negative
    rejected: dict[str, int] = {}
    in_funnel = [0] * len(FUNNEL)
    for rollup in rollups:
        if rollup.group == REJECTED_GROUP:
            rejected[rollup.key] = rejected.get(rollup.key, 0) + rollup.count
            continue
        step = funnel_step(rollup.key)
        if step is not None:
            if 1 <= step <= len(FUNNEL):
                in_funnel[step - 1] += rollup.users
            continue
        if rollup.key == REFUNDS_KEY:
            refunds += rollup.revenue
        elif not is_internal_key(rollup.key):
            counts[rollup.key] = counts.get(rollup.key, 0) + rollup.count
            purchases += rollup.revenue

    # The ordered funnel: the users who first visited in these days, by how far in order they went.
    funnel = []
    first_step = in_funnel[0]
    previous: int | None = None
    for name, reached in zip(FUNNEL, in_funnel, strict=True):
        funnel.append(
            {
                "step": name,
                "users": reached,
                "conversion_from_previous": _ratio(reached, previous) if previous is not None else None,
                "conversion_overall": _ratio(reached, first_step),
            }
        )
        previous = reached
    ab_test = ab_groups(rollups)
    # Purchases by the day they were made, less the refunds taken off by the day they were.
    net_revenue = purchases + refunds
    opted_out = rejected.pop(OPTED_OUT, 0)  # counted beside the refusals, never refused
    bots = rejected.pop(BOTS, 0)  # stored bot events, which count nowhere else
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown, rest = ranked[:SUMMARY_COUNTS_MAX], ranked[SUMMARY_COUNTS_MAX:]
    other = {"keys": len(rest), "events": sum(n for _, n in rest)} if rest else None
    return {
        "chatbot_id": plugin_id,
        "from": first_day.isoformat(),
        "to": last_day.isoformat(),
        "counts": dict(sorted(shown)),
        "other_counts": other,
        "funnel": funnel,
        "ab_test": ab_test,
        "revenue_eur": _money(net_revenue),
        "rejected": dict(sorted(rejected.items())),
        "opted_out": opted_out,
        "bots": bots,
    }


# How the version before per-user A/B groups counted them: a group's visitors and its buyers.
LEGACY_AB = {"visitor": AB_USERS_KEY, "purchase": AB_CONVERSIONS_KEY}


def ab_groups(rollups: Sequence[RollupState]) -> dict[str, Any]:
    """The A/B groups: the users who joined each in these days, those of them who purchased, and
    their net revenue (``models.funnel``), with their comparison.

    Days before the first one that holds a group's rollup are read as the version before these
    rollups counted them (an upgraded stack's earlier days): a group's users are its visitors of the
    day, its conversions its buyers, its revenue its events' purchases."""
    kept = [r for r in rollups if r.key in (AB_USERS_KEY, AB_CONVERSIONS_KEY) and r.group in GROUPS]
    since = min((r.day for r in kept), default=None)
    users: dict[tuple[str, str], int] = {}
    revenue: dict[str, Decimal] = {}

    def add(key: str, group: str, n: int, amount: Decimal) -> None:
        users[(key, group)] = users.get((key, group), 0) + n
        revenue[group] = revenue.get(group, Decimal(0)) + amount

    for rollup in kept:
        add(
            rollup.key,
            rollup.group,
            rollup.users,
            rollup.revenue if rollup.key == AB_USERS_KEY else Decimal(0),
        )
    for rollup in rollups:
        earlier = since is None or rollup.day < since
        if earlier and rollup.group in GROUPS and not is_internal_key(rollup.key):
            legacy = LEGACY_AB.get(rollup.key)
            add(legacy or AB_USERS_KEY, rollup.group, rollup.users if legacy else 0, rollup.revenue)
    answer: dict[str, Any] = {}
    for group in GROUPS:
        # A user who moved to an earlier day (or another group) counts -1 on the day they left: a
        # range holding that day and not the other reads them as gone, never below none.
        members = max(0, users.get((AB_USERS_KEY, group), 0))
        buyers = min(members, max(0, users.get((AB_CONVERSIONS_KEY, group), 0)))
        answer[group] = {
            "users": members,
            "conversions": buyers,
            "conversion_rate": _ratio(buyers, members),
            "revenue_eur": _money(max(Decimal(0), revenue.get(group, Decimal(0)))),
        }
    control, test = ((answer[g]["users"], answer[g]["conversions"]) for g in GROUPS)
    answer["comparison"] = comparison(control, test)
    return answer


def _ratio(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


def _money(amount: Decimal) -> int | float:
    return json_number(amount.quantize(Decimal("0.01")))
