"""Standard five-field cron, in UTC: when a schedule next fires.

`minute hour day-of-month month day-of-week`, each field `*`, a number, a range `1-5`, a step
`*/15` or `1-10/2` (`5/15` is `5-max/15`), or a comma-separated list of those; months and days
may be named (`jan`..`dec`, `sun`..`sat`) and 7 is Sunday as well as 0. When both day fields are
restricted a day matching either fires (POSIX); a day field counts as unrestricted when it
starts with `*`, as in Vixie cron and cronie, so `0 0 */2 * mon` fires on Mondays with an odd
date. Times are UTC, so daylight saving never skips or repeats a fire.

Everything is checked when parsed: a schedule that could never fire (`0 0 30 2 *`) is refused
there, with the field and what is wrong, rather than found out by a bot that waits for ever.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = ["MAX_CRON_LENGTH", "Cron", "CronError", "parse_cron"]

#: Longer than any real cron line by far; a cap so a hostile config cannot make parsing slow.
MAX_CRON_LENGTH = 200

_MONTHS = {name: n for n, name in enumerate(calendar.month_abbr) if name}  # Jan → 1
_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, {k.lower(): v for k, v in _MONTHS.items()}),
    # 7 is accepted as Sunday and folded into 0 below.
    _Field("day-of-week", 0, 7, _WEEKDAYS),
)
_ITEM = re.compile(r"(?P<range>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>[0-9]+))?")
#: The longest month each month can be (February in a leap year).
_LONGEST = {month: calendar.monthrange(2000, month)[1] for month in range(1, 13)}


class CronError(ValueError):
    """A cron expression that cannot be used; the message names the field and what is wrong."""


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the values each field allows."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    #: 0 is Sunday (7 in the text is folded into it)
    weekdays: frozenset[int]
    #: whether the day fields were written with a leading `*` (the POSIX either-day rule)
    any_day: bool
    any_weekday: bool

    def next_after(self, t: float) -> float:
        """The first fire time strictly after `t` (epoch seconds), on a whole minute."""
        if not math.isfinite(t):
            raise ValueError(f"not a time: {t!r}")
        start = datetime.fromtimestamp((math.floor(t / 60) + 1) * 60, UTC)
        day = start.date()
        first_minute = start.hour * 60 + start.minute
        # Every combination of the fields comes round within the Gregorian calendar's 400-year
        # cycle, and parse_cron refused the ones that never do: the loop always ends.
        last = day + timedelta(days=366 * 400 + 1)
        while day <= last:
            if day.month not in self.months:
                day = _first_of_next_month(day)
                first_minute = 0
                continue
            if self._day_matches(day):
                found = self._time_from(first_minute)
                if found is not None:
                    hour, minute = found
                    when = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    return when.timestamp()
            day += timedelta(days=1)
            first_minute = 0
        raise AssertionError(f"cron {self.text!r} found no fire time")  # pragma: no cover

    def matches(self, t: float) -> bool:
        """Whether `t` falls in a minute this cron fires in."""
        when = datetime.fromtimestamp(t, UTC)
        return (
            when.month in self.months
            and self._day_matches(when.date())
            and when.hour in self.hours
            and when.minute in self.minutes
        )

    def _day_matches(self, day: date) -> bool:
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def _time_from(self, first_minute: int) -> tuple[int, int] | None:
        for hour in sorted(self.hours):
            if hour * 60 + 59 < first_minute:
                continue
            for minute in sorted(self.minutes):
                if hour * 60 + minute >= first_minute:
                    return hour, minute
        return None


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def parse_cron(text: str) -> Cron:
    """A five-field cron expression, checked: a `CronError` names the field and the problem."""
    if not isinstance(text, str):
        raise CronError(f"a cron expression is a string, got {type(text).__name__}")
    if len(text) > MAX_CRON_LENGTH:
        raise CronError(f"longer than {MAX_CRON_LENGTH} characters")
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise CronError(
            f"expected five fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    values = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    minutes, hours, days, months, weekdays = values
    weekdays = frozenset(d % 7 for d in weekdays)
    any_day, any_weekday = parts[2].startswith("*"), parts[4].startswith("*")
    # Only the day of the month can rule out every day (the 30th of February), and only when
    # the day of the week cannot stand in for it.
    fits = any(day <= _LONGEST[month] for month in months for day in days)
    if (any_weekday or any_day) and not fits:
        raise CronError(
            f"day-of-month {parts[2]!r} never falls in month {parts[3]!r}: it would never fire"
        )
    return Cron(
        text=" ".join(parts),
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        any_day=any_day,
        any_weekday=any_weekday,
    )


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise CronError(f"{spec.name}: cannot read {item!r} (expected *, N, N-M or a /step)")
        span = match["range"]
        if span == "*":
            low, high = spec.low, spec.high
        elif "-" in span:
            start, end = span.split("-")
            low, high = _value(start, spec), _value(end, spec)
            if low > high:
                raise CronError(f"{spec.name}: the range {item!r} runs backwards")
        else:
            low = _value(span, spec)
            # `5/15` is `5-max/15`; a single value without a step is just that value.
            high = spec.high if match["step"] is not None else low
        step = 1
        if match["step"] is not None:
            step = int(match["step"])
            width = spec.high - spec.low + 1
            if not 1 <= step <= width:
                raise CronError(f"{spec.name}: the step in {item!r} must be between 1 and {width}")
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _value(text: str, spec: _Field) -> int:
    if text.isdigit():
        value = int(text)
    elif text.lower() in spec.names:
        return spec.names[text.lower()]
    else:
        named = f" or a name ({', '.join(spec.names)})" if spec.names else ""
        raise CronError(f"{spec.name}: {text!r} is not a number{named}")
    if not spec.low <= value <= spec.high:
        raise CronError(f"{spec.name}: {value} is out of range {spec.low}-{spec.high}")
    return value
