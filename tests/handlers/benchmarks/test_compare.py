"""Base against head: a change counts only beyond both the threshold and the repeats' spread,
its direction comes from the unit (then the name), and a missing metric or a changed unit is
said so rather than compared."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from handlers.benchmarks.compare import (
    FASTER,
    HIGHER,
    LOWER,
    MISSING_IN_BASE,
    MISSING_IN_HEAD,
    NO_CHANGE,
    SLOWER,
    UNITS_DIFFER,
    Comparison,
    Series,
    changed,
    collect,
    compare,
    direction,
    median,
    spread,
)
from handlers.benchmarks.metrics import Metric, MetricsError


def one(base: Series, head: Series, threshold: float = 0.05, name: str = "m") -> Comparison:
    (row,) = compare({name: base}, {name: head}, threshold)
    return row


def ms(*values: float) -> Series:
    return Series("ms", values)


# --------------------------------------------------------------------------- verdicts


def test_a_clear_slowdown_beyond_threshold_and_spread_is_slower():
    row = one(ms(10.0, 10.1, 9.9, 10.2, 10.0), ms(11.0, 11.2, 10.9, 11.1, 11.0))
    assert row == Comparison(
        "m", "ms", (10.0, 10.1, 9.9, 10.2, 10.0), (11.0, 11.2, 10.9, 11.1, 11.0), 1.1, SLOWER
    )
    assert row.regressed
    assert one(ms(11.0, 11.2, 10.9), ms(10.0, 10.1, 9.9)).verdict == FASTER


def test_a_change_within_the_threshold_is_no_change_however_clean():
    # 3% apart, ranges far apart: below the 5% threshold.
    assert one(ms(10.0, 10.0, 10.0), ms(10.3, 10.3, 10.3)).verdict == NO_CHANGE
    assert one(ms(10.0, 10.0, 10.0), ms(10.3, 10.3, 10.3), threshold=0.02).verdict == SLOWER


def test_a_change_within_the_noise_is_no_change_however_large():
    # Medians 20% apart, but one head repeat was as fast as the slowest base one.
    assert one(ms(10.0, 10.0, 10.5, 12.5), ms(12.0, 12.0, 12.5, 10.5)).verdict == NO_CHANGE
    assert not changed([10.0, 12.5], [12.0, 10.5], 0.05)


def test_with_one_repeat_a_side_the_threshold_alone_decides():
    assert one(ms(10.0), ms(10.6)).verdict == SLOWER
    assert one(ms(10.0), ms(10.4)).verdict == NO_CHANGE


def test_a_rate_is_better_higher():
    rate = Series("tokens/s", (100.0, 101.0, 99.0))
    better = Series("tokens/s", (120.0, 121.0, 119.0))
    assert one(rate, better).verdict == FASTER
    assert one(better, rate).verdict == SLOWER
    assert one(better, rate).ratio == pytest.approx(100 / 120)


def test_a_metric_with_no_direction_is_higher_or_lower_never_faster_or_slower():
    small, large = Series("MiB", (500.0, 501.0)), Series("MiB", (600.0, 601.0))
    assert (
        one(small, large, name="peak memory time").verdict == HIGHER
    )  # MiB: the name is not asked
    assert one(large, small).verdict == LOWER
    loss = Series("", (2.0, 2.01))
    assert one(loss, Series("", (3.0, 3.01)), name="loss").verdict == HIGHER


def test_the_name_decides_for_a_unit_that_does_not():
    base, head = Series("", (1.0, 1.01)), Series("", (2.0, 2.01))
    assert one(base, head, name="gpt2 forward latency").verdict == SLOWER
    assert one(base, head, name="time_to_first_token").verdict == SLOWER
    assert one(base, head, name="decode throughput").verdict == FASTER
    assert one(base, head, name="timestamp").verdict == HIGHER  # "time" must be a word


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("s", "lower"),
        ("ms", "lower"),
        ("us", "lower"),
        ("µs", "lower"),
        ("ns", "lower"),
        (" Seconds ", "lower"),
        ("tokens/s", "higher"),
        ("it/s", "higher"),
        ("samples/sec", "higher"),
        ("ops per second", "higher"),
        ("images / s", "higher"),
        ("req/min", "higher"),
        ("Hz", "higher"),
        ("fps", "higher"),
        ("MiB", "none"),
        ("bytes", "none"),
        ("%", "none"),
        ("", "none"),
        ("sms", "none"),
        ("/s/x", "none"),
    ],
)
def test_direction_from_the_unit(unit, expected):
    assert direction(unit) == expected


def test_a_metric_on_one_side_only_is_missing_never_zero():
    rows = compare(
        {"gone": ms(1.0), "kept": ms(2.0)},
        {"kept": ms(2.0), "new": Series("s", (3.0, 3.1))},
        0.05,
    )
    assert rows == [
        Comparison("gone", "ms", (1.0,), (), None, MISSING_IN_HEAD),
        Comparison("kept", "ms", (2.0,), (2.0,), 1.0, NO_CHANGE),
        Comparison("new", "s", (), (3.0, 3.1), None, MISSING_IN_BASE),
    ]


def test_units_that_differ_are_not_compared():
    row = one(Series("ms", (1000.0,)), Series("s", (1.0,)))
    assert (row.unit, row.ratio, row.verdict) == ("ms vs s", None, UNITS_DIFFER)
    assert (row.base, row.head) == ((1000.0,), (1.0,))


def test_a_base_of_zero_has_no_ratio_but_a_verdict():
    row = one(ms(0.0, 0.0), ms(1.0, 1.0))
    assert (row.ratio, row.verdict) == (None, SLOWER)
    assert one(ms(0.0, 0.0), ms(0.0, 0.0)).verdict == NO_CHANGE


def test_extreme_values_give_a_finite_ratio_or_none():
    assert one(ms(1e-320), ms(1e308)).ratio is None
    assert one(ms(1.7e308, 1.7e308), ms(1.7e308, 1.7e308)).ratio == 1.0
    assert one(ms(-1.7e308), ms(1.7e308)).verdict == SLOWER
    assert median([1.7e308, 1.7e308]) == 1.7e308
    assert math.isfinite(spread([-1e307, 1e307]))


def test_collect_groups_each_metrics_repeats_in_run_order():
    runs = [
        [Metric("a", "ms", 1.0), Metric("b", "s", 5.0)],
        [Metric("a", "ms", 2.0)],
        [Metric("b", "s", 6.0), Metric("a", "ms", 3.0)],
    ]
    assert collect(runs) == {"a": ms(1.0, 2.0, 3.0), "b": Series("s", (5.0, 6.0))}
    with pytest.raises(MetricsError, match=r"metric 'a' is in 'ms' in one run and in 's'"):
        collect([[Metric("a", "ms", 1.0)], [Metric("a", "s", 1.0)]])


# --------------------------------------------------------------------------- properties

VALUES = st.lists(st.floats(min_value=1e-6, max_value=1e6, allow_nan=False), min_size=1, max_size=7)
UNITS = st.sampled_from(["ms", "s", "tokens/s", "MiB", ""])
NAMES = st.text(min_size=1, max_size=6)
SIDES = st.dictionaries(NAMES, st.builds(Series, UNITS, VALUES.map(tuple)), max_size=5)
THRESHOLDS = st.floats(min_value=0, max_value=1)
FLIPPED = {
    FASTER: SLOWER,
    SLOWER: FASTER,
    HIGHER: LOWER,
    LOWER: HIGHER,
    NO_CHANGE: NO_CHANGE,
    MISSING_IN_BASE: MISSING_IN_HEAD,
    MISSING_IN_HEAD: MISSING_IN_BASE,
    UNITS_DIFFER: UNITS_DIFFER,
}


@settings(max_examples=300, deadline=None)
@given(SIDES, SIDES, THRESHOLDS)
def test_every_metric_of_either_side_has_exactly_one_row(base, head, threshold):
    rows = compare(base, head, threshold)
    assert [r.metric for r in rows] == list(dict.fromkeys([*base, *head]))
    for row in rows:
        assert row.base == (base[row.metric].values if row.metric in base else ())
        assert row.head == (head[row.metric].values if row.metric in head else ())


@settings(max_examples=300, deadline=None)
@given(SIDES, SIDES, THRESHOLDS)
def test_swapping_the_sides_flips_every_verdict(base, head, threshold):
    forward = {r.metric: r for r in compare(base, head, threshold)}
    backward = {r.metric: r for r in compare(head, base, threshold)}
    assert forward.keys() == backward.keys()
    for name, row in forward.items():
        assert backward[name].verdict == FLIPPED[row.verdict]
        if row.ratio is not None and backward[name].ratio is not None:
            assert row.ratio * backward[name].ratio == pytest.approx(1.0)


@settings(max_examples=300, deadline=None)
@given(UNITS, VALUES, THRESHOLDS)
def test_a_side_against_itself_is_no_change(unit, values, threshold):
    series = Series(unit, tuple(values))
    row = one(series, series, threshold)
    assert (row.verdict, row.ratio) == (NO_CHANGE, 1.0)


@settings(max_examples=300, deadline=None)
@given(UNITS, VALUES, VALUES, THRESHOLDS)
def test_a_verdict_needs_both_the_threshold_and_apart_ranges(unit, base, head, threshold):
    row = one(Series(unit, tuple(base)), Series(unit, tuple(head)), threshold)
    old, new = statistics.median(base), statistics.median(head)
    overlap = max(head) >= min(base) and min(head) <= max(base)
    within = abs(new - old) <= threshold * abs(old) * (1 - 1e-9)
    if overlap or within:
        assert row.verdict == NO_CHANGE
    assert row.ratio == pytest.approx(new / old)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.floats(min_value=1.2, max_value=100), THRESHOLDS.filter(lambda t: t < 0.15))
def test_a_time_that_grows_beyond_its_noise_and_the_threshold_is_slower(values, factor, threshold):
    base = Series("ms", tuple(values))
    grown = tuple(max(values) * factor + v - min(values) for v in values)
    assume(median(grown) > median(values) * (1 + threshold) * (1 + 1e-9))
    assert one(base, Series("ms", grown), threshold).verdict == SLOWER
    assert one(Series("ms", grown), base, threshold).verdict == FASTER


#: Powers of two scale a float exactly, so the scaled comparison is the same arithmetic.
SCALES = st.integers(min_value=-20, max_value=20).map(lambda k: 2.0**k)


@settings(max_examples=200, deadline=None)
@given(UNITS, VALUES, VALUES, THRESHOLDS, SCALES)
def test_the_verdict_does_not_depend_on_the_scale(unit, base, head, threshold, scale):
    plain = one(Series(unit, tuple(base)), Series(unit, tuple(head)), threshold)
    scaled = one(
        Series(unit, tuple(v * scale for v in base)),
        Series(unit, tuple(v * scale for v in head)),
        threshold,
    )
    assert scaled.verdict == plain.verdict
