"""Runs written straight into a store, in any state, for page tests and the page benchmark.

A run made by a real `run-slow` takes seconds; pages need runs in every state and runs with
thousands of results, so these are made row by row through the job layer's own functions.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from bot.jobs.records import JobLimits
from bot.jobs.runners.base import JobOutcome
from bot.jobs.runners.junit import TestResult
from bot.store.engine import Store
from bot.store.runs import end_run, finish_job, insert_run, mark_reported, read_run
from bot.web.scheduled import SCHEDULED_KIND


def results_for(folder: str, n: int, *, failed: int = 0, skipped: int = 0) -> list[TestResult]:
    out: list[TestResult] = []
    for i in range(n):
        node = f"{folder}/test_modeling.py::ModelTest::test_case_{i:05d}"
        if i < failed:
            out.append(
                TestResult(
                    node,
                    "failed",
                    1.5,
                    message=f"AssertionError: {i} != {i + 1}",
                    assertion=f"assert {i} == {i + 1}",
                    location=f"{folder}/test_modeling.py:{10 + i}",
                    traceback=(
                        f"    def test_case_{i:05d}(self):\n>       assert {i} == {i + 1}\n"
                        f"E       assert {i} == {i + 1}\n\n{folder}/test_modeling.py:{10 + i}:"
                        " AssertionError"
                    ),
                )
            )
        elif i < failed + skipped:
            out.append(TestResult(node, "skipped", 0.0, message="test requires multiple GPUs"))
        else:
            out.append(TestResult(node, "passed", 0.25))
    return out


def write_run(
    conn: sqlite3.Connection,
    *,
    repo: str = "acme/models",
    number: int = 7,
    title: str = "Add a model",
    state: str = "finished",
    private: bool = False,
    jobs: Sequence[tuple[str, Sequence[TestResult]]] = (("tests/models/toy", ()),),
    requested_by: str = "maint",
    head_sha: str = "a" * 40,
    log: str = "collected 1 item\n",
    limits: JobLimits | None = None,
) -> int:
    """A run of kind `slow_ci` in `state` (queued, running, finished, cancelled or error).

    A finished run's jobs pass or fail by their results; a running run has its first job
    running and the rest queued.
    """
    limits = limits or JobLimits()
    now = time.time()
    run_id, _ = insert_run(
        conn,
        kind="slow_ci",
        repo=repo,
        number=number,
        head_sha=head_sha,
        base_ref="main",
        requested_by=requested_by,
        requested_at=now - 120,
        private=private,
        runner="local",
        spec={"title": title, "html_url": ""},
        jobs=[
            (folder.rsplit("/", 1)[-1], {"folder": folder, "machine_type": "single-gpu"})
            for folder, _ in jobs
        ],
        key=None,
        now=now - 120,
    )
    job_ids = [
        row[0]
        for row in conn.execute("SELECT id FROM jobs WHERE run_id = ? ORDER BY id", (run_id,))
    ]
    if state in ("running", "finished"):
        conn.execute(
            "UPDATE runs SET state = 'running', started_at = ? WHERE id = ?", (now - 100, run_id)
        )
    if state == "running":
        conn.execute(
            "UPDATE jobs SET state = 'running', started_at = ?, attempts = 1 WHERE id = ?",
            (now - 30, job_ids[0]),
        )
    elif state == "finished":
        for job_id, (_, tests) in zip(job_ids, jobs, strict=True):
            failed = sum(t.outcome in ("failed", "error") for t in tests)
            outcome = JobOutcome(
                state="failed" if failed else "passed",
                passed=sum(t.outcome == "passed" for t in tests),
                failed=sum(t.outcome == "failed" for t in tests),
                errors=sum(t.outcome == "error" for t in tests),
                skipped=sum(t.outcome == "skipped" for t in tests),
                duration_s=42.0,
                tests=tuple(tests),
                log=log,
            )
            finish_job(conn, job_id, outcome, limits, now)
    elif state in ("cancelled", "error"):
        end_run(
            conn,
            run_id,
            state=state,
            reason="stopped by a newer run-slow" if state == "cancelled" else "the checkout failed",
            superseded_by=None,
            now=now,
        )
    # Written as if already reported: no comment or status is made for a seeded run.
    conn.execute("UPDATE runs SET reported_version = version WHERE id = ?", (run_id,))
    return run_id


def seed_run(store: Store, **fields: Any) -> int:
    """`write_run` in a transaction of its own, for a store no server is using."""
    return store.call_sync(lambda conn: write_run(conn, **fields))


def write_scheduled_run(
    conn,
    *,
    repo: str,
    head_sha: str,
    jobs: list[tuple[str, str, list[TestResult]]],
    schedule: str = "nightly",
    private: bool = False,
    at: float | None = None,
) -> int:
    """A finished scheduled run written row by row: (folder, machine type, results) a job."""
    now = time.time() if at is None else at
    run_id, _ = insert_run(
        conn,
        kind=SCHEDULED_KIND,
        repo=repo,
        number=None,
        head_sha=head_sha,
        base_ref=None,
        requested_by=None,
        requested_at=now - 60,
        private=private,
        runner="local",
        spec={"schedule": schedule, "default_branch": "main"},
        jobs=[
            (f"{folder} ({machine})", {"folder": folder, "machine_type": machine})
            for folder, machine, _ in jobs
        ],
        key=None,
        now=now - 60,
    )
    conn.execute("UPDATE runs SET state = 'running', started_at = ? WHERE id = ?", (now, run_id))
    ids = [
        row[0]
        for row in conn.execute("SELECT id FROM jobs WHERE run_id = ? ORDER BY id", (run_id,))
    ]
    for job_id, (_, _, tests) in zip(ids, jobs, strict=True):
        failed = sum(t.outcome == "failed" for t in tests)
        outcome = JobOutcome(
            state="failed" if failed else "passed",
            passed=sum(t.outcome == "passed" for t in tests),
            failed=failed,
            skipped=sum(t.outcome == "skipped" for t in tests),
            duration_s=30.0,
            tests=tuple(tests),
        )
        finish_job(conn, job_id, outcome, JobLimits(), now)
    conn.execute("UPDATE runs SET reported_version = version WHERE id = ?", (run_id,))
    return run_id


def benchmark_run(
    conn: sqlite3.Connection,
    *,
    repo: str,
    sha: str,
    at: float,
    number: int | None = None,
    private: bool = False,
) -> int:
    """An ended and reported benchmarks run that measured `sha` (a push's, or PR `number`'s),
    for results to be recorded against (a server started on the store has nothing to report);
    its id."""
    run_id, _ = insert_run(
        conn,
        kind="benchmarks",
        repo=repo,
        number=number,
        head_sha=sha,
        base_ref="main",
        requested_by=None,
        requested_at=at,
        private=private,
        runner="local",
        spec={},
        jobs=[],
        key=None,
        now=at,
    )
    end_run(conn, run_id, state="finished", reason="", superseded_by=None, now=at)
    mark_reported(conn, run_id, read_run(conn, run_id).version)
    return run_id
