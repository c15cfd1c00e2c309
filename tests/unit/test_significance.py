"""The A/B comparison against a reference computation: statsmodels 0.15.0's ``proportions_ztest``
(two-sided, pooled) and ``confint_proportions_2indep(method="wald", compare="diff")`` (unpooled), run
once over these groups; its numbers are kept here (statsmodels is no dependency of the service)."""

from __future__ import annotations

import pytest

from tracking.query.significance import comparison

# (control users, conversions), (test users, conversions) -> difference, ci95 low, high, p-value
REFERENCE = [
    ((1000, 100), (1000, 130), 0.03, 0.002068, 0.057932, 0.03548845046647471),
    ((250, 12), (240, 30), 0.077, 0.027474, 0.126526, 0.0023369407120267566),
    ((50, 0), (60, 3), 0.05, -0.005147, 0.105147, 0.10890129793272194),
    ((3, 1), (5, 4), 0.466667, -0.171674, 1.105008, 0.18685750266304058),
    ((80000, 2400), (80000, 2480), 0.001, -0.000685, 0.002685, 0.24480075991639216),
]


@pytest.mark.parametrize(("control", "test", "difference", "low", "high", "p_value"), REFERENCE)
def test_the_comparison_matches_the_reference_z_test_and_wald_interval(
    control: tuple[int, int],
    test: tuple[int, int],
    difference: float,
    low: float,
    high: float,
    p_value: float,
) -> None:
    found = comparison(control, test)
    assert found["difference"] == pytest.approx(difference, abs=1e-4)
    assert found["ci95"] == pytest.approx([low, high], abs=1e-4)
    assert found["p_value"] == pytest.approx(p_value, rel=1e-3)


def test_nothing_is_compared_while_a_group_has_no_users() -> None:
    empty = {"difference": None, "ci95": None, "p_value": None}
    assert comparison((0, 0), (10, 2)) == empty
    assert comparison((10, 2), (0, 0)) == empty


def test_groups_where_everyone_or_no_one_converted_do_not_differ() -> None:
    assert comparison((10, 0), (20, 0)) == {"difference": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0}
    assert comparison((10, 10), (20, 20))["p_value"] == 1.0


def test_a_tiny_p_value_keeps_its_significant_digits() -> None:
    p_value = comparison((100_000, 1_000), (100_000, 2_000))["p_value"]
    assert 0 < p_value < 1e-40
