"""Base against head, metric by metric: whether the head is faster, slower or no different.

**When a change counts.** It must exceed both the threshold and the noise. The threshold is
relative: `|head median - base median| > threshold * |base median|`. The noise is the spread of
the repeats: the ranges `[min, max]` of the two sides must not overlap, so that no repeat of
the slower side beat a repeat of the faster one. That rule is the extreme of a Mann-Whitney U
test (U = 0): with 5 repeats a side, two samples of one distribution separate that fully by
chance once in 126 times (p ≈ 0.008), and it needs no random resampling, so the same numbers
always give the same verdict, and the table explains it by itself (the ranges shown do or do not
overlap). Fewer repeats make it weaker (2 a side: 1 in 3), which is why `repeats` defaults to
5 and the threshold stays a second condition. It leans towards `no change`: one disturbed
repeat widens its side's range and hides a small change, which costs less than a maintainer
chasing a regression that is noise. With a single repeat a side there is no spread to judge,
and the threshold alone decides.

**Which way is better** comes from the unit:

- a time (`s`, `ms`, `us`, `µs`, `ns`, `min`, ...): lower is better;
- a rate (`tokens/s`, `it/s`, `samples/sec`, anything per second, `Hz`, `fps`): higher is
  better;
- a size or a share (`MiB`, `bytes`, `%`, `count`) has no better direction;
- any other unit (`""`, `calls`, `loss`) decides nothing by itself, and then the metric's name
  does: a name that says `latency`, `time` or `duration` is a time, one that says `throughput`
  or `bandwidth` a rate.

A metric with no direction (memory, a loss, a count) that changed is reported `higher` or
`lower`, never `faster` or `slower`: calling more memory "slower" would be a guess presented as
a finding.

A metric present at one side only is reported missing at the other (its values an empty list,
never zero), and one whose units differ between the sides is not compared at all. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from handlers.benchmarks.metrics import Metric, MetricsError

FASTER = "faster"
SLOWER = "slower"
NO_CHANGE = "no change"
#: A change beyond the noise of a metric with no better direction (memory, a count).
HIGHER = "higher"
LOWER = "lower"
MISSING_IN_BASE = "missing in base"
MISSING_IN_HEAD = "missing in head"
UNITS_DIFFER = "units differ"

Direction = Literal["lower", "higher", "none"]

_TIME_UNITS = frozenset(
    {
        "s", "sec", "secs", "second", "seconds",
        "ms", "msec", "msecs", "millisecond", "milliseconds",
        "us", "µs", "μs", "usec", "usecs", "microsecond", "microseconds",
        "ns", "nsec", "nsecs", "nanosecond", "nanoseconds",
        "min", "mins", "minute", "minutes", "h", "hour", "hours",
    }
)  # fmt: skip
_RATE_UNITS = frozenset({"hz", "khz", "mhz", "fps", "qps", "rps"})
#: Units that say what a metric is without saying which way is better: the name is not asked.
_NEUTRAL_UNITS = frozenset(
    {"b", "byte", "bytes", "kb", "mb", "gb", "kib", "mib", "gib", "%", "percent", "count"}
)
#: `x/s`, `x / sec`, `x per second`, `x/ms`: something per unit of time.
_PER_TIME = re.compile(
    r"(?:/|\bper\s+)\s*(?:s|sec|secs|second|seconds|ms|msec|millisecond|min|minute|h|hour)$"
)
_TIME_WORDS = re.compile(r"\b(?:latency|latencies|time|times|duration|durations|elapsed)\b")
_RATE_WORDS = re.compile(r"\b(?:throughput|bandwidth)\b")


@dataclass(frozen=True)
class Series:
    """One metric's values at one commit, one per repeat."""

    unit: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Comparison:
    """One metric's row: what each side measured and the verdict on the difference."""

    metric: str
    #: The unit both sides share (or the one side's); `"ms vs s"` when they differ.
    unit: str
    #: Every repeat's value; empty where the metric is missing.
    base: tuple[float, ...]
    head: tuple[float, ...]
    #: Head median / base median; None where there is no such ratio (a side missing, the
    #: units differing, a base median of zero).
    ratio: float | None
    verdict: str

    @property
    def regressed(self) -> bool:
        return self.verdict == SLOWER


def collect(runs: Iterable[Sequence[Metric]]) -> dict[str, Series]:
    """One side's repeats grouped by metric: the values of every run that reported it, in run
    order. A metric whose unit changes from one run to the next is refused: its values could
    not be compared with each other, let alone with the other side."""
    units: dict[str, str] = {}
    values: dict[str, list[float]] = {}
    for metrics in runs:
        for metric in metrics:
            unit = units.setdefault(metric.name, metric.unit)
            if unit != metric.unit:
                raise MetricsError(
                    f"metric {metric.name!r} is in {unit!r} in one run and in {metric.unit!r}"
                    " in another"
                )
            values.setdefault(metric.name, []).append(metric.value)
    return {name: Series(units[name], tuple(found)) for name, found in values.items()}


def compare(
    base: Mapping[str, Series], head: Mapping[str, Series], threshold: float
) -> list[Comparison]:
    """One row per metric of either side: the base's in its order, then those new in head."""
    rows = []
    for name in [*base, *(n for n in head if n not in base)]:
        old, new = base.get(name), head.get(name)
        if old is None or not old.values:
            unit = new.unit if new is not None else ""
            values = new.values if new is not None else ()
            rows.append(Comparison(name, unit, (), values, None, MISSING_IN_BASE))
        elif new is None or not new.values:
            rows.append(Comparison(name, old.unit, old.values, (), None, MISSING_IN_HEAD))
        elif old.unit != new.unit:
            unit = f"{old.unit} vs {new.unit}"
            rows.append(Comparison(name, unit, old.values, new.values, None, UNITS_DIFFER))
        else:
            rows.append(_compare_one(name, old, new, threshold))
    return rows


def _compare_one(name: str, base: Series, head: Series, threshold: float) -> Comparison:
    base_median = median(base.values)
    head_median = median(head.values)
    ratio = head_median / base_median if base_median != 0 else None
    if ratio is not None and not math.isfinite(ratio):  # a base of 1e-320: no usable ratio
        ratio = None
    verdict = NO_CHANGE
    if changed(base.values, head.values, threshold):
        verdict = _direction_verdict(direction(base.unit, name), head_median > base_median)
    return Comparison(name, base.unit, base.values, head.values, ratio, verdict)


def changed(base: Sequence[float], head: Sequence[float], threshold: float) -> bool:
    """Whether head differs from base beyond both the threshold and the repeats' spread."""
    base_median = median(base)
    head_median = median(head)
    # Halved before subtracting: the difference of two values near the float limit is inf.
    beyond_threshold = abs(head_median / 2 - base_median / 2) > threshold / 2 * abs(base_median)
    apart = max(head) < min(base) or min(head) > max(base)
    return beyond_threshold and apart


def direction(unit: str, name: str = "") -> Direction:
    """Which way a metric is better: `lower` for a time, `higher` for a rate, else `none`."""
    folded = unit.strip().casefold()
    if folded in _TIME_UNITS:
        return "lower"
    if folded in _RATE_UNITS or _PER_TIME.search(folded):
        return "higher"
    if folded in _NEUTRAL_UNITS:
        return "none"
    words = name.casefold().replace("_", " ")
    if _RATE_WORDS.search(words):
        return "higher"
    if _TIME_WORDS.search(words):
        return "lower"
    return "none"


def _direction_verdict(better: Direction, went_up: bool) -> str:
    if better == "lower":
        return SLOWER if went_up else FASTER
    if better == "higher":
        return FASTER if went_up else SLOWER
    return HIGHER if went_up else LOWER


def spread(values: Sequence[float]) -> float:
    """The largest distance of a repeat from the median: `median ± spread` holds every
    repeat, so a reader sees the noise the verdict was judged against."""
    middle = median(values)
    return max(abs(v / 2 - middle / 2) for v in values) * 2


def median(values: Sequence[float]) -> float:
    """The middle value, or the mean of the two middle ones, computed so that two values near
    the float limit do not overflow on their way to a finite answer."""
    ordered = sorted(values)
    half = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[half]
    return ordered[half - 1] / 2 + ordered[half] / 2
