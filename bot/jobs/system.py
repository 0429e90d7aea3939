"""Long work as durable runs of jobs: queued in SQLite, executed by runners, reported to features.

A layer of its own because `run-slow`, `/style` and a GitHub Actions runner need the same things:
rows that outlive the process, one queue with a concurrency limit, a cancel that really stops a
process, and a report after every change, so that a pull request never shows a `pending` status
forever. A feature supplies job specs and a reporter that renders its comment and commit status
from the rows; it never sees the loop.

A **run** is one request by a person (a `run-slow` comment): `queued` until its first job
starts, `running` until every job has ended, then `finished`; `cancelled` (superseded, stopped)
and `error` (the feature found it cannot run) end it early. A **job** is `queued`, `running`, then
one of the runner's end states (`passed`, `failed`, `skipped`, `error`, `timed_out`, `cancelled`).

Reports: every state change bumps the run's `version`; the run is reported until its
`reported_version` catches up. A reporter gets the rows as the change left them (the newest
change only, when it is slower than the changes), and after a failure it is called again later
with the current rows, so it must render idempotently. The versions live in the database so that
a report lost with the process is made by the next one.

One process owns the queue: `start()` treats every job it finds `running` as left behind by a
process that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import logging
import sqlite3
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from bot.clients.backoff import backoff_delay
from bot.jobs.runners.base import JobOutcome, Runner, RunRequest, TokenProvider
from bot.jobs.runners.junit import TestResult
from bot.logs import add_secret, redact
from bot.store.engine import Store, StoreClosed

log = logging.getLogger(__name__)

RunState = Literal["queued", "running", "finished", "cancelled", "error"]
JobStatus = Literal[
    "queued", "running", "passed", "failed", "skipped", "error", "timed_out", "cancelled"
]
ACTIVE_RUN_STATES: tuple[str, ...] = ("queued", "running")
JOB_END_STATES: frozenset[str] = frozenset(
    {"passed", "failed", "skipped", "error", "timed_out", "cancelled"}
)
#: A job killed with the process twice is more likely the cause than the victim.
MAX_ATTEMPTS = 2
RESTART_REASON = "the bot restarted during this job"
REQUEUED_REASON = "re-queued: the bot restarted during this job"
STOPPED_REASON = "re-queued: the bot was stopped during this job"
#: states whose duration says how long a job of that name takes (a skip or an error does not)
_TIMED_STATES = ("passed", "failed", "timed_out")
_REQUEST_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRequest)) - {
    "job_id",
    "run_id",
    "token",
    "artifacts_dir",
}


class FailedTest(NamedTuple):
    """A failed test and its assertion line: the shape of `handlers.slow_ci.plan.Failure`."""

    test: str
    message: str


@dataclass(frozen=True)
class RunRecord:
    id: int
    kind: str
    repo: str
    number: int | None
    head_sha: str
    base_ref: str | None
    requested_by: str | None
    requested_at: float
    state: RunState
    reason: str | None
    spec: dict[str, Any]
    superseded_by: int | None
    version: int
    reported_version: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    key: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    @property
    def reported(self) -> bool:
        return self.reported_version >= self.version


@dataclass(frozen=True)
class JobRecord:
    """A job's row without its blobs (log, JUnit XML, per-test results): those are read apart."""

    id: int
    run_id: int
    kind: str
    name: str
    spec: dict[str, Any]
    state: JobStatus
    attempts: int
    passed: int
    failed: int
    skipped: int
    errors: int
    duration_s: float | None
    busy_s: float | None
    reason: str | None
    failures: tuple[FailedTest, ...]
    #: node ids of every failed or erroring test (bounded): what `run-slow --failed` re-runs
    failed_tests: tuple[str, ...]
    tested_sha: str | None
    exit_code: int | None
    timings: dict[str, float]
    created_at: float
    started_at: float | None
    finished_at: float | None
    #: `JobOutcome.result`: a feature's structured result, None for test jobs
    result: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.state in JOB_END_STATES

    @property
    def ok(self) -> bool:
        return self.state in ("passed", "skipped")


#: Renders a run (its comment, its commit status) from the rows; called after every change.
Reporter = Callable[[RunRecord, list[JobRecord]], Awaitable[None]]
#: The installation token for a run's fetch, minted only when a runner asks for it.
RunTokenProvider = Callable[[RunRecord], str | Awaitable[str | None] | None]
#: Turns rows into what a runner takes; the default reads `RunRequest` fields from the specs.
RequestBuilder = Callable[[RunRecord, JobRecord, TokenProvider | None], RunRequest]


@dataclass(frozen=True)
class JobLimits:
    """What one job may keep in the database; a test run can print gigabytes."""

    log_bytes: int = 2 * 1024 * 1024
    live_log_bytes: int = 256 * 1024
    junit_bytes: int = 5 * 1024 * 1024
    results_bytes: int = 4 * 1024 * 1024
    failures: int = 20
    failed_tests: int = 2000
    message_chars: int = 300


# ---------------------------------------------------------------------- rows

_RUN_COLUMNS = (
    "id, kind, key, repo, number, head_sha, base_ref, requested_by, requested_at, status,"
    " reason, spec, superseded_by, version, reported_version, created_at, started_at, finished_at"
)
_JOB_COLUMNS = (
    "id, run_id, kind, name, spec, status, attempts, passed, failed, skipped, errors,"
    " duration_s, busy_s, reason, failures, failed_tests, tested_sha, exit_code, timings,"
    " created_at, started_at, finished_at, result"
)


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
        state=row["status"],
        reason=row["reason"],
        spec=json.loads(row["spec"]),
        superseded_by=row["superseded_by"],
        version=row["version"],
        reported_version=row["reported_version"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        run_id=row["run_id"],
        kind=row["kind"],
        name=row["name"],
        spec=json.loads(row["spec"]),
        state=row["status"],
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


Snapshot = tuple[RunRecord, list[JobRecord]]


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


@dataclass(frozen=True)
class RunFilter:
    """Which runs a listing shows; `visible` limits private repositories to those named."""

    kind: str | None = None
    repo: str | None = None
    number: int | None = None
    states: Sequence[str] | None = None
    #: None: every repository; else public runs plus the private repositories named here.
    visible: frozenset[str] | None = None


def list_runs(
    conn: sqlite3.Connection, where: RunFilter, *, before: int | None = None, limit: int = 50
) -> list[RunRecord]:
    """Newest first, `limit` at most, with ids below `before` (the next page's cursor).

    A run whose spec does not say it is public counts as private.
    """
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
        sql += f" AND status IN ({','.join('?' * len(where.states))})"
        args.extend(where.states)
    if where.visible is not None:
        repos = sorted(where.visible)
        sql += " AND (json_extract(spec, '$.private') = 0"
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


def private_repos(conn: sqlite3.Connection) -> list[str]:
    """Repositories with runs not known to be public: the ones a viewer's access is asked for."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT repo FROM runs WHERE json_extract(spec, '$.private') IS NOT 0"
        )
    ]


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


def snapshot(conn: sqlite3.Connection, run_id: int) -> Snapshot | None:
    run = read_run(conn, run_id)
    return (run, read_jobs(conn, run_id)) if run else None


def _bump(conn: sqlite3.Connection, run_id: int) -> None:
    conn.execute("UPDATE runs SET version = version + 1 WHERE id = ?", (run_id,))


def _finish_if_done(conn: sqlite3.Connection, run_id: int, now: float) -> None:
    """A run whose jobs have all ended is finished, unless it was ended another way first."""
    left = conn.execute(
        "SELECT COUNT(*) FROM jobs INDEXED BY jobs_run"
        " WHERE run_id = ? AND status IN ('queued', 'running')",
        (run_id,),
    ).fetchone()[0]
    if left == 0:
        conn.execute(
            "UPDATE runs SET status = 'finished', finished_at = ?"
            " WHERE id = ? AND status IN ('queued', 'running')",
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
        " requested_at, spec, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            key,
            repo,
            number,
            head_sha,
            base_ref,
            requested_by,
            requested_at,
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
        "UPDATE runs SET status = ?, reason = ?, superseded_by = ?, finished_at = ?,"
        " version = version + 1 WHERE id = ? AND status IN ('queued', 'running')",
        (state, reason, superseded_by, now, run_id),
    ).rowcount
    if not changed:
        return []
    conn.execute(
        "UPDATE jobs SET status = 'cancelled', reason = ?, finished_at = ?"
        " WHERE run_id = ? AND status = 'queued'",
        (reason, now, run_id),
    )
    return [
        row[0]
        for row in conn.execute(
            "SELECT id FROM jobs WHERE run_id = ? AND status = 'running' ORDER BY id", (run_id,)
        )
    ]


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
    sql = "SELECT id, run_id FROM jobs INDEXED BY jobs_status WHERE status = 'queued'"
    args: list[str] = []
    runner = "COALESCE(json_extract(spec, '$.runner'), 'local')"
    if full:
        sql += f" AND {runner} NOT IN ({','.join('?' * len(full))})"
        args.extend(full)
    if only is not None:
        if not only:
            return None
        sql += f" AND {runner} IN ({','.join('?' * len(only))})"
        args.extend(only)
    row = conn.execute(sql + " ORDER BY id LIMIT 1", args).fetchone()
    if row is None:
        return None
    job_id, run_id = row
    conn.execute(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?,"
        " finished_at = NULL WHERE id = ?",
        (now, job_id),
    )
    conn.execute(
        "UPDATE runs SET status = CASE status WHEN 'queued' THEN 'running' ELSE status END,"
        " started_at = COALESCE(started_at, ?), version = version + 1 WHERE id = ?",
        (now, run_id),
    )
    snap = snapshot(conn, run_id)
    assert snap is not None
    job = next(j for j in snap[1] if j.id == job_id)
    return snap, job


def _zip(text: str | None, limit: int) -> bytes | None:
    """The tail of `text` within `limit` bytes, compressed: the end of a log says how it ended."""
    if text is None:
        return None
    raw = text.encode("utf-8", "replace")
    if len(raw) > limit:
        raw = b"[... cut: only the end of this text was kept ...]\n" + raw[-limit:]
    return zlib.compress(raw, 6)


def _unzip(blob: bytes | None) -> str | None:
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
        "UPDATE jobs SET status = ?, reason = ?, passed = ?, failed = ?, skipped = ?, errors = ?,"
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
            _zip(outcome.log, limits.log_bytes),
            _zip(outcome.junit_xml, limits.junit_bytes),
            now,
            json.dumps(dict(outcome.result)) if outcome.result is not None else None,
            job_id,
        ),
    )
    _finish_if_done(conn, run_id, now)
    _bump(conn, run_id)
    return snapshot(conn, run_id)


def recover(conn: sqlite3.Connection, now: float) -> list[Snapshot]:
    """After a process died: jobs it left running are re-queued once, else end in `error`.

    Returns every run that must be reported again: the unfinished ones (their commit status is
    still `pending` on GitHub) and those whose last change was never reported.
    """
    left = conn.execute(
        "SELECT j.id, j.run_id, j.attempts, r.status, r.reason FROM jobs j"
        " JOIN runs r ON r.id = j.run_id WHERE j.status = 'running'"
    ).fetchall()
    for job_id, run_id, attempts, run_state, run_reason in left:
        if run_state not in ACTIVE_RUN_STATES:
            status, reason, finished = "cancelled", run_reason or "cancelled", now
        elif attempts < MAX_ATTEMPTS:
            status, reason, finished = "queued", REQUEUED_REASON, None
        else:
            status, reason, finished = "error", RESTART_REASON, now
        conn.execute(
            "UPDATE jobs SET status = ?, reason = ?, finished_at = ?,"
            " started_at = CASE WHEN ? = 'queued' THEN NULL ELSE started_at END WHERE id = ?",
            (status, reason, finished, status, job_id),
        )
        _bump(conn, run_id)
    for (run_id,) in conn.execute(
        "SELECT id FROM runs WHERE status IN ('queued', 'running')"
    ).fetchall():
        before = conn.total_changes
        _finish_if_done(conn, run_id, now)
        if conn.total_changes != before:
            _bump(conn, run_id)
    ids = {
        row[0] for row in conn.execute("SELECT id FROM runs WHERE status IN ('queued', 'running')")
    }
    ids.update(
        row[0] for row in conn.execute("SELECT id FROM runs WHERE reported_version < version")
    )
    return [s for s in (snapshot(conn, i) for i in sorted(ids)) if s is not None]


def requeue_stopped(conn: sqlite3.Connection, job_ids: Iterable[int]) -> None:
    """Jobs stopped by a clean shutdown go back to the queue without using up an attempt."""
    for job_id in job_ids:
        row = conn.execute(
            "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0), reason = ?,"
            " started_at = NULL WHERE id = ? AND status = 'running' RETURNING run_id",
            (STOPPED_REASON, job_id),
        ).fetchone()
        if row:
            _bump(conn, row[0])


def queue_position(conn: sqlite3.Connection, run_id: int) -> int:
    """1 when the run's next job is the next to start; 0 when none of its jobs is waiting."""
    first = conn.execute(
        "SELECT MIN(id) FROM jobs INDEXED BY jobs_run WHERE run_id = ? AND status = 'queued'",
        (run_id,),
    ).fetchone()[0]
    if first is None:
        return 0
    return conn.execute(
        "SELECT COUNT(*) FROM jobs INDEXED BY jobs_status WHERE status = 'queued' AND id <= ?",
        (first,),
    ).fetchone()[0]


def past_durations(
    conn: sqlite3.Connection, kind: str, names: Iterable[str], limit: int = 10
) -> dict[str, list[float]]:
    """Seconds the newest jobs of each name took, waiting for a machine not counted."""
    out: dict[str, list[float]] = {}
    for name in dict.fromkeys(names):
        rows = conn.execute(
            "SELECT busy_s FROM jobs WHERE kind = ? AND name = ?"
            " AND status IN ('passed', 'failed', 'timed_out') AND busy_s IS NOT NULL"
            " ORDER BY id DESC LIMIT ?",
            (kind, name, limit),
        ).fetchall()
        if rows:
            out[name] = [row[0] for row in rows]
    return out


def _one_line(text: str, limit: int) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---------------------------------------------------------------------- requests


def build_request(run: RunRecord, job: JobRecord, token: TokenProvider | None) -> RunRequest:
    """The default job spec: `RunRequest` fields, from `run.spec["request"]` then the job's spec.

    The run gives the repository, the pinned head SHA, the base branch and the pull number;
    keys that are not `RunRequest` fields (`runner`, the feature's own) are ignored here.
    """
    fields: dict[str, Any] = {
        "repo": run.repo,
        "head_sha": run.head_sha,
        "base_ref": run.base_ref,
        "pull_number": run.number,
    }
    shared = run.spec.get("request") or {}
    for source in (shared, job.spec):
        fields.update({k: v for k, v in source.items() if k in _REQUEST_FIELDS})
    if isinstance(fields.get("tests"), list):
        fields["tests"] = tuple(fields["tests"])
    return RunRequest(
        job_id=str(job.id),
        run_id=str(run.id),
        token=token,
        resumed=job.reason in (REQUEUED_REASON, STOPPED_REASON),
        **fields,
    )


# ---------------------------------------------------------------------- the system


@dataclass
class _Feature:
    reporter: Reporter
    token_provider: RunTokenProvider | None = None
    build_request: RequestBuilder | None = None


class _LiveLog:
    """The tail of a running job's log, for a page to show progress before the job ends."""

    def __init__(self, limit: int) -> None:
        self._lines: deque[str] = deque()
        self._bytes = 0
        self._limit = limit
        self.dirty = False

    def __call__(self, line: str) -> None:
        self._lines.append(line)
        self._bytes += len(line) + 1
        while self._bytes > self._limit and len(self._lines) > 1:
            self._bytes -= len(self._lines.popleft()) + 1
        self.dirty = True

    def text(self) -> str:
        return "".join(line + "\n" for line in self._lines)


@dataclass
class _Active:
    job_id: int
    live: _LiveLog
    runner_name: str = "local"
    task: asyncio.Task[None] | None = None
    runner: Runner | None = None
    cancel_reason: str | None = None


@dataclass
class _Reporting:
    latest: Snapshot | None = None
    task: asyncio.Task[None] | None = None


@dataclass
class _Tick:
    event: asyncio.Event = field(default_factory=asyncio.Event)


class JobSystem:
    """The queue, the loop that feeds runners, cancellation, recovery and reports.

    `concurrency` bounds jobs in flight across all runners; a runner may serialise further
    (the local runner's GPU pool does), so a higher value overlaps checkouts with tests.
    """

    def __init__(
        self,
        store: Store,
        runners: Mapping[str, Runner],
        *,
        concurrency: int = 1,
        limits: JobLimits | None = None,
        log_flush_s: float = 3.0,
        report_retry_s: float = 5.0,
        report_retry_cap_s: float = 300.0,
        report_timeout_s: float = 120.0,
        cancel_grace_s: float = 30.0,
        poll_s: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.runners = dict(runners)
        self.concurrency = concurrency
        self.limits = limits or JobLimits()
        self.log_flush_s = log_flush_s
        self.report_retry_s = report_retry_s
        self.report_retry_cap_s = report_retry_cap_s
        self.report_timeout_s = report_timeout_s
        self.cancel_grace_s = cancel_grace_s
        self.poll_s = poll_s
        self._features: dict[str, _Feature] = {}
        self._active: dict[int, _Active] = {}
        self._reports: dict[int, _Reporting] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._ever_started = False
        self._wake: asyncio.Event | None = None
        self._tick: _Tick | None = None
        self._stopping = False

    # -- features ------------------------------------------------------------------------

    def register(
        self,
        kind: str,
        reporter: Reporter,
        *,
        token_provider: RunTokenProvider | None = None,
        build_request: RequestBuilder | None = None,
    ) -> None:
        """Before `start()`, so the runs that recovery reports find their reporter."""
        self._features[kind] = _Feature(reporter, token_provider, build_request)

    # -- runs ----------------------------------------------------------------------------

    async def create_run(
        self,
        kind: str,
        *,
        repo: str,
        number: int | None,
        head_sha: str,
        jobs: Sequence[tuple[str, Mapping[str, Any]]],
        base_ref: str | None = None,
        requested_by: str | None = None,
        requested_at: float | None = None,
        spec: Mapping[str, Any] | None = None,
        key: str | None = None,
        supersede: bool = False,
    ) -> RunRecord:
        """Stores a run and its jobs (on disk when this returns) and queues the jobs.

        `key` makes it idempotent: a second call with the same key returns the first run
        (a redelivered comment). `supersede` cancels the older active runs of the same kind on
        the same pull request in the same transaction; their processes are stopped meanwhile.
        Raises ValueError for a spec the runner could not take, before anything is stored.
        """
        if not jobs:
            raise ValueError("a run needs at least one job")
        names = [name for name, _ in jobs]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError("job names must be unique and non-empty")
        now = time.time()
        spec = dict(spec or {})
        json.dumps(spec)  # fails here, not in the transaction, on what JSON cannot hold
        for name, job_spec in jobs:
            json.dumps(dict(job_spec))
            self._check_spec(kind, repo, number, head_sha, base_ref, spec, name, job_spec)

        def create(conn: sqlite3.Connection) -> tuple[Snapshot, bool, list[Snapshot], list[int]]:
            run_id, new = insert_run(
                conn,
                kind=kind,
                repo=repo,
                number=number,
                head_sha=head_sha,
                base_ref=base_ref,
                requested_by=requested_by,
                requested_at=requested_at if requested_at is not None else now,
                spec=spec,
                jobs=jobs,
                key=key,
                now=now,
            )
            ended: list[Snapshot] = []
            running: list[int] = []
            if new and supersede:
                older = conn.execute(
                    "SELECT id FROM runs WHERE repo = ? AND number IS ? AND kind = ? AND id < ?"
                    " AND status IN ('queued', 'running') ORDER BY id",
                    (repo, number, kind, run_id),
                ).fetchall()
                for (old,) in older:
                    reason = f"superseded by run {run_id}"
                    running += end_run(
                        conn,
                        old,
                        state="cancelled",
                        reason=reason,
                        superseded_by=run_id,
                        now=now,
                    )
                    ended.append(snapshot(conn, old))  # type: ignore[arg-type]
            snap = snapshot(conn, run_id)
            assert snap is not None
            return snap, new, ended, running

        snap, new, ended, running = await self.store.call(create)
        run_id = snap[0].id
        if new:
            self._changed(snap)
            for old in ended:
                self._changed(old)
            if running:
                reason = f"superseded by run {run_id}"
                self._spawn(self._stop_jobs(running, reason))
            self._poke()
        return snap[0]

    def _check_spec(
        self,
        kind: str,
        repo: str,
        number: int | None,
        head_sha: str,
        base_ref: str | None,
        spec: dict[str, Any],
        name: str,
        job_spec: Mapping[str, Any],
    ) -> None:
        runner = job_spec.get("runner", "local")
        if runner not in self.runners:
            raise ValueError(f"job {name}: no runner named {runner!r}")
        feature = self._features.get(kind)
        builder = (feature.build_request if feature else None) or build_request
        run = RunRecord(
            0, kind, repo, number, head_sha, base_ref, None, 0.0, "queued", None, spec,
            None, 1, 0, 0.0, None, None,
        )  # fmt: skip
        job = JobRecord(
            0, 0, kind, name, dict(job_spec), "queued", 0, 0, 0, 0, 0, None, None, None, (), (),
            None, None, {}, 0.0, None, None,
        )  # fmt: skip
        try:
            builder(run, job, None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"job {name}: {exc}") from exc

    async def cancel_run(
        self, run_id: int, reason: str = "cancelled", superseded_by: int | None = None
    ) -> RunRecord | None:
        """Ends the run as `cancelled`; returns once its running jobs have really stopped."""
        return await self._end(run_id, "cancelled", reason, superseded_by)

    async def fail_run(self, run_id: int, reason: str) -> RunRecord | None:
        """Ends the run as `error`: the feature found it cannot run (the head moved)."""
        return await self._end(run_id, "error", reason, None)

    async def _end(
        self, run_id: int, state: RunState, reason: str, superseded_by: int | None
    ) -> RunRecord | None:
        now = time.time()

        def end(conn: sqlite3.Connection) -> tuple[list[int], Snapshot | None, bool]:
            before = conn.total_changes
            running = end_run(
                conn, run_id, state=state, reason=reason, superseded_by=superseded_by, now=now
            )
            return running, snapshot(conn, run_id), conn.total_changes != before

        running, snap, changed = await self.store.call(end)
        if snap is None:
            return None
        if changed:
            self._changed(snap)
        await self._stop_jobs(running, reason)
        return await self.get_run(run_id)

    async def update_spec(self, run_id: int, changes: Mapping[str, Any]) -> RunRecord | None:
        """Merges keys into the run's spec (the comment id once it is posted); not reported."""
        patch = json.dumps(dict(changes))

        def update(conn: sqlite3.Connection) -> RunRecord | None:
            conn.execute("UPDATE runs SET spec = json_patch(spec, ?) WHERE id = ?", (patch, run_id))
            return read_run(conn, run_id)

        return await self.store.call(update)

    async def get_run(self, run_id: int) -> RunRecord | None:
        return await self.store.call(lambda conn: read_run(conn, run_id), single=True)

    async def jobs_of(self, run_id: int) -> list[JobRecord]:
        return await self.store.call(lambda conn: read_jobs(conn, run_id), single=True)

    async def active_runs(self, kind: str, repo: str, number: int | None) -> list[RunRecord]:
        """Oldest first: the runs a newer request on the same pull request supersedes."""
        return await self.runs_of(repo, number, kind=kind, states=ACTIVE_RUN_STATES, newest=False)

    async def runs_of(
        self,
        repo: str,
        number: int | None,
        *,
        kind: str | None = None,
        states: Sequence[str] | None = None,
        limit: int = 50,
        newest: bool = True,
    ) -> list[RunRecord]:
        def query(conn: sqlite3.Connection) -> list[RunRecord]:
            sql = f"SELECT {_RUN_COLUMNS} FROM runs WHERE repo = ? AND number IS ?"  # noqa: S608
            args: list[Any] = [repo, number]
            if kind is not None:
                sql += " AND kind = ?"
                args.append(kind)
            if states is not None:
                sql += f" AND status IN ({','.join('?' * len(states))})"
                args.extend(states)
            sql += f" ORDER BY id {'DESC' if newest else 'ASC'} LIMIT ?"
            args.append(limit)
            return [_run(row) for row in conn.execute(sql, args)]

        return await self.store.call(query, single=True)

    async def last_run(
        self,
        kind: str,
        repo: str,
        number: int | None,
        *,
        states: Sequence[str] = ("finished",),
        before: int | None = None,
    ) -> Snapshot | None:
        """The newest ended run on the pull request and its jobs, for `run-slow --failed`.

        Only `finished` runs by default: a superseded run's jobs were stopped, not failed.
        `before` skips runs from that id on (the run being planned).
        """
        runs = await self.runs_of(repo, number, kind=kind, states=states, limit=50)
        for run in runs:
            if before is None or run.id < before:
                return run, await self.jobs_of(run.id)
        return None

    async def past_durations(
        self, kind: str, names: Iterable[str], *, limit: int = 10
    ) -> dict[str, list[float]]:
        """Newest first, per job name; for an estimate next to a queued run."""
        wanted = list(names)
        return await self.store.call(
            lambda conn: past_durations(conn, kind, wanted, limit), single=True
        )

    async def queue_position(self, run_id: int) -> int:
        return await self.store.call(lambda conn: queue_position(conn, run_id), single=True)

    async def job_log(self, job_id: int) -> str | None:
        """The live tail while the job runs here, else what was stored."""
        active = self._active.get(job_id)
        if active is not None:
            return active.live.text()
        return await self._blob(job_id, "log")

    async def job_junit(self, job_id: int) -> str | None:
        return await self._blob(job_id, "junit")

    async def job_tests(self, job_id: int) -> list[TestResult]:
        """Per-test results as stored; tracebacks may have been dropped to fit the bound."""
        text = await self._blob(job_id, "results")
        return [TestResult(**row) for row in json.loads(text)] if text else []

    async def _blob(self, job_id: int, column: str) -> str | None:
        assert column in ("log", "junit", "results")
        row = await self.store.call(
            lambda conn: conn.execute(
                f"SELECT {column} FROM jobs WHERE id = ?",  # noqa: S608
                (job_id,),
            ).fetchone(),
            single=True,
        )
        return _unzip(row[0]) if row else None

    async def wait(self, run_id: int, *, reported: bool = False) -> RunRecord:
        """Until the run has ended (and, with `reported`, its last change was reported).

        For the local command and tests; bound it with `asyncio.timeout` where it matters.
        """
        while True:
            tick = self._current_tick()
            run = await self.get_run(run_id)
            if run is None:
                raise KeyError(run_id)
            if not run.active and (run.reported or not reported):
                return run
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tick.event.wait(), self.poll_s)

    async def drain(self) -> int:
        """Until every run has ended and its end is reported; how many runs it waited for.

        For a one-shot `bot handle`, whose process must outlive the jobs it dispatched.
        """
        waited: set[int] = set()
        while True:
            pending = await self.store.call(
                lambda conn: [
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM runs WHERE status IN ('queued', 'running')"
                        " OR reported_version < version"
                    )
                ],
                single=True,
            )
            if not pending:
                return len(waited)
            for run_id in pending:
                waited.add(run_id)
                await self.wait(run_id, reported=True)

    # -- the loop ------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether this process runs jobs (`bot serve`, from its start to its exit: a run queued
        while it stops is taken at the next start); a one-shot `bot handle` never does."""
        return self._ever_started

    async def start(self) -> None:
        """Recovers what a dead process left behind, reports it, then starts taking jobs."""
        if self._loop_task is not None:
            return
        self._stopping = False
        snaps = await self.store.call(lambda conn: recover(conn, time.time()))
        for snap in snaps:
            self._changed(snap)
        self._loop_task = asyncio.create_task(self.run(), name="jobs-loop")
        self._ever_started = True

    async def run(self) -> None:
        """Feeds queued jobs to runners, oldest first: at most `concurrency` at a time share the
        common slots, and a runner with slots of its own (`max_in_flight`, an Actions fleet)
        takes up to that many besides, so hundreds of remote jobs never wait for a local GPU."""
        wake = self._wake_event()
        while not self._stopping:
            try:
                wake.clear()
                full, only = self._room()
                if only == []:
                    await self._sleep(wake)
                    continue
                claimed = await self.store.call(
                    lambda conn, full=full, only=only: claim_next_job(
                        conn, time.time(), full=full, only=only
                    )
                )
                if claimed is None:
                    await self._sleep(wake)
                    continue
                snap, job = claimed
                self._launch(snap[0], job)
                self._changed(snap)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A full disk or a closed store must not end the loop for good.
                log.exception("the job loop failed; trying again")
                await asyncio.sleep(1.0)

    def _room(self) -> tuple[list[str], list[str] | None]:
        """Runners with no free slot, and (when the shared slots are taken) the only runners
        that may still start a job."""
        own = {
            name: limit
            for name, runner in self.runners.items()
            if (limit := getattr(runner, "max_in_flight", None))
        }
        busy: dict[str, int] = {}
        for active in self._active.values():
            busy[active.runner_name] = busy.get(active.runner_name, 0) + 1
        full = sorted(name for name, limit in own.items() if busy.get(name, 0) >= limit)
        shared = sum(n for name, n in busy.items() if name not in own)
        if shared < self.concurrency:
            return full, None
        return full, sorted(name for name in own if name not in full)

    async def _sleep(self, wake: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), self.poll_s)

    async def stop(self) -> None:
        """Stops taking jobs, stops the running ones and puts them back in the queue."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        stopped = list(self._active)
        tasks = [a.task for a in self._active.values() if a.task is not None]
        for task in tasks:
            task.cancel()  # the local runner kills the test's process group on cancel
        await asyncio.gather(*tasks, return_exceptions=True)
        if stopped:
            try:
                await self.store.call(lambda conn: requeue_stopped(conn, stopped))
            except (StoreClosed, sqlite3.Error):
                log.warning("could not re-queue stopped jobs; the next start will", exc_info=True)
        rest = [r.task for r in self._reports.values() if r.task is not None]
        rest += list(self._background)
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        self._reports.clear()
        self._background.clear()
        for runner in self.runners.values():
            close = getattr(runner, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    def _launch(self, run: RunRecord, job: JobRecord) -> None:
        active = _Active(
            job.id, _LiveLog(self.limits.live_log_bytes), str(job.spec.get("runner", "local"))
        )
        self._active[job.id] = active
        active.task = asyncio.create_task(self._execute(run, job, active), name=f"job-{job.id}")

    async def _execute(self, run: RunRecord, job: JobRecord, active: _Active) -> None:
        flusher = asyncio.create_task(self._flush_log(active))
        try:
            try:
                outcome = await self._outcome(run, job, active)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stopping or active.cancel_reason is None or task is None:
                    raise
                task.uncancel()  # cancel_run gave up on the runner and stopped the task itself
                outcome = JobOutcome("cancelled", active.cancel_reason)
            if outcome.state == "cancelled" and active.cancel_reason:
                outcome = dataclasses.replace(outcome, reason=active.cancel_reason)
            flusher.cancel()
            snap = await self.store.call(
                lambda conn: finish_job(conn, job.id, outcome, self.limits, time.time())
            )
            if snap is not None:
                self._changed(snap)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not store the end of job %s", job.id)
        finally:
            flusher.cancel()
            self._active.pop(job.id, None)
            self._poke()

    async def _outcome(self, run: RunRecord, job: JobRecord, active: _Active) -> JobOutcome:
        """What the runner said, or why it could not say anything; never raises but cancels."""
        feature = self._features.get(run.kind)
        name = job.spec.get("runner", "local")
        runner = self.runners.get(name)
        if runner is None:
            return JobOutcome("error", f"no runner named {name!r} is configured")
        seen: list[str] = []
        token = self._token(feature, run, seen) if feature else None
        builder = (feature.build_request if feature else None) or build_request
        try:
            request = builder(run, job, token)
        except Exception as exc:
            return JobOutcome("error", f"the job's spec is not valid: {exc}")
        if active.cancel_reason is not None:
            return JobOutcome("cancelled", active.cancel_reason)
        active.runner = runner
        started = time.monotonic()
        try:
            outcome = await runner.run(request, active.live)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("runner %s failed on job %s", name, job.id)
            reason = redact(f"the runner failed: {type(exc).__name__}: {exc}", seen)
            return JobOutcome(
                "error",
                reason,
                duration_s=round(time.monotonic() - started, 3),
                log=redact(active.live.text(), seen),
            )
        if outcome.state not in JOB_END_STATES:
            return dataclasses.replace(
                outcome, state="error", reason=f"the runner answered {outcome.state!r}"
            )
        if seen:
            outcome = dataclasses.replace(
                outcome, reason=redact(outcome.reason, seen), log=redact(outcome.log, seen)
            )
        return outcome

    def _token(self, feature: _Feature, run: RunRecord, seen: list[str]) -> TokenProvider | None:
        provider = feature.token_provider
        if provider is None:
            return None

        async def token() -> str | None:
            value = provider(run)
            if inspect.isawaitable(value):
                value = await value
            if value:
                seen.append(value)
                add_secret(value)
            return value or None

        return token

    async def _flush_log(self, active: _Active) -> None:
        """Writes the live tail every few seconds, so a run page shows progress."""
        while True:
            await asyncio.sleep(self.log_flush_s)
            if not active.live.dirty:
                continue
            active.live.dirty = False
            blob = _zip(active.live.text(), self.limits.live_log_bytes)
            try:
                await self.store.call(
                    lambda conn, blob=blob: conn.execute(
                        "UPDATE jobs SET log = ? WHERE id = ? AND status = 'running'",
                        (blob, active.job_id),
                    ),
                    single=True,
                )
            except (StoreClosed, sqlite3.Error):
                log.warning("could not write the log of job %s", active.job_id, exc_info=True)

    async def _stop_jobs(self, job_ids: Sequence[int], reason: str) -> None:
        await asyncio.gather(*(self._stop_job(job_id, reason) for job_id in job_ids))

    async def _stop_job(self, job_id: int, reason: str) -> None:
        active = self._active.get(job_id)
        if active is None:
            await asyncio.sleep(0)  # the loop may be between claiming the job and launching it
            active = self._active.get(job_id)
        if active is None or active.task is None:
            # Not running in this process (the loop is not started): nothing to stop.
            now = time.time()

            def cancel(conn: sqlite3.Connection) -> Snapshot | None:
                row = conn.execute(
                    "UPDATE jobs SET status = 'cancelled', reason = ?, finished_at = ?"
                    " WHERE id = ? AND status = 'running' RETURNING run_id",
                    (reason, now, job_id),
                ).fetchone()
                if row is None:
                    return None
                _finish_if_done(conn, row[0], now)
                _bump(conn, row[0])
                return snapshot(conn, row[0])

            snap = await self.store.call(cancel)
            if snap is not None:
                self._changed(snap)
            return
        active.cancel_reason = reason
        if active.runner is not None:
            try:
                await active.runner.cancel(str(job_id))
            except Exception:
                log.exception("runner could not cancel job %s", job_id)
        done, _ = await asyncio.wait({active.task}, timeout=self.cancel_grace_s)
        if not done:
            log.warning(
                "job %s did not stop within %s s; cancelling it", job_id, self.cancel_grace_s
            )
            active.task.cancel()
            await asyncio.wait({active.task}, timeout=self.cancel_grace_s)

    # -- reports -------------------------------------------------------------------------

    def _changed(self, snap: Snapshot) -> None:
        """Schedules a report of the run; one reporter call at a time per run, newest rows."""
        run = snap[0]
        state = self._reports.setdefault(run.id, _Reporting())
        if state.latest is None or state.latest[0].version <= run.version:
            state.latest = snap
        if state.task is None or state.task.done():
            state.task = asyncio.create_task(self._report(run.id, state), name=f"report-{run.id}")
        self._notify()

    async def _report(self, run_id: int, state: _Reporting) -> None:
        failures = 0
        while state.latest is not None:
            run, jobs = state.latest
            state.latest = None
            feature = self._features.get(run.kind)
            if feature is None:
                log.warning(
                    "no reporter for runs of kind %s; run %s stays unreported", run.kind, run_id
                )
                break
            try:
                # The rows are as they were at the change; the spec is the feature's own memory
                # (the comment it posted, its check run), written since by an earlier report.
                run = await self._with_current_spec(run)
                async with asyncio.timeout(self.report_timeout_s):
                    await feature.reporter(run, jobs)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                delay = backoff_delay(failures, self.report_retry_s, cap=self.report_retry_cap_s)
                log.exception("reporting run %s failed; trying again in %.0f s", run_id, delay)
                await asyncio.sleep(delay)
                if state.latest is None:
                    try:
                        state.latest = await self.store.call(lambda conn: snapshot(conn, run_id))
                    except (StoreClosed, sqlite3.Error):
                        log.warning("could not read run %s to report it", run_id, exc_info=True)
                        break
                continue
            failures = 0
            version = run.version
            try:
                await self.store.call(
                    lambda conn, v=version: conn.execute(
                        "UPDATE runs SET reported_version = MAX(reported_version, ?) WHERE id = ?",
                        (v, run_id),
                    ),
                    single=True,
                )
            except (StoreClosed, sqlite3.Error):
                log.warning("could not record the report of run %s", run_id, exc_info=True)
            self._notify()
        if self._reports.get(run_id) is state and state.latest is None:
            del self._reports[run_id]

    async def _with_current_spec(self, run: RunRecord) -> RunRecord:
        row = await self.store.call(
            lambda conn: conn.execute("SELECT spec FROM runs WHERE id = ?", (run.id,)).fetchone(),
            single=True,
        )
        return dataclasses.replace(run, spec=json.loads(row[0])) if row else run

    # -- plumbing ------------------------------------------------------------------------

    def _wake_event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def _poke(self) -> None:
        self._wake_event().set()

    def _current_tick(self) -> _Tick:
        if self._tick is None:
            self._tick = _Tick()
        return self._tick

    def _notify(self) -> None:
        tick = self._current_tick()
        self._tick = _Tick()
        tick.event.set()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
