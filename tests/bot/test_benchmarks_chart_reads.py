"""What a benchmarks chart reads from the store: each result's summary stored beside its values
(and computed for rows from before the summary columns), a branch's rows read again only where
they changed, and pull requests' results known by id; every answer the same as a fresh read."""

from __future__ import annotations

import dataclasses
import json
import random
import sqlite3
import statistics

import pytest

from bot.store import benchmarks as db
from bot.store.benchmarks import BenchmarkResult, record_results
from bot.store.engine import connect
from tests.support.schema import database_before
from tests.support.seed_runs import benchmark_run

REPO = "acme/models"
METRICS = ("bert/latency", "gpt2/latency", "gpt2/tokens_per_s")


@pytest.fixture
def conn(tmp_path) -> sqlite3.Connection:
    opened = connect(str(tmp_path / "bot.sqlite3"))
    yield opened
    opened.close()


def _push(conn, k: int, *, rng: random.Random, metrics=METRICS, at: float | None = None) -> int:
    """Push `k` to main, measured: its run's id."""
    sha = f"{k:040x}"
    when = 1_000.0 + k if at is None else at
    run_id = benchmark_run(conn, repo=REPO, sha=sha, at=when)
    record_results(
        conn,
        [
            BenchmarkResult(
                repo=REPO,
                sha=sha,
                branch="main",
                machine_type="single-gpu",
                metric=metric,
                unit="ms",
                values=tuple(rng.gauss(10.0, 1.0) for _ in range(3)),
                run_id=run_id,
                recorded_at=when,
            )
            for metric in metrics
        ],
    )
    return run_id


def _fresh(conn, **kw) -> db.BranchRows:
    """What a reader that kept nothing reads."""
    db._KEPT.clear()
    return _as_lists(db.branch_rows(conn, REPO, "main", **kw))


def _as_lists(rows: db.BranchRows) -> db.BranchRows:
    return db.BranchRows(*(list(getattr(rows, f.name)) for f in dataclasses.fields(rows)))


def _kept_read(conn, **kw) -> db.BranchRows:
    return _as_lists(db.branch_rows(conn, REPO, "main", **kw))


# ---------------------------------------------------------------------- the summary


@pytest.mark.parametrize(
    "values", [(3.0,), (2.0, 1.0), (5.0, 1.0, 3.0), (4.0, 1.0, 3.0, 2.0), (0.1, 0.2, 0.3, 1e300)]
)
def test_a_summary_is_the_lowest_median_highest_and_count(values) -> None:
    assert db.summary_of(values) == (
        min(values),
        statistics.median(values),
        max(values),
        len(values),
    )


def test_a_database_from_before_the_summaries_gets_them_for_every_row(tmp_path) -> None:
    path = str(tmp_path / "old.sqlite3")
    old = database_before(path, "CREATE TABLE benchmark_results_summarised")
    old.execute(
        "INSERT INTO runs (id, kind, repo, head_sha, requested_at, created_at)"
        " VALUES (1, 'benchmarks', ?, 'a', 0, 0)",
        (REPO,),
    )
    rng = random.Random(4)
    lists = [
        [1, 2],  # whole numbers, as a benchmark may write them
        [0.5],
        [3.25, 1.5, 2.0, 8.0],
        *([rng.uniform(-1e6, 1e6) for _ in range(rng.randint(1, 9))] for _ in range(200)),
    ]
    for n, values in enumerate(lists):
        old.execute(
            "INSERT INTO benchmark_results (repo, sha, branch, machine_type, metric, unit,"
            " value_list, run_id, pull_number, recorded_at, regression)"
            " VALUES (?, 'a', 'main', '', ?, 'ms', ?, 1, NULL, ?, 0)",
            (REPO, f"m{n:03d}", json.dumps(values), float(n)),
        )
    old.close()

    conn = connect(path)
    migrated = conn.execute(
        "SELECT id, metric, value_list, value_low, value_median, value_high, value_count"
        " FROM benchmark_results ORDER BY id"
    ).fetchall()
    assert [row["id"] for row in migrated] == list(range(1, len(lists) + 1))  # ids kept
    for row, values in zip(migrated, lists, strict=True):
        assert json.loads(row["value_list"]) == values
        assert (
            row["value_low"],
            row["value_median"],
            row["value_high"],
            row["value_count"],
        ) == db.summary_of([float(v) for v in values])
    (result,) = db.results_of(conn, 1)[:1]
    assert result.values == (1.0, 2.0) and result.median == 1.5
    # New results go on from the old ids, never below them.
    record_results(conn, [dataclasses.replace(result, metric="new", values=(1.0,))])
    (new_id,) = conn.execute("SELECT id FROM benchmark_results WHERE metric = 'new'").fetchone()
    assert new_id == len(lists) + 1
    conn.close()


def test_a_result_recorded_again_gets_a_new_id_keeps_its_time_and_changes_the_version(conn):
    run_id = _push(conn, 1, rng=random.Random(1), metrics=("latency",), at=100.0)
    before = db.results_version(conn, REPO)
    (first,) = db.results_of(conn, run_id)
    record_results(
        conn, [dataclasses.replace(first, values=(7.0, 9.0), recorded_at=0.0)], now=500.0
    )
    (again,) = db.results_of(conn, run_id)
    assert again.values == (7.0, 9.0) and again.recorded_at == 100.0
    assert db.results_version(conn, REPO) != before  # a chart of it is drawn again
    row = conn.execute("SELECT id, value_low, value_median, value_high FROM benchmark_results")
    assert tuple(row.fetchone()) == (2, 7.0, 8.0, 9.0)


# ---------------------------------------------------------------------- a branch, read again


def test_a_branch_read_after_pushes_reads_only_them_and_is_the_fresh_read(
    conn, monkeypatch
) -> None:
    rng = random.Random(2)
    for k in range(30):
        _push(conn, k, rng=rng)
    whole = []
    read_whole = db._read_whole
    monkeypatch.setattr(db, "_read_whole", lambda *a: whole.append(a) or read_whole(*a))
    for runs in (10, 1000):
        fresh = _fresh(conn, runs=runs)
        for k in range(100 + runs, 105 + runs):  # each push read on its own, the window slides
            _push(conn, k, rng=rng)
            whole.clear()
            kept = _kept_read(conn, runs=runs)
            assert not whole  # only the push's rows were read
            fresh = _fresh(conn, runs=runs)
            assert kept == fresh
            _kept_read(conn, runs=runs)
    rows = _kept_read(conn, runs=10)
    assert len(set(rows.run_id)) == 10 and len(rows) == 10 * len(METRICS)
    assert rows.run_id == sorted(rows.run_id)


def test_a_kept_read_follows_every_kind_of_change(conn) -> None:
    rng = random.Random(3)
    runs = [_push(conn, k, rng=rng) for k in range(8)]
    only = {"metrics": ("gpt2/latency", "bert/latency"), "runs": 5}
    for kw in ({"runs": 5}, only):
        _kept_read(conn, **kw)
    changes = [
        # a run recorded again with other values
        lambda: record_results(
            conn,
            [dataclasses.replace(r, values=(1.0, 2.0)) for r in db.results_of(conn, runs[-1])],
        ),
        # a run that records late, after newer runs
        lambda: record_results(
            conn,
            [
                dataclasses.replace(r, run_id=runs[-2], sha=f"{99:040x}", metric="late")
                for r in db.results_of(conn, runs[-1])[:1]
            ],
        ),
        # results removed
        lambda: conn.execute("DELETE FROM benchmark_results WHERE run_id = ?", (runs[-1],)),
        # a new metric, and a run that records in two goes at two times
        lambda: _push(conn, 50, rng=rng, metrics=("new/metric",), at=9_000.0),
        lambda: record_results(
            conn,
            [
                dataclasses.replace(r, metric="gpt2/latency", recorded_at=8_000.0)
                for r in db.results_of(conn, max(db.branch_rows(conn, REPO, "main", runs=1).run_id))
            ],
        ),
        # nothing
        lambda: None,
    ]
    for change in changes:
        change()
        for kw in ({"runs": 5}, only):
            kept = _kept_read(conn, **kw)
            assert kept == _fresh(conn, **kw)
            for kw_again in ({"runs": 5}, only):  # fill the reads the next change starts from
                _kept_read(conn, **kw_again)
    newest = _fresh(conn, runs=1)
    assert set(newest.recorded_at) == {8_000.0}  # a run's time is its first on its machine type


def test_a_read_is_kept_per_connection(tmp_path) -> None:
    path = str(tmp_path / "bot.sqlite3")
    first, second = connect(path), connect(path)
    rng = random.Random(5)
    for k in range(3):
        _push(first, k, rng=rng)
    assert len(db.branch_rows(first, REPO, "main", runs=10)) == 9
    _push(second, 3, rng=rng)
    assert len(db.branch_rows(second, REPO, "main", runs=10)) == 12
    assert len(db.branch_rows(first, REPO, "main", runs=10)) == 12
    first.close()
    second.close()


def test_pull_requests_results_read_again_are_the_same_and_follow_a_new_recording(conn) -> None:
    rng = random.Random(6)
    _push(conn, 1, rng=rng)
    run_id = benchmark_run(conn, repo=REPO, sha="f" * 40, at=2_000.0, number=7)
    mine = [
        BenchmarkResult(REPO, "f" * 40, "feature", "", metric, "ms", (1.0, 2.0), run_id, 7)
        for metric in METRICS
    ]
    record_results(conn, mine, now=2_000.0)
    first = db.pull_results_from(conn, REPO, first_run=0)
    assert [r.metric for r in first] == list(METRICS)
    assert db.pull_results_from(conn, REPO, first_run=0) == first
    record_results(conn, [dataclasses.replace(mine[0], values=(5.0,))])
    again = db.pull_results_from(conn, REPO, first_run=0, metrics=(METRICS[0],))
    assert [r.values for r in again] == [(5.0,)]
    db._KEPT.clear()
    assert db.pull_results_from(conn, REPO, first_run=0, metrics=(METRICS[0],)) == again


def test_branches_and_metric_names_come_in_their_order_and_up_to_the_limit(conn) -> None:
    rng = random.Random(7)
    for k, branch in enumerate(["main", "release", "main", "dev", "release"]):
        run_id = benchmark_run(conn, repo=REPO, sha=f"{k:040x}", at=float(k))
        record_results(
            conn,
            [
                BenchmarkResult(REPO, f"{k:040x}", branch, "", f"m{k}", "ms", (1.0,), run_id),
                BenchmarkResult(
                    REPO, f"{k:040x}", branch, "", "shared", "ms", (rng.random(),), run_id
                ),
            ],
        )
    assert db.chart_branches(conn, REPO) == ["release", "dev", "main"]
    assert db.chart_branches(conn, REPO, limit=2) == ["release", "dev"]
    assert db.chart_branches(conn, "ACME/Models") == ["release", "dev", "main"]
    assert db.chart_branches(conn, "acme/other") == []
    assert db.metric_names(conn, REPO) == ["m0", "m1", "m2", "m3", "m4", "shared"]
    assert db.metric_names(conn, REPO, limit=2) == ["m0", "m1"]
    assert db.metric_names(conn, "acme/other") == []
