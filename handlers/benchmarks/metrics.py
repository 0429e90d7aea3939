"""A benchmark command's metrics file, read as untrusted input.

Two formats people already write are accepted, told apart by their shape so a repository need
not say which it uses:

- github-action-benchmark's "custom" format: a list of `{"name", "unit", "value", "range"?,
  "extra"?}` objects (`range` and `extra` are free text for people and are not read);
- pytest-benchmark's `--benchmark-json`: an object whose `benchmarks` list holds `{"fullname"
  or "name", "stats": {"median", ...}}`; each becomes the median in seconds, the statistic
  least moved by one slow round.

The file comes from code under review, so everything about it is bounded (its size, the number
of metrics, the length of a name) and every value must be a finite number: a NaN or a boolean
read as 1 would pass for a measurement and decide a verdict. Pure: bytes in, metrics out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_METRICS = 1000
MAX_NAME_CHARS = 200
MAX_UNIT_CHARS = 50
#: What a command's metrics file may weigh by default: far more than 1,000 metrics need.
DEFAULT_LIMIT = 16 * 1024 * 1024
#: How much of a metric's name an error message quotes.
_QUOTED = 60


class MetricsError(ValueError):
    """The metrics file cannot be used; the message says what is wrong with it."""


@dataclass(frozen=True)
class Metric:
    """One measurement of one run."""

    name: str
    unit: str
    value: float


def read_metrics(data: bytes, *, limit: int = DEFAULT_LIMIT) -> list[Metric]:
    """The metrics in a command's JSON file, in the file's order."""
    if len(data) > limit:
        raise MetricsError(f"the metrics file is over the limit of {limit:,} bytes")
    try:
        document = json.loads(data, parse_constant=_constant)
    except RecursionError:
        raise MetricsError("the metrics file is not usable JSON: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise MetricsError(
            f"the metrics file is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    except ValueError as exc:  # JSONDecodeError, and integers of more digits than Python reads
        raise MetricsError(f"the metrics file is not JSON: {exc}") from None
    if isinstance(document, list):
        metrics = _custom(document)
    elif isinstance(document, dict) and isinstance(document.get("benchmarks"), list):
        metrics = _pytest_benchmark(document["benchmarks"])
    else:
        raise MetricsError(
            "the metrics file is in neither format: expected github-action-benchmark's custom"
            ' format (a list of {"name", "unit", "value"}) or pytest-benchmark\'s JSON (an'
            ' object with a "benchmarks" list), got ' + _shape(document)
        )
    seen: set[str] = set()
    for metric in metrics:
        if metric.name in seen:
            raise MetricsError(f"metric {_quote(metric.name)} appears more than once")
        seen.add(metric.name)
    return metrics


def _constant(word: str) -> float:
    """NaN and ±Infinity are not JSON, though Python writes them; they are read here only to
    be refused where they stand, with the metric named."""
    return float(word)


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:5])
        return f"an object with keys {keys}" if keys else "an empty object"
    kinds = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _entries(entries: list[Any], what: str) -> None:
    if not entries:
        raise MetricsError(f"the metrics file holds no metrics (an empty {what})")
    if len(entries) > MAX_METRICS:
        raise MetricsError(
            f"the metrics file holds {len(entries):,} metrics, more than the {MAX_METRICS:,}"
            " allowed"
        )


def _custom(entries: list[Any]) -> list[Metric]:
    _entries(entries, "list")
    metrics = []
    for number, entry in enumerate(entries, 1):
        where = f"metric {number}"
        if not isinstance(entry, dict):
            raise MetricsError(
                f'{where} is {_shape(entry)}, not an object with "name", "unit" and "value"'
            )
        name = _name(entry.get("name"), where, "name")
        where = f"metric {_quote(name)}"
        unit = _unit(entry.get("unit"), where)
        metrics.append(Metric(name, unit, _number(entry, "value", where)))
    return metrics


def _pytest_benchmark(entries: list[Any]) -> list[Metric]:
    _entries(entries, '"benchmarks" list')
    metrics = []
    for number, entry in enumerate(entries, 1):
        where = f"benchmark {number}"
        if not isinstance(entry, dict):
            raise MetricsError(f"{where} is {_shape(entry)}, not an object")
        # The full name (`tests/test_x.py::test_y[case]`) is unique where the short one may not
        # be: two files can hold a test of one name.
        key = "fullname" if "fullname" in entry else "name"
        name = _name(entry.get(key), where, key)
        where = f"benchmark {_quote(name)}"
        stats = entry.get("stats")
        if not isinstance(stats, dict):
            raise MetricsError(f'{where} has no "stats" object')
        metrics.append(Metric(name, "s", _number(stats, "median", f"{where} stats")))
    return metrics


def _name(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MetricsError(f'{where} has no "{key}": expected a non-empty string')
    _text(value, where, key)
    if len(value) > MAX_NAME_CHARS:
        raise MetricsError(
            f"{where}'s name is {len(value)} characters, more than the {MAX_NAME_CHARS} allowed:"
            f" {_quote(value)}"
        )
    return value


def _unit(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise MetricsError(f'{where} has no "unit": expected a string like "ms" or "tokens/s"')
    _text(value, where, "unit")
    if len(value) > MAX_UNIT_CHARS:
        raise MetricsError(f"{where}'s unit is more than {MAX_UNIT_CHARS} characters")
    return value


def _text(value: str, where: str, key: str) -> None:
    """A lone surrogate (`"\\ud800"`) is valid JSON but no text: it cannot be written as UTF-8
    to a terminal, a comment or the store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MetricsError(f"{where}'s {key} is not valid Unicode text") from None


def _number(holder: Mapping[str, Any], key: str, where: str) -> float:
    value = holder.get(key)
    # A boolean is an int to Python; as a measurement it would read as 0 or 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = "missing" if value is None and key not in holder else _shape(value)
        raise MetricsError(f'{where}: "{key}" is {shown}, not a number')
    try:
        number = float(value)
    except OverflowError:
        raise MetricsError(f'{where}: "{key}" is too large to be a measurement') from None
    if not math.isfinite(number):
        raise MetricsError(f'{where}: "{key}" is {value}, not a finite number')
    return number


def _quote(name: str) -> str:
    """A name as an error message quotes it: on one line, cut short."""
    flat = "".join(c if c.isprintable() else " " for c in name)
    return repr(flat if len(flat) <= _QUOTED else flat[: _QUOTED - 1] + "…")
