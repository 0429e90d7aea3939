"""Benchmark results: every repeat's value of each metric, per repository, commit, branch and
machine type, with the run that measured it.

One row per (run, commit, machine type, metric): a run that measures a commit twice (a pull
request's head and base) keeps both, and a reporter that records the same run again after a
restart replaces its own rows instead of adding more. Pushes have no `pull_number`; the
comparison on a branch is with the newest earlier run that recorded anything there, so a push
whose benchmark failed is skipped over rather than read as "every metric vanished".

Beside its values a row keeps their summary (lowest, median, highest, how many), which is all a
chart draws of it. A row is never changed in place: recorded again, it is a new row with a new
id, and ids only grow. So a branch read for a chart is kept and, after a push, only the push's
rows are read; results once read are known by id.
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
import threading
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

#: The most rows `benchmark_series` returns unless told otherwise: 1,000 commits × 20 metrics.
SERIES_LIMIT = 20_000


T = TypeVar("T")

#: A result's repeats as a chart draws them: (lowest, median, highest, how many).
Summary = tuple[float, float, float, int]


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


def summary_of(values: Sequence[float]) -> Summary:
    """(lowest, median, highest, how many) of a result's repeats: what a chart draws of it,
    stored beside the values so that drawing a thousand commits decodes none of them."""
    ordered = sorted(values)
    n = len(ordered)
    middle = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return (ordered[0], middle, ordered[-1], n)


def record_results(
    conn: sqlite3.Connection, rows: Sequence[BenchmarkResult], now: float | None = None
) -> None:
    """Writes each (run, commit, machine type, metric)'s row, replacing one recorded before.

    A row whose `recorded_at` is 0 is stamped `now`; a replaced row keeps its first time, so a
    report repeated after a restart does not move a point on the charts. A replaced row gets a
    new id, so readers that compare a branch's rows by count and highest id see the change.
    """
    at = time.time() if now is None else now
    for row in rows:
        if not row.values or not all(math.isfinite(v) for v in row.values):
            raise ValueError(f"{row.metric}: values must be finite numbers, got {row.values!r}")
    conn.executemany(
        "INSERT OR REPLACE INTO benchmark_results (repo, sha, branch, machine_type, metric, unit,"
        " value_list, value_low, value_median, value_high, value_count, run_id, pull_number,"
        " recorded_at, regression) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE("
        "(SELECT recorded_at FROM benchmark_results WHERE run_id = ? AND sha = ?"
        " AND machine_type = ? AND metric = ?), ?), ?)",
        [
            (
                r.repo,
                r.sha,
                r.branch,
                r.machine_type,
                r.metric,
                r.unit,
                json.dumps(list(r.values)),
                *summary_of(r.values),
                r.run_id,
                r.pull_number,
                r.run_id,
                r.sha,
                r.machine_type,
                r.metric,
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


@dataclass(frozen=True)
class BranchRows:
    """A branch's own results (no pull request's), a column per field: a chart reads tens of
    thousands of rows, which as columns are a few objects a field instead of a dataclass a row.
    `branch_rows` gives them in the order of their runs; a chart takes them in any order."""

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
    first: the default branch, unless it was renamed since.

    Each branch is found by one step along `benchmark_results_chart` from the one before, and
    its newest run by one more: a few lookups a branch, however many results it has."""
    rows = conn.execute(
        "WITH RECURSIVE found(branch) AS ("
        " SELECT MIN(branch) FROM benchmark_results INDEXED BY benchmark_results_chart"
        " WHERE repo = ?1 AND pull_number IS NULL"
        " UNION ALL SELECT (SELECT MIN(branch) FROM benchmark_results"
        " INDEXED BY benchmark_results_chart"
        " WHERE repo = ?1 AND pull_number IS NULL AND branch > found.branch)"
        " FROM found WHERE found.branch IS NOT NULL)"
        " SELECT branch FROM found WHERE branch IS NOT NULL"
        " ORDER BY (SELECT MAX(run_id) FROM benchmark_results INDEXED BY benchmark_results_chart"
        " WHERE repo = ?1 AND branch = found.branch AND pull_number IS NULL) DESC, branch"
        " LIMIT ?2",
        (repo, limit),
    ).fetchall()
    return [row[0] for row in rows]


def metric_names(conn: sqlite3.Connection, repo: str, limit: int = 500) -> list[str]:
    """The first `limit` names of `repo`'s metrics, by name: a page's choice of metrics, each
    found by one step along the series index from the one before."""
    rows = conn.execute(
        "WITH RECURSIVE found(metric) AS ("
        " SELECT MIN(metric) FROM benchmark_results INDEXED BY benchmark_results_series"
        " WHERE repo = ?1"
        " UNION ALL SELECT (SELECT MIN(metric) FROM benchmark_results"
        " INDEXED BY benchmark_results_series WHERE repo = ?1 AND metric > found.metric)"
        " FROM found WHERE found.metric IS NOT NULL)"
        " SELECT metric FROM found WHERE metric IS NOT NULL LIMIT ?2",
        (repo, max(0, limit)),
    ).fetchall()
    return [row[0] for row in rows]


#: What a chart reads of a result, all of it in `benchmark_results_chart`, and that index's
#: order.
_CHART_ROW = (
    "metric, unit, machine_type, sha, run_id, recorded_at, regression,"
    " value_low, value_median, value_high, value_count"
)
_CHART_ORDER = "run_id, machine_type, metric, unit, sha"


@dataclass(frozen=True)
class _Read:
    """A branch's rows as read last, with what tells whether they are still what the branch
    holds: how many rows it had (of any metric) and the highest id among them. Ids only grow
    and a result recorded again gets a new one, so when the rows above that id make up the
    whole difference in count, nothing but them was added (and nothing at all when there are
    none)."""

    count: int
    last_id: int
    #: The runs on the branch (of any metric) from the first one read on, oldest first.
    window: tuple[int, ...]
    rows: BranchRows


ReadKey = tuple[str, str, int, tuple[str, ...]]


@dataclass
class _Kept:
    """What is kept of one connection's results between views: branches as read last (by
    repository, branch, runs and metrics; the least recently read goes first), and results by
    id. A result never changes under its id (recorded again, it gets a new one), so one read
    before is one known."""

    #: Held so that no other connection can take its id while this is kept.
    conn: sqlite3.Connection
    reads: OrderedDict[ReadKey, _Read] = field(default_factory=OrderedDict)
    results: dict[int, BenchmarkResult] = field(default_factory=dict)


#: By connection, the few used lately: a chart after a push reads that push's rows, not the
#: thousand runs before it. Bounded: a branch read is a few MB for a thousand runs of twenty
#: metrics, and results by id are emptied when `MAX_KEPT_RESULTS` are known.
_KEPT: OrderedDict[int, _Kept] = OrderedDict()
_KEPT_LOCK = threading.Lock()
MAX_CONNECTIONS = 4
MAX_READS = 8
MAX_KEPT_RESULTS = 20_000


def _kept(conn: sqlite3.Connection) -> _Kept:
    with _KEPT_LOCK:
        kept = _KEPT.get(id(conn))
        if kept is None or kept.conn is not conn:
            kept = _KEPT[id(conn)] = _Kept(conn)
        _KEPT.move_to_end(id(conn))
        while len(_KEPT) > MAX_CONNECTIONS:
            _KEPT.popitem(last=False)
        return kept


def branch_rows(
    conn: sqlite3.Connection,
    repo: str,
    branch: str,
    *,
    runs: int,
    metrics: Sequence[str] = (),
) -> BranchRows:
    """What the newest `runs` runs on `branch` recorded (of `metrics` only, when named), their
    repeats summarised, in the order of their runs: all a chart of the branch draws.

    The rows read last for the same question are kept: when the branch has only gained rows of
    newer runs since, just those are read and the oldest runs dropped, so a chart after a push
    reads twenty rows rather than twenty thousand. Read in one transaction, so what is kept is
    one state of the branch."""
    wanted = tuple(dict.fromkeys(metrics))
    key = (repo, branch, runs, wanted)
    memo = _kept(conn)
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        cursor = conn.cursor()
        cursor.row_factory = None
        (count,) = cursor.execute(
            "SELECT COUNT(*) FROM benchmark_results INDEXED BY benchmark_results_branch"
            " WHERE repo = ? AND branch = ? AND pull_number IS NULL",
            (repo, branch),
        ).fetchone()
        with _KEPT_LOCK:
            kept = memo.reads.get(key)
        read = None
        if kept is not None and count >= kept.count:
            read = _added(cursor, kept, repo, branch, count, runs, wanted)
        if read is None:
            read = _read_whole(cursor, repo, branch, count, runs, wanted)
    finally:
        if own:
            conn.execute("COMMIT")
    with _KEPT_LOCK:
        memo.reads[key] = read
        memo.reads.move_to_end(key)
        while len(memo.reads) > MAX_READS:
            memo.reads.popitem(last=False)
    return read.rows


def _read_whole(
    cursor: sqlite3.Cursor,
    repo: str,
    branch: str,
    count: int,
    runs: int,
    wanted: tuple[str, ...],
) -> _Read:
    (last_id,) = cursor.execute(
        "SELECT COALESCE(MAX(id), 0) FROM benchmark_results INDEXED BY benchmark_results_branch"
        " WHERE repo = ? AND branch = ? AND pull_number IS NULL",
        (repo, branch),
    ).fetchone()
    found = cursor.execute(
        "SELECT DISTINCT run_id FROM benchmark_results INDEXED BY benchmark_results_chart"
        " WHERE repo = ? AND branch = ? AND pull_number IS NULL"
        " ORDER BY run_id DESC LIMIT 1 OFFSET ?",
        (repo, branch, max(0, runs - 1)),
    ).fetchone()
    first_run = found[0] if found else 0
    chosen = f" AND metric IN ({', '.join('?' * len(wanted))})" if wanted else ""
    rows = _columns(
        cursor.execute(
            f"SELECT {_CHART_ROW} FROM benchmark_results"  # noqa: S608
            " INDEXED BY benchmark_results_chart"
            f" WHERE repo = ? AND branch = ? AND pull_number IS NULL AND run_id >= ?{chosen}"
            f" ORDER BY {_CHART_ORDER}",
            (repo, branch, first_run, *wanted),
        ).fetchall()
    )
    if wanted:
        window = tuple(
            row[0]
            for row in cursor.execute(
                "SELECT DISTINCT run_id FROM benchmark_results INDEXED BY benchmark_results_chart"
                " WHERE repo = ? AND branch = ? AND pull_number IS NULL AND run_id >= ?"
                " ORDER BY run_id",
                (repo, branch, first_run),
            )
        )
    else:
        window = tuple(dict.fromkeys(rows.run_id))
    return _Read(count, last_id, window, rows)


def _added(
    cursor: sqlite3.Cursor,
    kept: _Read,
    repo: str,
    branch: str,
    count: int,
    runs: int,
    wanted: tuple[str, ...],
) -> _Read | None:
    """`kept`, with the rows added since and without the runs that fell out of the newest
    `runs`; None unless the branch only gained rows, all of runs newer than `kept`'s (a run that
    records again, or late, is read whole)."""
    added = cursor.execute(
        f"SELECT {_CHART_ROW}, id FROM benchmark_results NOT INDEXED"  # noqa: S608
        " WHERE id > ? AND repo = ? AND branch = ? AND pull_number IS NULL"
        f" ORDER BY {_CHART_ORDER}",
        (kept.last_id, repo, branch),
    ).fetchall()
    if len(added) != count - kept.count:
        return None  # some were removed, or recorded again
    if not added:
        return kept
    new_runs = tuple(dict.fromkeys(row[4] for row in added))
    if kept.window and new_runs[0] <= kept.window[-1]:
        return None
    newest = max(1, runs)  # as the read of the whole branch counts them
    window = (kept.window + new_runs)[-newest:]
    first_run = window[0] if len(window) == newest else 0
    chosen = set(wanted)
    new = _columns([row[:-1] for row in added if not wanted or row[0] in chosen])
    old = kept.rows
    start = bisect_left(old.run_id, first_run)
    rows = BranchRows(
        *(
            _joined(old_column, start, new_column)
            for old_column, new_column in zip(_fields(old), _fields(new), strict=True)
        )
    )
    last_id = max(row[-1] for row in added)
    return _Read(count, last_id, window, rows)


def _joined(old: Sequence[T], start: int, new: Sequence[T]) -> list[T]:
    """`old` from `start` on, then `new`: a new list, as a page may still draw `old`."""
    joined = list(old[start:])
    joined += new
    return joined


def _fields(rows: BranchRows) -> tuple[Sequence[Any], ...]:
    return (
        rows.metric,
        rows.unit,
        rows.machine_type,
        rows.sha,
        rows.run_id,
        rows.recorded_at,
        rows.regression,
        rows.summary,
    )


def _columns(found: list[tuple[Any, ...]]) -> BranchRows:
    """Rows as columns, each row's time its run's first on its machine type."""
    if not found:
        return BranchRows()
    metric, unit, machine_type, sha, run_id, at, regression, low, median, high, n = map(
        list, zip(*found, strict=True)
    )
    # Equal names as one object each: a chart compares whole columns, which is then a
    # comparison of references.
    same: dict[str, str] = {}
    metric, unit, machine_type, sha = (
        list(map(same.setdefault, column, column)) for column in (metric, unit, machine_type, sha)
    )
    times = at
    distinct = set(zip(run_id, machine_type, at, strict=True))
    if len(distinct) > len({(run, machine) for run, machine, _ in distinct}):
        # Some run recorded at several times: the earliest wins.
        first = {(run, machine): when for run, machine, when in sorted(distinct, reverse=True)}
        times = list(map(first.__getitem__, zip(run_id, machine_type, strict=True)))
    summary = list(zip(low, median, high, n, strict=True))
    return BranchRows(metric, unit, machine_type, sha, run_id, times, regression, summary)


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
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM benchmark_results INDEXED BY benchmark_results_pulls"  # noqa: S608
            f" WHERE repo = ? AND pull_number IS NOT NULL AND run_id >= ?{chosen}"
            " ORDER BY run_id DESC, sha DESC, machine_type DESC, metric DESC LIMIT ?",
            (repo, first_run, *wanted, max(0, limit)),
        )
    ]
    return _results_by_id(conn, ids[::-1])


def _results_by_id(conn: sqlite3.Connection, ids: Sequence[int]) -> list[BenchmarkResult]:
    """The results of `ids`, in that order; those read before are not decoded again."""
    memo = _kept(conn)
    known = memo.results
    missing = [i for i in ids if i not in known]
    if len(known) + len(missing) > MAX_KEPT_RESULTS:
        known = memo.results = {}
        missing = list(ids)
    for start in range(0, len(missing), 500):
        chunk = missing[start : start + 500]
        for row in conn.execute(
            f"SELECT id, {_COLUMNS} FROM benchmark_results"  # noqa: S608
            f" WHERE id IN ({', '.join('?' * len(chunk))})",
            chunk,
        ):
            known[row["id"]] = _result(row)
    return [known[i] for i in ids if i in known]  # one removed meanwhile is left out


def results_version(conn: sqlite3.Connection, repo: str) -> tuple[int, int]:
    """A value that changes whenever a result of `repo` is recorded (again) or removed, read
    from an index alone: what a page's cache of its chart is checked against. Ids only grow and
    a result recorded again gets a new one, so the count and the highest id tell every change."""
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(MAX(id), 0)"
        " FROM benchmark_results INDEXED BY benchmark_results_recent WHERE repo = ?",
        (repo,),
    ).fetchone()
    return (row[0], row[1])
