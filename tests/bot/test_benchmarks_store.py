"""Benchmark results in the store: every repeat kept, a run recorded twice kept once, and the
previous push found past failed pushes, pull requests and other branches."""

from __future__ import annotations

import math
import sqlite3

import pytest

from bot.store.benchmarks import (
    BenchmarkResult,
    benchmark_metrics,
    benchmark_series,
    latest_before,
    record_results,
    results_of,
)
from bot.store.engine import connect


@pytest.fixture
def conn(tmp_path) -> sqlite3.Connection:
    opened = connect(str(tmp_path / "bot.sqlite3"))
    for number in range(1, 11):
        opened.execute(
            "INSERT INTO runs (id, kind, repo, head_sha, requested_at, created_at)"
            " VALUES (?, 'benchmarks', 'acme/models', ?, 0, 0)",
            (number, f"{number:040x}"),
        )
    return opened


def result(run_id: int, metric: str = "latency", **kw: object) -> BenchmarkResult:
    fields: dict[str, object] = {
        "repo": "acme/models",
        "sha": f"{run_id:040x}",
        "branch": "main",
        "machine_type": "single-gpu",
        "metric": metric,
        "unit": "ms",
        "values": (10.0, 11.0, 12.0),
        "run_id": run_id,
        **kw,
    }
    return BenchmarkResult(**fields)  # type: ignore[arg-type]


def test_every_repeat_is_kept_with_its_run_and_time(conn) -> None:
    record_results(conn, [result(1, regression=True)], now=100.0)
    (row,) = results_of(conn, 1)
    assert row == result(1, recorded_at=100.0, regression=True)
    assert row.values == (10.0, 11.0, 12.0) and row.median == 11.0


def test_a_run_recorded_again_replaces_its_rows_and_keeps_its_first_time(conn) -> None:
    record_results(conn, [result(1)], now=100.0)
    record_results(conn, [result(1, values=(20.0,), regression=True)], now=200.0)
    (row,) = results_of(conn, 1)
    assert (row.values, row.regression, row.recorded_at) == ((20.0,), True, 100.0)


@pytest.mark.parametrize("values", [(), (math.nan,), (1.0, math.inf)])
def test_values_that_are_no_measurement_are_refused(conn, values) -> None:
    with pytest.raises(ValueError, match="finite"):
        record_results(conn, [result(1, values=values)])
    assert results_of(conn, 1) == []


def test_the_previous_push_is_the_newest_earlier_run_that_recorded_on_the_branch(conn) -> None:
    record_results(conn, [result(1), result(1, "throughput", unit="tokens/s")], now=1.0)
    record_results(conn, [result(2)], now=2.0)
    # Not pushes to main on single-gpu: a pull request, another branch, another machine type.
    record_results(conn, [result(3, pull_number=7)], now=3.0)
    record_results(conn, [result(4, branch="release")], now=4.0)
    record_results(conn, [result(5, machine_type="multi-gpu")], now=5.0)
    # Run 6 recorded nothing (its benchmark failed).
    assert [r.run_id for r in latest_before(conn, "acme/models", "main", "single-gpu", 7)] == [2]
    assert [r.run_id for r in latest_before(conn, "ACME/Models", "main", "single-gpu", 2)] == [
        1,
        1,
    ]
    assert latest_before(conn, "acme/models", "main", "single-gpu", 1) == []
    assert latest_before(conn, "acme/other", "main", "single-gpu", 7) == []
    assert [r.run_id for r in latest_before(conn, "acme/models", "main", "multi-gpu", 7)] == [5]


def test_a_series_is_oldest_first_filtered_and_cut_to_the_newest(conn) -> None:
    for run_id in range(1, 6):
        record_results(
            conn,
            [result(run_id), result(run_id, "throughput", unit="tokens/s")],
            now=float(run_id * 10),
        )
    record_results(conn, [result(6, pull_number=3, branch="feature")], now=60.0)
    latency = benchmark_series(conn, "acme/models", metric="latency")
    assert [r.run_id for r in latency] == [1, 2, 3, 4, 5, 6]
    assert [r.run_id for r in benchmark_series(conn, "acme/models", metric="latency", limit=2)] == [
        5,
        6,
    ]
    main = benchmark_series(conn, "acme/models", branch="main", since=20.0, until=40.0)
    assert [(r.run_id, r.metric) for r in main] == [
        (2, "latency"),
        (2, "throughput"),
        (3, "latency"),
        (3, "throughput"),
        (4, "latency"),
        (4, "throughput"),
    ]
    assert benchmark_series(conn, "acme/models", machine_type="multi-gpu") == []
    assert benchmark_metrics(conn, "acme/models") == [("latency", "ms"), ("throughput", "tokens/s")]
