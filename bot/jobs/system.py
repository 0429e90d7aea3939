"""Long work as durable runs of jobs: queued in SQLite, executed by runners, reported to features.

A layer of its own because `run-slow`, `/style` and a GitHub Actions runner need the same things:
rows that outlive the process, one queue with a concurrency limit, a cancel that really stops a
process, and a report after every change, so that a pull request never shows a `pending` status
forever. A feature supplies job specs and a reporter that renders its comment and commit status
from the rows; it never sees the loop. The rows are `bot/jobs/records.py`'s records, read and
written by `bot/store/runs.py`; this module decides when.

Reports: every state change bumps the run's `version`; the run is reported until its
`reported_version` catches up. A reporter gets the rows as the change left them (the newest
change only, when it is slower than the changes), and after a failure it is called again later
with the current rows, so it must render idempotently. The versions live in the database so that
a report lost with the process is made by the next one. What a reporter left on GitHub (its
comment, its check run) it keeps in the run's `ReportState`, written by compare-and-set.

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
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.clients.backoff import backoff_delay
from bot.jobs.records import (
    ACTIVE_RUN_STATES,
    JOB_END_STATES,
    REQUEUED_REASON,
    STOPPED_REASON,
    JobLimits,
    JobRecord,
    ReportState,
    RunRecord,
    RunState,
    Snapshot,
)
from bot.jobs.runners.base import JobOutcome, JobRequest, Runner, RunRequest, TokenProvider
from bot.jobs.runners.junit import TestResult
from bot.logs import add_secret, redact
from bot.store import runs as runs_db
from bot.store.engine import Store, StoreClosed

log = logging.getLogger(__name__)

#: Renders a run (its comment, its commit status) from the rows; called after every change.
Reporter = Callable[[RunRecord, list[JobRecord]], Awaitable[None]]
#: The installation token for a run's fetch, minted only when a runner asks for it.
RunTokenProvider = Callable[[RunRecord], str | Awaitable[str | None] | None]
#: Turns rows into what a runner takes; the default reads `RunRequest` fields from the specs.
RequestBuilder = Callable[[RunRecord, JobRecord, TokenProvider | None], JobRequest]


# ---------------------------------------------------------------------- requests


def build_request(
    run: RunRecord,
    job: JobRecord,
    token: TokenProvider | None,
    shape: type[JobRequest] = RunRequest,
) -> JobRequest:
    """A job's request, of the shape its runner takes: a test run's `RunRequest` unless a
    feature whose jobs are something else registers `partial(build_request, shape=...)`.

    The run gives the repository, the pinned head SHA, the base branch and the pull number;
    `shape`'s other fields come from `run.spec["request"]`, then the job's spec. Keys that are
    not its fields (`runner`, the feature's own) are ignored here, and what the job system
    decides (the ids, the token, a resumed start) no spec can set.
    """
    decided = {"job_id", "run_id", "token", "artifacts_dir", "resumed"}
    settable = {f.name for f in dataclasses.fields(shape)} - decided
    fields: dict[str, Any] = {
        "repo": run.repo,
        "head_sha": run.head_sha,
        "base_ref": run.base_ref,
        "pull_number": run.number,
    }
    shared = run.spec.get("request") or {}
    for source in (shared, job.spec):
        fields.update({k: v for k, v in source.items() if k in settable})
    if isinstance(fields.get("tests"), list):
        fields["tests"] = tuple(fields["tests"])
    return shape(
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
        private: bool,
        runner: str,
        jobs: Sequence[tuple[str, Mapping[str, Any]]],
        base_ref: str | None = None,
        requested_by: str | None = None,
        requested_at: float | None = None,
        spec: Mapping[str, Any] | None = None,
        key: str | None = None,
        supersede: bool = False,
    ) -> RunRecord:
        """Stores a run and its jobs (on disk when this returns) and queues the jobs.

        `private` (whether the run's pages are only for those who may read the repository) and
        `runner` (where all its jobs run) have no default: who may see a run is never left to
        a feature remembering to say so. `key` makes it idempotent: a second call with the same
        key returns the first run (a redelivered comment). `supersede` cancels the older active
        runs of the same kind on the same pull request in the same transaction; their processes
        are stopped meanwhile. Raises ValueError for a spec the runner could not take (or a
        runner that is not configured), before anything is stored.
        """
        if not isinstance(private, bool):
            raise TypeError(f"private must be True or False, not {private!r}")
        if runner not in self.runners:
            raise ValueError(f"no runner named {runner!r}")
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
            probe = RunRecord(
                0, kind, repo, number, head_sha, base_ref, None, 0.0, "queued", None, spec,
                None, 1, 0, 0.0, None, None, private=private, runner=runner,
            )  # fmt: skip
            self._check_spec(probe, name, job_spec)

        def create(conn: sqlite3.Connection) -> tuple[Snapshot, bool, list[Snapshot], list[int]]:
            run_id, new = runs_db.insert_run(
                conn,
                kind=kind,
                repo=repo,
                number=number,
                head_sha=head_sha,
                base_ref=base_ref,
                requested_by=requested_by,
                requested_at=requested_at if requested_at is not None else now,
                private=private,
                runner=runner,
                spec=spec,
                jobs=jobs,
                key=key,
                now=now,
            )
            ended: list[Snapshot] = []
            running: list[int] = []
            if new and supersede:
                ended, running = runs_db.supersede_older(conn, run_id, now)
            snap = runs_db.snapshot(conn, run_id)
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

    def _check_spec(self, run: RunRecord, name: str, job_spec: Mapping[str, Any]) -> None:
        """Builds the job's request from a run not yet stored: what the runner would refuse
        is refused before anything is stored."""
        feature = self._features.get(run.kind)
        builder = (feature.build_request if feature else None) or build_request
        job = JobRecord(
            0, 0, run.kind, name, dict(job_spec), "queued", 0, 0, 0, 0, 0, None, None, None, (), (),
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
            running = runs_db.end_run(
                conn, run_id, state=state, reason=reason, superseded_by=superseded_by, now=now
            )
            return running, runs_db.snapshot(conn, run_id), conn.total_changes != before

        running, snap, changed = await self.store.call(end)
        if snap is None:
            return None
        if changed:
            self._changed(snap)
        await self._stop_jobs(running, reason)
        return await self.get_run(run_id)

    def observe(self, event: str, data: Mapping[str, Any]) -> bool:
        """Offers a webhook to the runners that follow their jobs through webhooks (the Actions
        runner's `workflow_run`); True when one of them was following what it is about."""
        followed = False
        for runner in self.runners.values():
            observe = getattr(runner, "observe", None)
            if observe is not None and observe(event, data):
                followed = True
        return followed

    # -- a feature's memory of a run -----------------------------------------------------

    async def report_state(self, run_id: int) -> ReportState:
        """What the run's reports left on GitHub so far, as stored now; KeyError: no such run."""
        state = await self.store.call(
            lambda conn: runs_db.read_report_state(conn, run_id), single=True
        )
        if state is None:
            raise KeyError(run_id)
        return state

    async def swap_report_state(self, run_id: int, expected: ReportState, new: ReportState) -> bool:
        """Writes `new` if the stored state is still `expected`; False when another report got
        there first (nothing is written: re-read, then decide again). Not a change to report."""
        return await self.store.call(
            lambda conn: runs_db.swap_report_state(conn, run_id, expected, new)
        )

    async def edit_report_state(
        self, run_id: int, change: Callable[[ReportState], ReportState]
    ) -> ReportState:
        """Applies `change` to the current state until its swap wins; returns what it wrote.

        For a write that holds whatever another writer did meanwhile (set one field), where
        `swap_report_state` alone would have the caller write this loop.
        """
        while True:
            current = await self.report_state(run_id)
            new = change(current)
            if new == current or await self.swap_report_state(run_id, current, new):
                return new

    # -- reading runs --------------------------------------------------------------------

    async def get_run(self, run_id: int) -> RunRecord | None:
        return await self.store.call(lambda conn: runs_db.read_run(conn, run_id), single=True)

    async def jobs_of(self, run_id: int) -> list[JobRecord]:
        return await self.store.call(lambda conn: runs_db.read_jobs(conn, run_id), single=True)

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
        return await self.store.call(
            lambda conn: runs_db.runs_of(
                conn, repo, number, kind=kind, states=states, limit=limit, newest=newest
            ),
            single=True,
        )

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
        self, kind: str, names: Iterable[str], *, repo: str, limit: int = 10
    ) -> dict[str, list[float]]:
        """Newest first, per job name of `repo`; for an estimate next to a queued run and the
        order of a schedule's jobs."""
        wanted = list(names)
        return await self.store.call(
            lambda conn: runs_db.past_durations(conn, repo, kind, wanted, limit), single=True
        )

    async def queue_position(self, run_id: int) -> int:
        return await self.store.call(lambda conn: runs_db.queue_position(conn, run_id), single=True)

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
        return await self.store.call(
            lambda conn: runs_db.job_blob(conn, job_id, column), single=True
        )

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
            pending = await self.store.call(runs_db.unsettled_runs, single=True)
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
        snaps = await self.store.call(lambda conn: runs_db.recover(conn, time.time()))
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
                    lambda conn, full=full, only=only: runs_db.claim_next_job(
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
                await self.store.call(lambda conn: runs_db.requeue_stopped(conn, stopped))
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
        active = _Active(job.id, _LiveLog(self.limits.live_log_bytes), run.runner)
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
                lambda conn: runs_db.finish_job(conn, job.id, outcome, self.limits, time.time())
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
        name = run.runner
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
            text = active.live.text()
            try:
                await self.store.call(
                    lambda conn, text=text: runs_db.write_live_log(
                        conn, active.job_id, text, self.limits.live_log_bytes
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
            snap = await self.store.call(
                lambda conn: runs_db.cancel_running_job(conn, job_id, reason, now)
            )
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
                        state.latest = await self.store.call(
                            lambda conn: runs_db.snapshot(conn, run_id)
                        )
                    except (StoreClosed, sqlite3.Error):
                        log.warning("could not read run %s to report it", run_id, exc_info=True)
                        break
                continue
            failures = 0
            version = run.version
            try:
                await self.store.call(
                    lambda conn, v=version: runs_db.mark_reported(conn, run_id, v), single=True
                )
            except (StoreClosed, sqlite3.Error):
                log.warning("could not record the report of run %s", run_id, exc_info=True)
            self._notify()
        if self._reports.get(run_id) is state and state.latest is None:
            del self._reports[run_id]

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
