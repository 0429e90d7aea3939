"""A benchmark command's metrics file: both formats told apart by shape, and everything else a
command under review could write refused with a message that says what was wrong."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.benchmarks.metrics import (
    MAX_METRICS,
    MAX_NAME_CHARS,
    Metric,
    MetricsError,
    read_metrics,
)

LIMIT = 1024 * 1024


def read(document: object, limit: int = LIMIT) -> list[Metric]:
    return read_metrics(json.dumps(document).encode(), limit=limit)


def refused(data: bytes | object, match: str, limit: int = LIMIT) -> None:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(MetricsError, match=match):
        read_metrics(raw, limit=limit)


# --------------------------------------------------------------------------- the two formats


def test_github_action_benchmarks_custom_format_is_read_in_order():
    metrics = read(
        [
            {"name": "gpt2 forward b1x128", "unit": "ms", "value": 41.5, "range": "± 0.4"},
            {"name": "gpt2 generate", "unit": "tokens/s", "value": 120, "extra": "CPU, 4 threads"},
            {"name": "ratio", "unit": "", "value": -0.5},
        ]
    )
    assert metrics == [
        Metric("gpt2 forward b1x128", "ms", 41.5),
        Metric("gpt2 generate", "tokens/s", 120.0),
        Metric("ratio", "", -0.5),
    ]
    assert all(type(m.value) is float for m in metrics)


def test_pytest_benchmarks_json_gives_each_full_name_its_median_in_seconds():
    document = {
        "machine_info": {"node": "x"},
        "benchmarks": [
            {
                "group": None,
                "name": "test_parse[small]",
                "fullname": "tests/test_parse.py::test_parse[small]",
                "stats": {"min": 0.001, "max": 0.004, "mean": 0.002, "median": 0.0015, "rounds": 9},
            },
            {"name": "test_only_short_name", "stats": {"median": 2, "mean": 3, "stddev": 1}},
        ],
        "version": "4.0.0",
    }
    assert read(document) == [
        Metric("tests/test_parse.py::test_parse[small]", "s", 0.0015),
        Metric("test_only_short_name", "s", 2.0),
    ]


def test_unicode_names_and_units_are_kept_as_written():
    metrics = read([{"name": "llama → 生成 🚀", "unit": "µs", "value": 3}])
    assert metrics == [Metric("llama → 生成 🚀", "µs", 3.0)]
    # A UTF-8 byte order mark, as some Windows tools write, is not an error.
    text = json.dumps([{"name": "x", "unit": "s", "value": 1}]).encode()
    assert read_metrics(b"\xef\xbb\xbf" + text, limit=LIMIT) == [Metric("x", "s", 1.0)]


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", r"not JSON: Expecting value"),
        (b"not json", r"not JSON"),
        (b"[1, 2", r"not JSON"),
        (b"\xff\xfe\xfa", r"not (UTF-8 text|JSON)"),
        ({"results": []}, r"neither format: .*got an object with keys 'results'"),
        ({}, r"neither format: .*got an empty object"),
        ({"benchmarks": {"a": 1}}, r"neither format"),
        ("metrics", r"neither format: .*got a string"),
        (3, r"neither format: .*got a number"),
        (None, r"neither format: .*got null"),
        (True, r"neither format: .*got a boolean"),
        ([], r"holds no metrics \(an empty list\)"),
        ({"benchmarks": []}, r'holds no metrics \(an empty "benchmarks" list\)'),
    ],
)
def test_a_file_in_neither_format_says_what_it_holds(data, match):
    refused(data, match)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (3, r'metric 1 is a number, not an object with "name", "unit" and "value"'),
        ({"unit": "ms", "value": 1}, r'metric 1 has no "name": expected a non-empty string'),
        ({"name": "  ", "unit": "ms", "value": 1}, r'metric 1 has no "name"'),
        ({"name": 7, "unit": "ms", "value": 1}, r'metric 1 has no "name"'),
        ({"name": "a", "value": 1}, r"metric 'a' has no \"unit\""),
        ({"name": "a", "unit": "m" * 51, "value": 1}, r"metric 'a'.s unit is more than 50"),
        ({"name": "a", "unit": "ms"}, r'metric \'a\': "value" is missing, not a number'),
        ({"name": "a", "unit": "ms", "value": None}, r'"value" is null, not a number'),
        ({"name": "a", "unit": "ms", "value": "41.5"}, r'"value" is a string, not a number'),
        ({"name": "a", "unit": "ms", "value": True}, r'"value" is a boolean, not a number'),
        ({"name": "a", "unit": "ms", "value": False}, r'"value" is a boolean, not a number'),
    ],
)
def test_a_bad_custom_entry_is_named_in_the_error(entry, match):
    refused([entry], match)


def test_a_list_as_a_value_is_not_a_number():
    refused([{"name": "a", "unit": "ms", "value": [1]}], r'"value" is a list, not a number')
    refused([[{"name": "a", "unit": "ms", "value": 1}]], r"metric 1 is a list, not an object")


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("x", r"benchmark 1 is a string, not an object"),
        ({"stats": {"median": 1}}, r'benchmark 1 has no "name"'),
        ({"name": "t"}, r"benchmark 't' has no \"stats\" object"),
        ({"name": "t", "stats": []}, r"benchmark 't' has no \"stats\" object"),
        ({"name": "t", "stats": {"mean": 1}}, r"benchmark 't' stats: \"median\" is missing"),
        ({"name": "t", "stats": {"median": "1"}}, r'"median" is a string, not a number'),
    ],
)
def test_a_bad_pytest_benchmark_entry_is_named_in_the_error(entry, match):
    refused({"benchmarks": [entry]}, match)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"])
def test_a_value_that_is_not_finite_is_refused(constant):
    data = b'[{"name": "a", "unit": "ms", "value": ' + constant + b"}]"
    refused(data, r"metric 'a': \"value\" is .*, not a finite number")


def test_an_integer_too_large_for_a_float_is_refused():
    data = b'[{"name": "a", "unit": "ms", "value": 1' + b"0" * 400 + b"}]"
    refused(data, r"metric 'a': \"value\" is too large to be a measurement")
    # More digits than Python converts at all: not JSON it can read.
    data = b'[{"name": "a", "unit": "ms", "value": 1' + b"0" * 5000 + b"}]"
    refused(data, r"not JSON: .*digits")


def test_nesting_deeper_than_the_parser_goes_is_refused():
    refused(b"[" * 100_000 + b"]" * 100_000, r"nested too deeply", limit=10**6)
    # Deep nesting where the format ignores it (inside "extra") is harmless if it parses.
    deep = b"[" * 50 + b"]" * 50
    data = b'[{"name": "a", "unit": "s", "value": 1, "extra": ' + deep + b"}]"
    assert read_metrics(data, limit=LIMIT) == [Metric("a", "s", 1.0)]


def test_duplicate_names_are_refused():
    refused(
        [{"name": "a", "unit": "ms", "value": 1}, {"name": "a", "unit": "ms", "value": 2}],
        r"metric 'a' appears more than once",
    )
    refused(
        {"benchmarks": [{"name": "t", "stats": {"median": 1}}] * 2},
        r"metric 't' appears more than once",
    )


def test_a_name_over_the_limit_is_refused_and_quoted_short():
    name = "n" * (MAX_NAME_CHARS + 1)
    with pytest.raises(MetricsError, match=r"201 characters, more than the 200 allowed") as info:
        read([{"name": name, "unit": "ms", "value": 1}])
    assert len(str(info.value)) < 200
    assert read([{"name": "n" * MAX_NAME_CHARS, "unit": "ms", "value": 1}])[0].name == "n" * 200


def test_a_lone_surrogate_in_a_name_is_refused():
    refused(b'[{"name": "a\\ud800", "unit": "s", "value": 1}]', r"name is not valid Unicode")
    refused(b'[{"name": "a", "unit": "\\udfff", "value": 1}]', r"unit is not valid Unicode")


def test_more_metrics_than_allowed_are_refused():
    many = [{"name": f"m{i}", "unit": "s", "value": i} for i in range(MAX_METRICS + 1)]
    refused(many, r"holds 1,001 metrics, more than the 1,000 allowed")
    assert len(read(many[:MAX_METRICS])) == MAX_METRICS


def test_a_file_over_the_limit_is_refused_before_it_is_parsed():
    data = json.dumps([{"name": "a", "unit": "s", "value": 1}]).encode()
    refused(data, rf"over the limit of {len(data) - 1:,} bytes", limit=len(data) - 1)
    assert read_metrics(data, limit=len(data)) == [Metric("a", "s", 1.0)]
    refused(b"x" * 100, r"over the limit of 10 bytes", limit=10)


def test_an_error_quotes_a_hostile_name_on_one_line():
    with pytest.raises(MetricsError) as info:
        read([{"name": "a\nb\x1b[31m", "unit": "ms", "value": "x"}])
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


# --------------------------------------------------------------------------- any input


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_metrics_or_a_metrics_error(data):
    try:
        metrics = read_metrics(data, limit=LIMIT)
    except MetricsError as exc:
        assert str(exc)
    else:
        assert metrics and all(isinstance(m.value, float) for m in metrics)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "unit", "value", "benchmarks", "stats", "median", "fullname"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(JSON_VALUES)
def test_any_json_gives_finite_unique_metrics_or_a_metrics_error(document):
    data = json.dumps(document).encode()  # NaN and Infinity are written as Python writes them
    try:
        metrics = read_metrics(data, limit=LIMIT)
    except MetricsError as exc:
        assert str(exc)
        return
    names = [m.name for m in metrics]
    assert len(set(names)) == len(names)
    assert all(m.value == m.value and abs(m.value) != float("inf") for m in metrics)
