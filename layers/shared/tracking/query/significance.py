"""Whether an A/B test's groups convert differently (shared/API.md, "Segment's semantic events": the
summary's ``ab_test.comparison``): the difference of conversion rates (test - control), its 95 %
confidence interval from the unpooled standard error, and the two-sided p-value of the two-proportion
z-test, whose standard error pools both groups (the null hypothesis: one rate for both). Pure, and
exact to the standard normal distribution (``math.erfc``); nothing to compare while a group is empty."""

from __future__ import annotations

import math
from typing import Any

Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile
DIGITS = 4


def comparison(control: tuple[int, int], test: tuple[int, int]) -> dict[str, Any]:
    """Each group as (users, conversions): ``{"difference", "ci95": [low, high], "p_value"}``, each
    ``None`` while either group has no users."""
    (n_control, x_control), (n_test, x_test) = control, test
    if n_control <= 0 or n_test <= 0:
        return {"difference": None, "ci95": None, "p_value": None}
    p_control, p_test = x_control / n_control, x_test / n_test
    difference = p_test - p_control
    spread = math.sqrt(p_control * (1 - p_control) / n_control + p_test * (1 - p_test) / n_test)
    pooled = (x_control + x_test) / (n_control + n_test)
    pooled_error = math.sqrt(pooled * (1 - pooled) * (1 / n_control + 1 / n_test))
    # Every user converted, or none did: the groups cannot differ.
    p_value = 1.0 if pooled_error == 0 else math.erfc(abs(difference / pooled_error) / math.sqrt(2))
    margin = Z_95 * spread
    return {
        "difference": round(difference, DIGITS),
        "ci95": [round(difference - margin, DIGITS), round(difference + margin, DIGITS)],
        "p_value": float(f"{p_value:.4g}"),  # four significant digits: a tiny p stays above zero
    }
