"""How an aggregate reads on a dashboard: the contract's ``value`` and ``display`` per aggregation."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tracking.models.aggregates import AggregateState, decimal_text, group_key
from tracking.models.canonical import Scalar
from tracking.models.config import Aggregation, PublishedConfig

AVERAGE_PLACES = Decimal("0.000001")


def json_number(value: Decimal) -> int | float:
    """A DynamoDB decimal as a JSON number: whole numbers as integers."""
    return int(value) if value == value.to_integral_value() else float(value)


def json_scalar(value: Scalar) -> str | bool | int | float:
    return json_number(value) if isinstance(value, Decimal) else value


def display_scalar(value: Scalar) -> str:
    return group_key(value) if not isinstance(value, str) else value


def cell(state: AggregateState, aggregation: Aggregation) -> dict[str, Any] | None:
    """The cell of one aggregate, or None when it has nothing to show for that aggregation."""
    if aggregation == "increment":
        return {"value": state.count, "display": str(state.count)}
    if aggregation == "average":
        if not state.numeric:
            return None
        mean = (state.total / state.numeric).quantize(AVERAGE_PLACES, rounding=ROUND_HALF_EVEN)
        return {"value": json_number(mean.normalize()), "display": decimal_text(mean)}
    if aggregation == "string":
        if state.latest is None:
            return None
        return {"value": json_scalar(state.latest.value), "display": display_scalar(state.latest.value)}
    if aggregation == "array":
        if not state.values_total:
            return None
        shown = ", ".join(display_scalar(entry.value) for entry in state.values)
        result: dict[str, Any] = {
            "value": [json_scalar(entry.value) for entry in state.values],
            "display": shown,
        }
        if state.values_total > len(state.values):
            # Only the most recent values are kept; say so rather than pretend the list is whole.
            result.update(
                display=f"…, {shown} ({state.values_total} in all)", total=state.values_total, truncated=True
            )
        return result
    # group_array
    total = sum(state.counts.values()) + state.other
    if not total:
        return None
    # Most frequent first, ties by value: the same whatever order the events (or ids) came in.
    ordered = sorted(state.counts.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{name} {count}" for name, count in ordered]
    value: dict[str, Any] = {"total": total, "counts": dict(ordered)}
    if state.other:
        parts.append(f"other {state.other}")
        value["other"] = state.other
    return {"value": value, "display": f"{total} ({', '.join(parts)})"}


def current(state: AggregateState, published: PublishedConfig | None) -> bool:
    """False for an aggregate built before its key was last reset (``delete_existing_events``)."""
    return not state.empty and (published is None or state.reset_at >= published.reset_at(state.key))
