"""Five-field cron in UTC: what it accepts, what it refuses (naming the field), and when it
fires next, checked against a minute-by-minute walk of the calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.kit.cron import MAX_CRON_LENGTH, Cron, CronError, parse_cron


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def fires(cron: str, after: str, count: int = 1) -> list[str]:
    parsed = parse_cron(cron)
    t = at(after)
    out = []
    for _ in range(count):
        t = parsed.next_after(t)
        out.append(iso(t))
    return out


# --------------------------------------------------------------------------- next fire times


def test_a_daily_cron_fires_at_its_minute_in_utc():
    assert fires("17 2 * * *", "2024-05-01T00:00", 3) == [
        "2024-05-01 02:17:00",
        "2024-05-02 02:17:00",
        "2024-05-03 02:17:00",
    ]


def test_next_is_strictly_after_even_on_the_fire_minute_itself():
    assert fires("17 2 * * *", "2024-05-01T02:17:00") == ["2024-05-02 02:17:00"]
    assert fires("17 2 * * *", "2024-05-01T02:16:59.999") == ["2024-05-01 02:17:00"]
    assert fires("* * * * *", "2024-05-01T02:17:30") == ["2024-05-01 02:18:00"]


def test_steps_ranges_lists_and_names():
    assert fires("*/15 * * * *", "2024-05-01T10:01", 4) == [
        "2024-05-01 10:15:00",
        "2024-05-01 10:30:00",
        "2024-05-01 10:45:00",
        "2024-05-01 11:00:00",
    ]
    assert parse_cron("1-10/2 * * * *").minutes == frozenset({1, 3, 5, 7, 9})
    assert parse_cron("5/20 * * * *").minutes == frozenset({5, 25, 45})
    assert parse_cron("0 0 * JAN,jul,Dec *").months == frozenset({1, 7, 12})
    assert parse_cron("0 0 * * mon-fri").weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse_cron("0,30 8-9 * * *").hours == frozenset({8, 9})


def test_seven_is_sunday_too():
    assert parse_cron("0 0 * * 7").weekdays == frozenset({0})
    assert parse_cron("0 0 * * 5-7").weekdays == frozenset({5, 6, 0})
    # 2024-05-05 is a Sunday
    assert fires("0 3 * * 7", "2024-05-01T00:00") == ["2024-05-05 03:00:00"]
    assert fires("0 3 * * sun", "2024-05-01T00:00") == ["2024-05-05 03:00:00"]


def test_february_the_29th_waits_for_a_leap_year():
    assert fires("0 0 29 2 *", "2024-03-01T00:00", 2) == [
        "2028-02-29 00:00:00",
        "2032-02-29 00:00:00",
    ]
    # 2100 is not a leap year
    assert fires("0 0 29 2 *", "2097-01-01T00:00") == ["2104-02-29 00:00:00"]


def test_the_31st_skips_the_months_without_one():
    assert fires("0 0 31 * *", "2024-01-31T12:00", 4) == [
        "2024-03-31 00:00:00",
        "2024-05-31 00:00:00",
        "2024-07-31 00:00:00",
        "2024-08-31 00:00:00",
    ]


def test_both_day_fields_restricted_fire_on_either():
    # the 13th, or any Friday: 2024-09-06 is a Friday, the 13th that month is a Friday too
    assert fires("0 0 13 * 5", "2024-09-01T00:00", 4) == [
        "2024-09-06 00:00:00",
        "2024-09-13 00:00:00",
        "2024-09-20 00:00:00",
        "2024-09-27 00:00:00",
    ]
    # with a `*` day of the month, only the weekday counts
    assert fires("0 0 * * 5", "2024-09-01T00:00") == ["2024-09-06 00:00:00"]
    # a day field written with a leading `*` counts as unrestricted (Vixie cron, cronie):
    # both must match, so: odd dates that are Mondays
    assert fires("0 0 */2 * mon", "2024-09-01T00:00", 2) == [
        "2024-09-09 00:00:00",
        "2024-09-23 00:00:00",
    ]


def test_new_year_and_month_ends_roll_over():
    assert fires("59 23 31 12 *", "2024-12-31T23:59") == ["2025-12-31 23:59:00"]
    assert fires("0 0 1 1 *", "2024-12-31T23:59:59") == ["2025-01-01 00:00:00"]


def test_utc_has_no_daylight_saving_gaps():
    # 02:30 does not exist in New York on 2024-03-10 nor twice in Europe on 2024-10-27: UTC
    # has every minute once.
    assert fires("30 2 * * *", "2024-03-09T03:00", 2) == [
        "2024-03-10 02:30:00",
        "2024-03-11 02:30:00",
    ]
    assert fires("30 2 * * *", "2024-10-26T03:00", 2) == [
        "2024-10-27 02:30:00",
        "2024-10-28 02:30:00",
    ]


def test_next_after_refuses_a_time_that_is_not_one():
    with pytest.raises(ValueError, match="not a time"):
        parse_cron("* * * * *").next_after(float("nan"))


def test_text_is_the_expression_with_its_spaces_normalised():
    assert parse_cron("  17   2 * *\t* ").text == "17 2 * * *"


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0 30 2 *", r"day-of-month '30' never falls in month '2': it would never fire"),
        ("0 0 31 4,6,9,11 *", r"never fire"),
        ("0 0 * * * *", r"expected five fields .*got 6"),
        ("0 0 * *", r"got 4"),
        ("", r"got 0"),
        ("@daily", r"got 1"),
        ("60 * * * *", r"minute: 60 is out of range 0-59"),
        ("* 24 * * *", r"hour: 24 is out of range 0-23"),
        ("* * 0 * *", r"day-of-month: 0 is out of range 1-31"),
        ("* * 32 * *", r"day-of-month: 32 is out of range"),
        ("* * * 13 *", r"month: 13 is out of range 1-12"),
        ("* * * * 8", r"day-of-week: 8 is out of range 0-7"),
        ("*/0 * * * *", r"minute: the step in '\*/0' must be between 1 and 60"),
        ("*/61 * * * *", r"minute: the step in '\*/61' must be between 1 and 60"),
        ("*/" + "9" * 60 + " * * * *", r"minute: the step .* must be between 1 and 60"),
        ("5-1 * * * *", r"minute: the range '5-1' runs backwards"),
        ("* * * * fri-mon", r"day-of-week: the range 'fri-mon' runs backwards"),
        ("* * * foo *", r"month: 'foo' is not a number or a name \(jan, feb"),
        ("* * * * monday", r"day-of-week: 'monday' is not a number"),
        ("mon * * * *", r"minute: 'mon' is not a number$"),
        ("1,,2 * * * *", r"minute: cannot read ''"),
        ("1-2-3 * * * *", r"minute: cannot read '1-2-3'"),
        ("*-5 * * * *", r"minute: cannot read"),
        ("-1 * * * *", r"minute: cannot read '-1'"),
        ("١ * * * *", r"minute: cannot read"),  # an Arabic-Indic digit is not a digit here
        ("99999999999999999999999 * * * *", r"minute: 9+ is out of range"),
    ],
)
def test_a_bad_cron_is_refused_naming_the_field_and_the_problem(text, message):
    with pytest.raises(CronError, match=message):
        parse_cron(text)


def test_long_input_is_refused_before_it_is_read():
    text = "0 " * (MAX_CRON_LENGTH // 2 + 1)
    with pytest.raises(CronError, match=f"longer than {MAX_CRON_LENGTH} characters"):
        parse_cron(text)
    with pytest.raises(CronError, match="longer than"):
        parse_cron("1," * 10_000 + "1 * * * *")


def test_cron_error_is_a_value_error():
    assert issubclass(CronError, ValueError)
    with pytest.raises(CronError, match="is a string"):
        parse_cron(17)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- against a walk


def _walk(cron: Cron, t: float) -> float:
    """The next fire time found the slow way: every minute after `t`, skipping only the days
    on which no minute can match (the day decides that, whatever the time)."""
    start = datetime.fromtimestamp(t, UTC).replace(second=0, microsecond=0)
    day = start.replace(hour=0, minute=0)
    some_time = timedelta(hours=min(cron.hours), minutes=min(cron.minutes))
    for _ in range(800):
        if cron.matches((day + some_time).timestamp()):
            for minute in range(24 * 60):
                when = day + timedelta(minutes=minute)
                if when > start and cron.matches(when.timestamp()):
                    return when.timestamp()
        day += timedelta(days=1)
    raise AssertionError("no fire within 800 days")


_fields = st.tuples(
    st.sampled_from(["*", "0", "*/7", "5-20/5", "59", "0,30"]),
    st.sampled_from(["*", "3", "*/5", "22-23", "0,12"]),
    st.sampled_from(["*", "1", "15", "31", "29", "*/10", "28-31"]),
    st.sampled_from(["*", "2", "feb-apr", "*/3", "12"]),
    st.sampled_from(["*", "0", "7", "mon-fri", "sat", "*/2"]),
)


@settings(max_examples=80, deadline=None)
@given(_fields, st.integers(min_value=at("2023-01-01T00:00"), max_value=at("2030-01-01T00:00")))
def test_next_after_agrees_with_a_minute_by_minute_walk(fields, t):
    text = " ".join(fields)
    try:
        cron = parse_cron(text)
    except CronError:
        return  # e.g. the 31st of February: refused, which the test above covers
    found = cron.next_after(t)
    assert found > t
    assert found % 60 == 0
    assert cron.matches(found)
    if found - t < 800 * 86400:
        assert found == _walk(cron, t)
