"""How a measured figure is summarised: its median and its spread over the rounds it was measured in."""

from __future__ import annotations

import statistics


def spread(values: list[float], digits: int = 4) -> dict[str, float]:
    """Median, quartiles and extremes of ``values`` (at least one)."""
    ordered = sorted(values)
    low, _, high = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {
        "median": round(statistics.median(ordered), digits),
        "p25": round(low, digits),
        "p75": round(high, digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
        "rounds": len(ordered),
    }


def describe(summary: dict[str, float]) -> str:
    """The interquartile range, the extremes and the number of rounds, for the report."""
    return (
        f"{summary['p25']}–{summary['p75']} (min {summary['min']}, max {summary['max']};"
        f" {int(summary['rounds'])} rounds)"
    )
