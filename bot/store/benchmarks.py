"""Benchmark results: every repeat's value of each metric, per repository, commit, branch and
machine type, with the run that measured it.

One row per (run, commit, machine type, metric): a run that measures a commit twice (a pull
request's head and base) keeps both, and a reporter that records the same run again after a
restart replaces its own rows instead of adding more. Pushes have no `pull_number`; the
comparison on a branch is with the newest earlier run that recorded anything there, so a push
whose benchmark failed is skipped over rather than read as "every metric vanished".
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

#: The most rows `benchmark_series` returns unless told otherwise: 1,000 commits × 20 metrics.
SERIES_LIMIT = 20_000


@dataclass(frozen=True)
class BenchmarkResult:
    repo: str
    sha: str
    branch: str
    #: "" where the repository names no machine types.
    machine_type: str
    metric: str
    unit: str
    #: Every repeat's value, in the order the repeats ran.
    values: tuple[float, ...]
    run_id: int
    #: None for a push to a branch (and a scheduled run); the pull request's number otherwise.
    pull_number: int | None = None
    #: When the row was recorded (seconds since the epoch); 0 when recording means "now".
    recorded_at: float = 0.0
    #: This result was slower than the previous one on its branch beyond the threshold.
    regression: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan


def _result(row: sqlite3.Row) -> BenchmarkResult:
    return BenchmarkResult(
        repo=row["repo"],
        sha=row["sha"],
        branch=row["branch"],
        machine_type=row["machine_type"],
        metric=row["metric"],
        unit=row["unit"],
        values=tuple(float(v) for v in json.loads(row["value_list"])),
        run_id=row["run_id"],
        pull_number=row["pull_number"],
        recorded_at=row["recorded_at"],
        regression=bool(row["regression"]),
    )


_COLUMNS = (
    "repo, sha, branch, machine_type, metric, unit, value_list, run_id, pull_number,"
    " recorded_at, regression"
)


def record_results(
    conn: sqlite3.Connection, rows: Sequence[BenchmarkResult], now: float | None = None
) -> None:
    """Writes each (run, commit, machine type, metric)'s row, replacing one recorded before.

    A row whose `recorded_at` is 0 is stamped `now`; a replaced row keeps its first time, so a
    report repeated after a restart does not move a point on the charts.
    """
    at = time.time() if now is None else now
    for row in rows:
        if not row.values or not all(math.isfinite(v) for v in row.values):
            raise ValueError(f"{row.metric}: values must be finite numbers, got {row.values!r}")
    conn.executemany(
        f"INSERT INTO benchmark_results ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
        " ON CONFLICT (run_id, sha, machine_type, metric) DO UPDATE SET repo = excluded.repo,"
        " branch = excluded.branch, unit = excluded.unit, value_list = excluded.value_list,"
        " pull_number = excluded.pull_number, regression = excluded.regression",
        [
            (
                r.repo,
                r.sha,
                r.branch,
                r.machine_type,
                r.metric,
                r.unit,
                json.dumps(list(r.values)),
                r.run_id,
                r.pull_number,
                r.recorded_at or at,
                int(r.regression),
            )
            for r in rows
        ],
    )


def results_of(conn: sqlite3.Connection, run_id: int) -> list[BenchmarkResult]:
    """What one run recorded, by machine type and metric."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM benchmark_results WHERE run_id = ?"  # noqa: S608
        " ORDER BY machine_type, metric, sha",
        (run_id,),
    ).fetchall()
    return [_result(row) for row in rows]


def latest_before(
    conn: sqlite3.Connection, repo: str, branch: str, machine_type: str, before_run_id: int
) -> list[BenchmarkResult]:
    """The results of the newest push run before `before_run_id` that recorded any on `branch`
    and `machine_type`: what a push is compared with. [] when there is none."""
    row = conn.execute(
        "SELECT MAX(run_id) FROM benchmark_results INDEXED BY benchmark_results_branch"
        " WHERE repo = ? AND branch = ? AND machine_type = ? AND pull_number IS NULL"
        " AND run_id < ?",
        (repo, branch, machine_type, before_run_id),
    ).fetchone()
    if row[0] is None:
        return []
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM benchmark_results"  # noqa: S608
        " WHERE run_id = ? AND repo = ? AND branch = ? AND machine_type = ?"
        " AND pull_number IS NULL ORDER BY metric",
        (row[0], repo, branch, machine_type),
    ).fetchall()
    return [_result(r) for r in rows]


def benchmark_series(
    conn: sqlite3.Connection,
    repo: str,
    *,
    metric: str | None = None,
    branch: str | None = None,
    machine_type: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = SERIES_LIMIT,
) -> list[BenchmarkResult]:
    """`repo`'s results, oldest first: the newest `limit` rows that match every filter given.

    `since` and `until` bound `recorded_at` (seconds since the epoch, both inclusive). Rows of
    one time are ordered by run, machine type and metric, so a page drawn twice is the same.
    """
    clauses = ["repo = ?"]
    params: list[object] = [repo]
    for column, value in (("metric", metric), ("branch", branch), ("machine_type", machine_type)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        clauses.append("recorded_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("recorded_at <= ?")
        params.append(until)
    params.append(max(0, limit))
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM benchmark_results WHERE {' AND '.join(clauses)}"  # noqa: S608
        " ORDER BY recorded_at DESC, run_id DESC, machine_type DESC, metric DESC, sha DESC"
        " LIMIT ?",
        params,
    ).fetchall()
    return [_result(row) for row in reversed(rows)]


def benchmark_metrics(conn: sqlite3.Connection, repo: str) -> list[tuple[str, str]]:
    """Each (metric, unit) `repo` has recorded, by name: what a page offers to filter by."""
    rows = conn.execute(
        "SELECT DISTINCT metric, unit FROM benchmark_results WHERE repo = ? ORDER BY metric, unit",
        (repo,),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


# ---------------------------------------------------------------------- what a chart reads

#: A row's repeats as a chart draws them: (lowest, median, highest, how many).
Summary = tuple[float, float, float, int]
#: Summaries by the stored text of the values they summarise. A chart of a thousand commits
#: reads every repeat of twenty thousand rows, and decoding that JSON again on every view costs
#: more than the whole page may take; keyed by the text itself, a row recorded again with other
#: values is decoded afresh. Bounded (about 30 MB when full, five repositories' charts):
#: emptied when full, and refilled by the next views.
_SUMMARIES: dict[str, Summary] = {}
MAX_SUMMARIES = 100_000


def _summary_of(text: str) -> Summary:
    values = sorted(float(v) for v in json.loads(text))
    n = len(values)
    middle = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    if len(_SUMMARIES) >= MAX_SUMMARIES:
        _SUMMARIES.clear()
    found = _SUMMARIES[text] = (values[0], middle, values[-1], n)
    return found


@dataclass(frozen=True)
class BranchRows:
    """A branch's own results (no pull request's), a column per field, in no order: a chart
    reads tens of thousands of rows, which as columns are a few objects a field instead of a
    dataclass a row."""

    metric: Sequence[str] = ()
    unit: Sequence[str] = ()
    machine_type: Sequence[str] = ()
    sha: Sequence[str] = ()
    run_id: Sequence[int] = ()
    recorded_at: Sequence[float] = ()
    regression: Sequence[int] = ()
    summary: Sequence[Summary] = ()

    def __len__(self) -> int:
        return len(self.metric)


def chart_branches(conn: sqlite3.Connection, repo: str, limit: int = 50) -> list[str]:
    """The branches with results of their own (pushes, scheduled runs), the one measured last
    first: the default branch, unless it was renamed since."""
    rows = conn.execute(
        "SELECT branch FROM benchmark_results WHERE repo = ? AND pull_number IS NULL"
        " GROUP BY branch ORDER BY MAX(run_id) DESC LIMIT ?",
        (repo, limit),
    ).fetchall()
    return [row[0] for row in rows]


def metric_names(conn: sqlite3.Connection, repo: str, limit: int = 500) -> list[str]:
    """The first `limit` names of `repo`'s metrics, by name: a page's choice of metrics, read
    from the series index alone."""
    rows = conn.execute(
        "SELECT DISTINCT metric FROM benchmark_results WHERE repo = ? ORDER BY metric LIMIT ?",
        (repo, limit),
    ).fetchall()
    return [row[0] for row in rows]


def branch_rows(
    conn: sqlite3.Connection,
    repo: str,
    branch: str,
    *,
    runs: int,
    metrics: Sequence[str] = (),
) -> BranchRows:
    """What the newest `runs` runs on `branch` recorded (of `metrics` only, when named), their
    repeats summarised: all a chart of the branch draws, in one read.

    SQLite hands over a row per run, its metrics gathered, rather than a row per result: a
    thousand small rows instead of twenty thousand, each of which the garbage collector would
    otherwise count while the page is read. Each row's time is its run's first."""
    cursor = conn.cursor()
    cursor.row_factory = None
    found = cursor.execute(
        "SELECT run_id FROM benchmark_results WHERE repo = ? AND branch = ?"
        " AND pull_number IS NULL GROUP BY run_id ORDER BY run_id DESC LIMIT 1 OFFSET ?",
        (repo, branch, max(0, runs - 1)),
    ).fetchone()
    wanted = list(metrics)
    chosen = f" AND metric IN ({', '.join('?' * len(wanted))})" if wanted else ""
    # Grouped in the order of `benchmark_results_branch`, so without a sort. A value list is
    # JSON numbers, which never hold the record separator (char 30) it is joined with.
    found_runs = cursor.execute(
        "SELECT machine_type, run_id, MIN(sha), MAX(sha), json_group_array(sha),"  # noqa: S608
        " MIN(recorded_at), json_group_array(metric), json_group_array(unit),"
        " group_concat(regression, ''), group_concat(value_list, char(30))"
        " FROM benchmark_results WHERE repo = ? AND branch = ? AND pull_number IS NULL"
        f" AND run_id >= ?{chosen} GROUP BY machine_type, run_id",
        (repo, branch, found[0] if found else 0, *wanted),
    ).fetchall()
    metric: list[str] = []
    unit: list[str] = []
    machine_types: list[str] = []
    sha: list[str] = []
    run_ids: list[int] = []
    recorded_at: list[float] = []
    regression: list[int] = []
    texts: list[str] = []
    for row in found_runs:
        machine_type, run_id, low_sha, high_sha, shas, at = row[:6]
        names, units, flags, values = row[6:]
        count = len(flags)
        metric += json.loads(names)
        unit += json.loads(units)
        machine_types += [machine_type] * count
        sha += [low_sha] * count if low_sha == high_sha else json.loads(shas)
        run_ids += [run_id] * count
        recorded_at += [at] * count
        regression += map(int, flags)
        texts += values.split("\x1e")
    summaries = list(map(_SUMMARIES.get, texts))
    if None in summaries:  # the first view after new results: those are decoded, once
        summaries = [
            known or _summary_of(text) for known, text in zip(summaries, texts, strict=True)
        ]
    return BranchRows(metric, unit, machine_types, sha, run_ids, recorded_at, regression, summaries)


def pull_results_from(
    conn: sqlite3.Connection,
    repo: str,
    *,
    first_run: int,
    metrics: Sequence[str] = (),
    limit: int = 500,
) -> list[BenchmarkResult]:
    """Pull requests' results of runs from `first_run` on (of `metrics` only, when named): the
    newest `limit`, oldest first."""
    wanted = list(metrics)
    chosen = f" AND metric IN ({', '.join('?' * len(wanted))})" if wanted else ""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM benchmark_results"  # noqa: S608
        # `+repo`: walk the runs newest first (the primary key) and stop at `limit`, rather
        # than every result of the repository through the series index.
        f" WHERE run_id >= ? AND +repo = ? AND pull_number IS NOT NULL{chosen}"
        " ORDER BY run_id DESC LIMIT ?",
        (first_run, repo, *wanted, max(0, limit)),
    ).fetchall()
    return [_result(row) for row in reversed(rows)]


def results_version(conn: sqlite3.Connection, repo: str) -> tuple[int, int, float, float]:
    """A value that changes whenever a result of `repo` is recorded or removed, read from an
    index alone: what a page's cache of its chart is checked against. (A run recording the same
    rows again replaces them in place and keeps this value.)"""
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(MAX(rowid), 0), TOTAL(rowid), TOTAL(recorded_at)"
        " FROM benchmark_results INDEXED BY benchmark_results_series WHERE repo = ?",
        (repo,),
    ).fetchone()
    return (row[0], row[1], row[2], row[3])
