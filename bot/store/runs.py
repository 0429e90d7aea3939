"""Runs and jobs as the store keeps them: the queue, ends, recovery, listings and blobs.

Plain functions over a connection, like `deliveries`: the job system runs them through
`Store.call`, the pages and the command line through `Store.call_sync` or a read, so a rule about
runs (who may list a private one, which job is next) is written once. Every state change of a run
bumps its `version`; the job system reports a run until `reported_version` catches up.

Blobs (a job's log, JUnit XML, per-test results) are zlib-compressed and cut to the job's
`JobLimits` here, where they are written, so no caller can store an unbounded one.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.jobs.records import (
    ACTIVE_RUN_STATES,
    MAX_ATTEMPTS,
    REQUEUED_REASON,
    RESTART_REASON,
    STOPPED_REASON,
    FailedTest,
    JobLimits,
    JobRecord,
    ReportState,
    RunFilter,
    RunRecord,
    RunState,
    Snapshot,
)
from bot.jobs.runners.base import JobOutcome
from bot.jobs.runners.junit import TestResult

_RUN_COLUMNS = (
    "id, kind, key, repo, number, head_sha, base_ref, requested_by, requested_at, state,"
    " reason, spec, superseded_by, version, reported_version, created_at, started_at,"
    " finished_at, private, runner"
)
_JOB_COLUMNS = (
    "id, run_id, kind, name, spec, state, attempts, passed, failed, skipped, errors,"
    " duration_s, busy_s, reason, failures, failed_tests, tested_sha, exit_code, timings,"
    " created_at, started_at, finished_at, result"
)
#: The columns `job_blob` reads: the three a job's page or report opens one at a time.
BLOB_COLUMNS = ("log", "junit", "results")


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        kind=row["kind"],
        key=row["key"],
        repo=row["repo"],
        number=row["number"],
        head_sha=row["head_sha"],
        base_ref=row["base_ref"],
        requested_by=row["requested_by"],
        requested_at=row["requested_at"],
        state=row["state"],
        reason=row["reason"],
        spec=json.loads(row["spec"]),
        superseded_by=row["superseded_by"],
        version=row["version"],
        reported_version=row["reported_version"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        private=bool(row["private"]),
        runner=row["runner"],
    )


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        run_id=row["run_id"],
        kind=row["kind"],
        name=row["name"],
        spec=json.loads(row["spec"]),
        state=row["state"],
        attempts=row["attempts"],
        passed=row["passed"],
        failed=row["failed"],
        skipped=row["skipped"],
        errors=row["errors"],
        duration_s=row["duration_s"],
        busy_s=row["busy_s"],
        reason=row["reason"],
        failures=tuple(FailedTest(*f) for f in json.loads(row["failures"])),
        failed_tests=tuple(json.loads(row["failed_tests"])),
        tested_sha=row["tested_sha"],
        exit_code=row["exit_code"],
        timings=json.loads(row["timings"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        result=json.loads(row["result"]) if row["result"] else None,
    )


# ---------------------------------------------------------------------- reads


def read_run(conn: sqlite3.Connection, run_id: int) -> RunRecord | None:
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()  # noqa: S608
    return _run(row) if row else None


def read_jobs(conn: sqlite3.Connection, run_id: int) -> list[JobRecord]:
    rows = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM jobs INDEXED BY jobs_run WHERE run_id = ? ORDER BY id",  # noqa: S608
        (run_id,),
    ).fetchall()
    return [_job(row) for row in rows]


def read_job(conn: sqlite3.Connection, job_id: int) -> JobRecord | None:
    row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()  # noqa: S608
    return _job(row) if row else None


def snapshot(conn: sqlite3.Connection, run_id: int) -> Snapshot | None:
    run = read_run(conn, run_id)
    return (run, read_jobs(conn, run_id)) if run else None


def list_runs(
    conn: sqlite3.Connection, where: RunFilter, *, before: int | None = None, limit: int = 50
) -> list[RunRecord]:
    """Newest first, `limit` at most, with ids below `before` (the next page's cursor)."""
    sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE 1"  # noqa: S608
    args: list[Any] = []
    if where.kind is not None:
        sql += " AND kind = ?"
        args.append(where.kind)
    if where.repo is not None:
        sql += " AND repo = ?"
        args.append(where.repo)
    if where.number is not None:
        sql += " AND number = ?"
        args.append(where.number)
    if where.states is not None:
        sql += f" AND state IN ({','.join('?' * len(where.states))})"
        args.extend(where.states)
    if where.visible is not None:
        repos = sorted(where.visible)
        sql += " AND (private = 0"
        if repos:
            sql += f" OR repo IN ({','.join('?' * len(repos))})"
            args.extend(repos)
        sql += ")"
    if before is not None:
        sql += " AND id < ?"
        args.append(before)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    return [_run(row) for row in conn.execute(sql, args)]


def runs_of(
    conn: sqlite3.Connection,
    repo: str,
    number: int | None,
    *,
    kind: str | None = None,
    states: Sequence[str] | None = None,
    limit: int = 50,
    newest: bool = True,
) -> list[RunRecord]:
    """The runs of one pull request (or of a repository's pushes, with no number)."""
    sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE repo = ? AND number IS ?"  # noqa: S608
    args: list[Any] = [repo, number]
    if kind is not None:
        sql += " AND kind = ?"
        args.append(kind)
    if states is not None:
        sql += f" AND state IN ({','.join('?' * len(states))})"
        args.extend(states)
    sql += f" ORDER BY id {'DESC' if newest else 'ASC'} LIMIT ?"
    args.append(limit)
    return [_run(row) for row in conn.execute(sql, args)]


def private_repos(conn: sqlite3.Connection) -> list[str]:
    """Repositories with private runs: the ones a viewer's access is asked for."""
    return [row[0] for row in conn.execute("SELECT DISTINCT repo FROM runs WHERE private != 0")]


def jobs_of_runs(conn: sqlite3.Connection, run_ids: Sequence[int]) -> dict[int, list[JobRecord]]:
    out: dict[int, list[JobRecord]] = {run_id: [] for run_id in run_ids}
    for start in range(0, len(run_ids), 500):
        chunk = list(run_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE run_id IN ({marks}) ORDER BY id",  # noqa: S608
            chunk,
        )
        for row in rows:
            out[row["run_id"]].append(_job(row))
    return out


def unsettled_runs(conn: sqlite3.Connection) -> list[int]:
    """Runs still active or with a change not yet reported: what a one-shot process waits for."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT id FROM runs WHERE state IN ('queued', 'running') OR reported_version < version"
        )
    ]


def queue_position(conn: sqlite3.Connection, run_id: int) -> int:
    """1 when the run's next job is the next to start; 0 when none of its jobs is waiting."""
    first = conn.execute(
        "SELECT MIN(id) FROM jobs INDEXED BY jobs_run WHERE run_id = ? AND state = 'queued'",
        (run_id,),
    ).fetchone()[0]
    if first is None:
        return 0
    return conn.execute(
        "SELECT COUNT(*) FROM jobs INDEXED BY jobs_state WHERE state = 'queued' AND id <= ?",
        (first,),
    ).fetchone()[0]


def past_durations(
    conn: sqlite3.Connection, repo: str, kind: str, names: Iterable[str], limit: int = 10
) -> dict[str, list[float]]:
    """Seconds the newest jobs of each name of `repo` took, waiting for a machine not counted:
    another repository's `models/bert` is other tests on other hardware."""
    out: dict[str, list[float]] = {}
    for name in dict.fromkeys(names):
        rows = conn.execute(
            "SELECT jobs.busy_s FROM jobs JOIN runs ON runs.id = jobs.run_id"
            " WHERE jobs.kind = ? AND jobs.name = ? AND runs.repo = ?"
            " AND jobs.state IN ('passed', 'failed', 'timed_out') AND jobs.busy_s IS NOT NULL"
            " ORDER BY jobs.id DESC LIMIT ?",
            (kind, name, repo, limit),
        ).fetchall()
        if rows:
            out[name] = [row[0] for row in rows]
    return out


def job_blob(conn: sqlite3.Connection, job_id: int, column: str) -> str | None:
    """One of a job's blobs as text: its log, its JUnit XML or its per-test results (JSON)."""
    if column not in BLOB_COLUMNS:
        raise ValueError(f"not a job blob: {column}")
    row = conn.execute(f"SELECT {column} FROM jobs WHERE id = ?", (job_id,)).fetchone()  # noqa: S608
    return unzip(row[0]) if row else None


# ---------------------------------------------------------------------- a feature's memory


def read_report_state(conn: sqlite3.Connection, run_id: int) -> ReportState | None:
    row = conn.execute("SELECT report_state FROM runs WHERE id = ?", (run_id,)).fetchone()
    return ReportState.from_json(json.loads(row[0])) if row else None


def swap_report_state(
    conn: sqlite3.Connection, run_id: int, expected: ReportState, new: ReportState
) -> bool:
    """Writes `new` only while the stored state is still `expected`; False (nothing written)
    when another writer changed it first, or the run does not exist.

    The read and the write share the caller's transaction, which holds SQLite's write lock
    from its first statement (`BEGIN IMMEDIATE`), so no other writer, in this process or
    another, comes between them.
    """
    if read_report_state(conn, run_id) != expected:
        return False
    conn.execute(
        "UPDATE runs SET report_state = ? WHERE id = ?", (json.dumps(new.to_json()), run_id)
    )
    return True


# ---------------------------------------------------------------------- changes


def _bump(conn: sqlite3.Connection, run_id: int) -> None:
    conn.execute("UPDATE runs SET version = version + 1 WHERE id = ?", (run_id,))


def _finish_if_done(conn: sqlite3.Connection, run_id: int, now: float) -> None:
    """A run whose jobs have all ended is finished, unless it was ended another way first."""
    left = conn.execute(
        "SELECT COUNT(*) FROM jobs INDEXED BY jobs_run"
        " WHERE run_id = ? AND state IN ('queued', 'running')",
        (run_id,),
    ).fetchone()[0]
    if left == 0:
        conn.execute(
            "UPDATE runs SET state = 'finished', finished_at = ?"
            " WHERE id = ? AND state IN ('queued', 'running')",
            (now, run_id),
        )


def insert_run(
    conn: sqlite3.Connection,
    *,
    kind: str,
    repo: str,
    number: int | None,
    head_sha: str,
    base_ref: str | None,
    requested_by: str | None,
    requested_at: float,
    private: bool,
    runner: str,
    spec: Mapping[str, Any],
    jobs: Sequence[tuple[str, Mapping[str, Any]]],
    key: str | None,
    now: float,
) -> tuple[int, bool]:
    """Returns the run's id and whether it is new (False: a run with this key exists)."""
    if key is not None:
        row = conn.execute("SELECT id FROM runs WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0], False
    cur = conn.execute(
        "INSERT INTO runs (kind, key, repo, number, head_sha, base_ref, requested_by,"
        " requested_at, private, runner, spec, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?)",
        (
            kind,
            key,
            repo,
            number,
            head_sha,
            base_ref,
            requested_by,
            requested_at,
            int(private),
            runner,
            json.dumps(dict(spec)),
            now,
        ),
    )
    run_id = cur.lastrowid
    assert run_id is not None
    conn.executemany(
        "INSERT INTO jobs (run_id, kind, name, spec, created_at) VALUES (?, ?, ?, ?, ?)",
        [(run_id, kind, name, json.dumps(dict(job_spec)), now) for name, job_spec in jobs],
    )
    return run_id, True


def end_run(
    conn: sqlite3.Connection,
    run_id: int,
    *,
    state: RunState,
    reason: str,
    superseded_by: int | None,
    now: float,
) -> list[int]:
    """Ends an active run: its queued jobs are cancelled; returns the jobs still running.

    The running ones end when their runner has stopped them, with what the runner reports.
    """
    changed = conn.execute(
        "UPDATE runs SET state = ?, reason = ?, superseded_by = ?, finished_at = ?,"
        " version = version + 1 WHERE id = ? AND state IN ('queued', 'running')",
        (state, reason, superseded_by, now, run_id),
    ).rowcount
    if not changed:
        return []
    conn.execute(
        "UPDATE jobs SET state = 'cancelled', reason = ?, finished_at = ?"
        " WHERE run_id = ? AND state = 'queued'",
        (reason, now, run_id),
    )
    return [
        row[0]
        for row in conn.execute(
            "SELECT id FROM jobs WHERE run_id = ? AND state = 'running' ORDER BY id", (run_id,)
        )
    ]


def supersede_older(
    conn: sqlite3.Connection, run_id: int, now: float
) -> tuple[list[Snapshot], list[int]]:
    """Cancels the older active runs of the same kind on the same pull request as `run_id`;
    returns them as they ended and the jobs of theirs still running (to be stopped)."""
    run = read_run(conn, run_id)
    assert run is not None
    older = conn.execute(
        "SELECT id FROM runs WHERE repo = ? AND number IS ? AND kind = ? AND id < ?"
        " AND state IN ('queued', 'running') ORDER BY id",
        (run.repo, run.number, run.kind, run_id),
    ).fetchall()
    ended: list[Snapshot] = []
    running: list[int] = []
    for (old,) in older:
        running += end_run(
            conn,
            old,
            state="cancelled",
            reason=f"superseded by run {run_id}",
            superseded_by=run_id,
            now=now,
        )
        snap = snapshot(conn, old)
        assert snap is not None
        ended.append(snap)
    return ended, running


def claim_next_job(
    conn: sqlite3.Connection,
    now: float,
    *,
    full: Sequence[str] = (),
    only: Sequence[str] | None = None,
) -> tuple[Snapshot, JobRecord] | None:
    """Takes the oldest queued job (queue order is job id order) and marks it running.

    Jobs for the runners named in `full` wait; with `only`, just jobs for those runners are
    taken (the shared slots are all in use, runners with slots of their own still have room).
    """
    sql = (
        "SELECT j.id, j.run_id FROM jobs j INDEXED BY jobs_state JOIN runs r ON r.id = j.run_id"
        " WHERE j.state = 'queued'"
    )
    args: list[str] = []
    if full:
        sql += f" AND r.runner NOT IN ({','.join('?' * len(full))})"
        args.extend(full)
    if only is not None:
        if not only:
            return None
        sql += f" AND r.runner IN ({','.join('?' * len(only))})"
        args.extend(only)
    row = conn.execute(sql + " ORDER BY j.id LIMIT 1", args).fetchone()
    if row is None:
        return None
    job_id, run_id = row
    conn.execute(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?,"
        " finished_at = NULL WHERE id = ?",
        (now, job_id),
    )
    conn.execute(
        "UPDATE runs SET state = CASE state WHEN 'queued' THEN 'running' ELSE state END,"
        " started_at = COALESCE(started_at, ?), version = version + 1 WHERE id = ?",
        (now, run_id),
    )
    snap = snapshot(conn, run_id)
    assert snap is not None
    job = next(j for j in snap[1] if j.id == job_id)
    return snap, job


def write_live_log(conn: sqlite3.Connection, job_id: int, text: str, limit: int) -> None:
    """The tail of a running job's log, so a page served by any process shows progress."""
    conn.execute(
        "UPDATE jobs SET log = ? WHERE id = ? AND state = 'running'",
        (zip_tail(text, limit), job_id),
    )


def finish_job(
    conn: sqlite3.Connection,
    job_id: int,
    outcome: JobOutcome,
    limits: JobLimits,
    now: float,
) -> Snapshot | None:
    """Stores a job's outcome, finishes its run when it was the last, returns the run's rows."""
    row = conn.execute("SELECT run_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    run_id = row[0]
    problems = outcome.failures
    failures = [
        (t.node_id, _one_line(t.headline or t.traceback, limits.message_chars))
        for t in problems[: limits.failures]
    ]
    failed_tests = list(dict.fromkeys(t.node_id for t in problems))[: limits.failed_tests]
    wait = float(outcome.timings.get("wait", 0.0) or 0.0)
    conn.execute(
        "UPDATE jobs SET state = ?, reason = ?, passed = ?, failed = ?, skipped = ?, errors = ?,"
        " duration_s = ?, busy_s = ?, failures = ?, failed_tests = ?, tested_sha = ?,"
        " exit_code = ?, timings = ?, results = ?, log = ?, junit = ?, finished_at = ?, result = ?"
        " WHERE id = ?",
        (
            outcome.state,
            outcome.reason or None,
            outcome.passed,
            outcome.failed,
            outcome.skipped,
            outcome.errors,
            outcome.duration_s,
            max(0.0, outcome.duration_s - wait),
            json.dumps(failures),
            json.dumps(failed_tests),
            outcome.tested_sha,
            outcome.exit_code,
            json.dumps(dict(outcome.timings)),
            _results_blob(outcome.tests, limits.results_bytes),
            zip_tail(outcome.log, limits.log_bytes),
            zip_tail(outcome.junit_xml, limits.junit_bytes),
            now,
            json.dumps(dict(outcome.result)) if outcome.result is not None else None,
            job_id,
        ),
    )
    _finish_if_done(conn, run_id, now)
    _bump(conn, run_id)
    return snapshot(conn, run_id)


def cancel_running_job(
    conn: sqlite3.Connection, job_id: int, reason: str, now: float
) -> Snapshot | None:
    """Ends a job marked running that no runner of this process holds; None if it is not."""
    row = conn.execute(
        "UPDATE jobs SET state = 'cancelled', reason = ?, finished_at = ?"
        " WHERE id = ? AND state = 'running' RETURNING run_id",
        (reason, now, job_id),
    ).fetchone()
    if row is None:
        return None
    _finish_if_done(conn, row[0], now)
    _bump(conn, row[0])
    return snapshot(conn, row[0])


def mark_reported(conn: sqlite3.Connection, run_id: int, version: int) -> None:
    conn.execute(
        "UPDATE runs SET reported_version = MAX(reported_version, ?) WHERE id = ?",
        (version, run_id),
    )


def recover(conn: sqlite3.Connection, now: float) -> list[Snapshot]:
    """After a process died: jobs it left running are re-queued once, else end in `error`.

    Returns every run that must be reported again: the unfinished ones (their commit status is
    still `pending` on GitHub) and those whose last change was never reported.
    """
    left = conn.execute(
        "SELECT j.id, j.run_id, j.attempts, r.state, r.reason FROM jobs j"
        " JOIN runs r ON r.id = j.run_id WHERE j.state = 'running'"
    ).fetchall()
    for job_id, run_id, attempts, run_state, run_reason in left:
        if run_state not in ACTIVE_RUN_STATES:
            state, reason, finished = "cancelled", run_reason or "cancelled", now
        elif attempts < MAX_ATTEMPTS:
            state, reason, finished = "queued", REQUEUED_REASON, None
        else:
            state, reason, finished = "error", RESTART_REASON, now
        conn.execute(
            "UPDATE jobs SET state = ?, reason = ?, finished_at = ?,"
            " started_at = CASE WHEN ? = 'queued' THEN NULL ELSE started_at END WHERE id = ?",
            (state, reason, finished, state, job_id),
        )
        _bump(conn, run_id)
    for (run_id,) in conn.execute(
        "SELECT id FROM runs WHERE state IN ('queued', 'running')"
    ).fetchall():
        before = conn.total_changes
        _finish_if_done(conn, run_id, now)
        if conn.total_changes != before:
            _bump(conn, run_id)
    return [s for s in (snapshot(conn, i) for i in sorted(unsettled_runs(conn))) if s is not None]


def requeue_stopped(conn: sqlite3.Connection, job_ids: Iterable[int]) -> None:
    """Jobs stopped by a clean shutdown go back to the queue without using up an attempt."""
    for job_id in job_ids:
        row = conn.execute(
            "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), reason = ?,"
            " started_at = NULL WHERE id = ? AND state = 'running' RETURNING run_id",
            (STOPPED_REASON, job_id),
        ).fetchone()
        if row:
            _bump(conn, row[0])


# ---------------------------------------------------------------------- blobs


def zip_tail(text: str | None, limit: int) -> bytes | None:
    """The tail of `text` within `limit` bytes, compressed: the end of a log says how it ended."""
    if text is None:
        return None
    raw = text.encode("utf-8", "replace")
    if len(raw) > limit:
        raw = b"[... cut: only the end of this text was kept ...]\n" + raw[-limit:]
    return zlib.compress(raw, 6)


def unzip(blob: bytes | None) -> str | None:
    return None if blob is None else zlib.decompress(blob).decode("utf-8", "replace")


def _results_blob(tests: Sequence[TestResult], limit: int) -> bytes | None:
    """Per-test results within `limit`: tracebacks go first, then passing tests, then the rest."""
    if not tests:
        return None
    rows = [dataclasses.asdict(t) for t in tests]
    data = json.dumps(rows).encode()
    if len(data) > limit:
        for row in rows:
            row["traceback"] = ""
        data = json.dumps(rows).encode()
    if len(data) > limit:
        rows = [r for r in rows if r["outcome"] in ("failed", "error")]
        data = json.dumps(rows).encode()
        while len(data) > limit and rows:
            rows = rows[: len(rows) // 2]
            data = json.dumps(rows).encode()
    return zlib.compress(data, 6)


def _one_line(text: str, limit: int) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"
