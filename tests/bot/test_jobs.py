"""The job system on real SQLite files: order, reports, failures, cancellation, restarts.

Most tests drive a scripted runner (the `Runner` protocol, no processes) so that each behaviour
is decided by the test; cancellation and `--failed` re-runs use the real local runner on a git
repository made in the test, so a process really is killed and real JUnit XML is read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.jobs.records import (
    REQUEUED_REASON,
    RESTART_REASON,
    STOPPED_REASON,
    JobRecord,
    ReportState,
    RunFilter,
    RunRecord,
)
from bot.jobs.runners import (
    EnvCache,
    EnvConfig,
    GpuPool,
    JobOutcome,
    LocalRunner,
    LocalRunnerConfig,
    LogSink,
    RunRequest,
    TestResult,
)
from bot.jobs.runners.base import resolve_token
from bot.jobs.system import JobSystem
from bot.store import runs as runs_db
from bot.store.engine import Store
from tests.runners.helpers import TOY_PYPROJECT, Git
from tests.support.processes import alive, marked

SHA = "a" * 40
REPO = "owner/repo"
Script = Callable[[RunRequest, LogSink | None], Awaitable[JobOutcome]]


async def passing(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
    return JobOutcome("passed", "2 passed", passed=2, duration_s=1.0)


class ScriptedRunner:
    """A runner whose every job does what the test scripted for its folder."""

    name = "fake"

    def __init__(self, scripts: dict[str, Script] | None = None) -> None:
        self.scripts = scripts or {}
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.requests: list[RunRequest] = []
        self._stops: dict[str, asyncio.Event] = {}

    async def run(self, request: RunRequest, on_log: LogSink | None = None) -> JobOutcome:
        self.started.append(request.folder)
        self.requests.append(request)
        stop = self._stops.setdefault(request.job_id, asyncio.Event())
        work = asyncio.ensure_future(self.scripts.get(request.folder, passing)(request, on_log))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if stop.is_set():
            return JobOutcome("cancelled", "cancelled")
        return work.result()

    async def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        self._stops.setdefault(job_id, asyncio.Event()).set()
        return True


class Reports:
    """A reporter that keeps what it was shown; it can be told to fail its next calls."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, tuple[str, ...]]] = []
        self.failures_left = 0
        self.calls = 0

    async def __call__(self, run: RunRecord, jobs: list[JobRecord]) -> None:
        self.calls += 1
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("GitHub answered 502")
        self.seen.append((run.id, run.state, tuple(j.state for j in jobs)))

    def run_states(self, run_id: int) -> list[str]:
        """The run's states as the reporter saw them, repeats folded."""
        out: list[str] = []
        for seen_id, state, _ in self.seen:
            if seen_id == run_id and (not out or out[-1] != state):
                out.append(state)
        return out

    def last(self, run_id: int) -> tuple[str, tuple[str, ...]]:
        return next((s, j) for i, s, j in reversed(self.seen) if i == run_id)


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def job(folder: str, **spec: Any) -> tuple[str, dict[str, Any]]:
    return f"single-gpu_{folder.replace('/', '_')}", {"folder": folder, **spec}


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "bot.sqlite3")


@pytest.fixture
async def make_system(db_path: str) -> AsyncIterator[Callable[..., tuple[JobSystem, Reports]]]:
    """JobSystems on one database file; each may be "killed" by closing its store first."""
    made: list[tuple[JobSystem, Store]] = []

    def make(runners: dict[str, Any], **options: Any) -> tuple[JobSystem, Reports]:
        store = Store(db_path)
        options.setdefault("report_retry_s", 0.05)
        options.setdefault("poll_s", 0.5)
        system = JobSystem(store, runners, **options)
        reports = Reports()
        system.register("slow_ci", reports)
        made.append((system, store))
        return system, reports

    yield make
    for system, store in made:
        await system.stop()
        store.close()


async def create(system: JobSystem, *jobs: tuple[str, dict[str, Any]], **kw: Any) -> RunRecord:
    kw.setdefault("number", 7)
    kw.setdefault("private", True)
    kw.setdefault("runner", "fake")
    kw.setdefault("spec", {"request": {"head_clone_url": "/nowhere"}, "comment_id": 11})
    return await system.create_run(
        "slow_ci", repo=REPO, head_sha=SHA, base_ref="main", requested_by="alice", jobs=jobs, **kw
    )


async def test_jobs_run_in_order_and_the_reporter_sees_queued_running_finished(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    failing_test = TestResult(
        "tests/models/b/test_b.py::test_wrong",
        "failed",
        message="assert 6 == 7",  # as pytest writes a bare assert
        assertion="assert 6 == 7",
        traceback="E   assert 6 == 7",
    )

    async def fails(_request: RunRequest, on_log: LogSink | None) -> JobOutcome:
        assert on_log is not None
        on_log("collected 2 items")
        return JobOutcome(
            "failed",
            "1 passed, 1 failed",
            passed=1,
            failed=1,
            duration_s=2.5,
            tests=(TestResult("tests/models/b/test_b.py::test_ok", "passed"), failing_test),
            log="collected 2 items\nFAILED test_wrong\n",
            junit_xml="<testsuites/>",
            tested_sha=SHA,
            exit_code=1,
        )

    runner = ScriptedRunner({"models/b": fails})
    system, reports = make_system({"fake": runner})
    run = await create(system, job("models/a"), job("models/b"))
    assert run.state == "queued" and run.spec["comment_id"] == 11
    await eventually(lambda: reports.seen)  # the first report comes before any job starts
    await system.start()
    done = await until_ended(system, run.id, reported=True, timeout=10)

    assert done.state == "finished" and done.finished_at is not None
    assert runner.started == ["models/a", "models/b"]
    assert reports.run_states(run.id) == ["queued", "running", "finished"]
    assert reports.seen[0][2] == ("queued", "queued")
    assert reports.last(run.id) == ("finished", ("passed", "failed"))
    a, b = await system.jobs_of(run.id)
    assert (a.state, a.attempts, a.passed) == ("passed", 1, 2)
    assert (b.state, b.passed, b.failed, b.exit_code, b.tested_sha) == ("failed", 1, 1, 1, SHA)
    assert b.failures == (("tests/models/b/test_b.py::test_wrong", "assert 6 == 7"),)
    assert b.failed_tests == ("tests/models/b/test_b.py::test_wrong",)
    assert "FAILED test_wrong" in (await system.job_log(b.id) or "")
    assert await system.job_junit(b.id) == "<testsuites/>"
    assert [t.node_id for t in await system.job_tests(b.id)] == [
        "tests/models/b/test_b.py::test_ok",
        failing_test.node_id,
    ]
    request = runner.requests[1]
    assert (request.repo, request.head_sha, request.base_ref, request.pull_number) == (
        REPO,
        SHA,
        "main",
        7,
    )
    assert request.job_id == str(b.id) and request.head_clone_url == "/nowhere"


async def test_a_runner_that_raises_or_errs_ends_the_job_in_error_and_the_loop_goes_on(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    async def raises(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        raise RuntimeError("the machine caught fire")

    async def errs(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        return JobOutcome("error", "could not fetch the approved commit")

    async def times_out(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        return JobOutcome("timed_out", "timed out after 2 s", duration_s=2.0)

    runner = ScriptedRunner({"models/a": raises, "models/b": errs, "models/c": times_out})
    system, reports = make_system({"fake": runner})
    await system.start()
    run = await create(system, job("models/a"), job("models/b"), job("models/c"), job("models/d"))
    done = await until_ended(system, run.id, reported=True, timeout=10)

    states = [(j.state, j.reason) for j in await system.jobs_of(run.id)]
    assert states == [
        ("error", "the runner failed: RuntimeError: the machine caught fire"),
        ("error", "could not fetch the approved commit"),
        ("timed_out", "timed out after 2 s"),
        ("passed", "2 passed"),
    ]
    assert done.state == "finished"
    assert reports.last(run.id) == ("finished", ("error", "error", "timed_out", "passed"))


async def test_the_token_is_minted_only_when_the_runner_asks_and_never_stored(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    token = "ghs_installation_token_123"
    asked: list[int] = []

    async def provide(run: RunRecord) -> str:
        asked.append(run.id)
        return token

    async def leaks(request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        assert request.token is not None
        value = await resolve_token(request.token)
        raise RuntimeError(f"fetch failed with {value}")

    system, reports = make_system({"fake": ScriptedRunner({"models/b": leaks})})
    system.register("slow_ci", reports, token_provider=provide)
    await system.start()
    run = await create(system, job("models/a"), job("models/b"))
    await until_ended(system, run.id, reported=True)
    _, b = await system.jobs_of(run.id)
    assert asked == [run.id]  # models/a never fetched over HTTP, so it never asked
    assert (
        b.state == "error" and b.reason == "the runner failed: RuntimeError: fetch failed with ***"
    )
    dump = "\n".join(await system.store.call(lambda conn: list(conn.iterdump())))
    assert token not in dump


async def test_concurrency_runs_that_many_jobs_at_once(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    both = asyncio.Event()
    runner: ScriptedRunner

    async def together(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        if len(runner.started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 5)
        return JobOutcome("passed")

    runner = ScriptedRunner({"models/a": together, "models/b": together})
    system, _ = make_system({"fake": runner}, concurrency=2)
    await system.start()
    run = await create(system, job("models/a"), job("models/b"), job("models/c"))
    await until_ended(system, run.id)
    assert [j.state for j in await system.jobs_of(run.id)] == ["passed"] * 3


async def test_a_spec_no_runner_could_take_is_refused_before_it_is_stored(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    system, _ = make_system({"fake": ScriptedRunner()})
    with pytest.raises(ValueError, match="no runner named 'gpu-farm'"):
        await create(system, job("models/a"), runner="gpu-farm")
    with pytest.raises(ValueError, match="folder must be a relative path"):
        await create(system, job("../../etc"))
    with pytest.raises(ValueError, match="unique"):
        await create(system, job("models/a"), job("models/a"))
    assert await system.runs_of(REPO, 7) == []


async def test_a_reporter_that_raises_is_retried_and_does_not_stop_the_loop(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    runner = ScriptedRunner()
    system, reports = make_system({"fake": runner})
    reports.failures_left = 3
    await system.start()
    first = await create(system, job("models/a"))
    second = await create(system, job("models/b"), number=8)
    await until_ended(system, first.id, reported=True, timeout=10)
    await until_ended(system, second.id, reported=True, timeout=10)
    assert runner.started == ["models/a", "models/b"]
    assert reports.calls > len(reports.seen)  # the failed calls were made, then made again
    assert reports.last(first.id) == ("finished", ("passed",))
    assert reports.last(second.id) == ("finished", ("passed",))


async def test_a_redelivered_request_returns_the_first_run(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    system, _ = make_system({"fake": ScriptedRunner()})
    first = await create(system, job("models/a"), key="delivery-1")
    again = await create(system, job("models/a"), key="delivery-1")
    assert again.id == first.id
    assert len(await system.runs_of(REPO, 7)) == 1


async def test_a_run_cannot_be_created_without_saying_whether_it_is_private(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    system, _ = make_system({"fake": ScriptedRunner()})
    fields: dict[str, Any] = {
        "repo": REPO,
        "number": 7,
        "head_sha": SHA,
        "runner": "fake",
        "jobs": [job("models/a")],
        # what a feature once wrote into its spec no longer decides who sees the run
        "spec": {"request": {"head_clone_url": "/nowhere"}, "private": False},
    }
    with pytest.raises(TypeError, match="private"):
        await system.create_run("slow_ci", **fields)
    for unsaid in (None, 0, "false"):
        with pytest.raises(TypeError, match="private must be True or False"):
            await system.create_run("slow_ci", private=unsaid, **fields)
    without_runner = {name: value for name, value in fields.items() if name != "runner"}
    with pytest.raises(TypeError, match="runner"):
        await system.create_run("slow_ci", private=False, **without_runner)
    assert await system.runs_of(REPO, 7) == []

    private = await system.create_run("slow_ci", private=True, **fields)
    public = await system.create_run("slow_ci", private=False, **fields)
    assert (private.private, public.private) == (True, False)
    listed = await system.store.call(
        lambda conn: runs_db.list_runs(conn, RunFilter(visible=frozenset()))
    )
    assert [run.id for run in listed] == [public.id]


async def test_the_runs_runner_takes_its_jobs_whatever_a_job_spec_says(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    fake, other = ScriptedRunner(), ScriptedRunner()
    system, _ = make_system({"fake": fake, "other": other})
    await system.start()
    run = await create(system, job("models/a", runner="other"), runner="fake")
    assert run.runner == "fake"
    await until_ended(system, run.id)
    assert (fake.started, other.started) == (["models/a"], [])


async def test_a_stale_report_state_is_refused_and_nothing_is_written(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    system, _ = make_system({"fake": ScriptedRunner()})
    run = await create(system, job("models/a"))
    empty = await system.report_state(run.id)
    assert empty == ReportState()
    posted = ReportState(comment_id=501)
    assert await system.swap_report_state(run.id, empty, posted)
    checked = ReportState(check_run_id=601)
    assert not await system.swap_report_state(run.id, empty, checked)  # read before the post
    assert await system.report_state(run.id) == posted
    assert await system.swap_report_state(run.id, posted, ReportState(501, 601))
    assert await system.report_state(run.id) == ReportState(comment_id=501, check_run_id=601)
    # The feature's memory is not a change of the run: nothing new to report.
    assert (await system.get_run(run.id)).version == run.version  # type: ignore[union-attr]
    assert not await system.swap_report_state(run.id + 1, empty, posted)
    with pytest.raises(KeyError):
        await system.report_state(run.id + 1)


async def test_two_concurrent_report_writers_never_lose_an_update(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    # Two processes on one database (two stores), each counting annotations it sent and
    # recording its own ids, every read and write interleaved with the other's.
    first, _ = make_system({"fake": ScriptedRunner()})
    second, _ = make_system({"fake": ScriptedRunner()})
    run = await create(first, job("models/a"))
    refused = 0

    async def writer(system: JobSystem, field: str, rounds: int) -> None:
        nonlocal refused
        for n in range(rounds):
            while True:
                seen = await system.report_state(run.id)
                await asyncio.sleep(0)  # the other writer reads the same state meanwhile
                new = dataclasses.replace(
                    seen, annotations_sent=seen.annotations_sent + 1, **{field: n}
                )
                if await system.swap_report_state(run.id, seen, new):
                    break
                refused += 1

    async def editor(system: JobSystem, rounds: int) -> None:
        for _ in range(rounds):
            await system.edit_report_state(
                run.id, lambda s: dataclasses.replace(s, annotations_sent=s.annotations_sent + 1)
            )

    await asyncio.gather(
        writer(first, "comment_id", 20), writer(second, "check_run_id", 20), editor(first, 10)
    )
    final = await second.report_state(run.id)
    assert final == ReportState(comment_id=19, check_run_id=19, annotations_sent=50)
    assert refused > 0  # the writers did collide: compare-and-set is what kept every update


async def test_cancel_stops_a_running_local_job_within_seconds(
    make_system: Callable[..., tuple[JobSystem, Reports]], tmp_path: Path
) -> None:
    # Confined, the test's PIDs are its namespace's: it is found on the host by a mark.
    mark = f"sleeper-{time.time_ns()}"
    sleeper = (
        "import subprocess, time\n\n\ndef test_sleep():\n"
        f"    subprocess.Popen([{mark!r}, '60'], executable='/bin/sleep')\n"
        "    time.sleep(60)\n"
    )
    git = Git(tmp_path / "git-home")
    origin = tmp_path / "origin"
    sha = git.init(
        origin, {"pyproject.toml": TOY_PYPROJECT, "tests/models/toy/test_sleep.py": sleeper}
    )
    system, reports = make_system({"local": local_runner(tmp_path)}, log_flush_s=0.1)
    await system.start()
    run = await system.create_run(
        "slow_ci",
        repo=REPO,
        number=3,
        head_sha=sha,
        private=True,
        runner="local",
        spec={"request": {"head_clone_url": str(origin)}},
        jobs=[job("models/toy", timeout_s=120)],
    )
    (pid,) = await eventually(lambda: marked(mark), timeout=30)
    (running,) = await system.jobs_of(run.id)
    assert running.state == "running"
    assert "python -m pytest" in await eventually(lambda: stored_log(system, running.id))

    started = time.monotonic()
    ended = await system.cancel_run(run.id, "stopped by a maintainer")
    assert time.monotonic() - started < 5
    assert ended is not None and ended.state == "cancelled"
    assert ended.reason == "stopped by a maintainer"
    (cancelled,) = await system.jobs_of(run.id)
    assert (cancelled.state, cancelled.reason) == ("cancelled", "stopped by a maintainer")
    await asyncio.sleep(0.2)
    assert not alive(pid)
    await until_ended(system, run.id, reported=True, timeout=5)
    assert reports.last(run.id) == ("cancelled", ("cancelled",))


async def test_a_newer_run_supersedes_the_older_one_on_the_same_pull_request(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    hang = asyncio.Event()

    async def hangs(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        await hang.wait()
        return JobOutcome("passed")

    runner = ScriptedRunner({"models/a": hangs})
    system, reports = make_system({"fake": runner})
    await system.start()
    old = await create(system, job("models/a"), job("models/b"))
    await eventually(lambda: runner.started)
    other_pull = await create(system, job("models/c"), number=99)
    new = await create(system, job("models/c"), supersede=True)

    assert [r.id for r in await system.active_runs("slow_ci", REPO, 7)] == [new.id]
    ended = await until_ended(system, old.id, reported=True, timeout=5)
    assert (ended.state, ended.superseded_by) == ("cancelled", new.id)
    assert ended.reason == f"superseded by run {new.id}"
    assert [j.state for j in await system.jobs_of(old.id)] == ["cancelled", "cancelled"]
    assert runner.cancelled == [str((await system.jobs_of(old.id))[0].id)]
    assert (await until_ended(system, new.id, timeout=5)).state == "finished"
    assert (await until_ended(system, other_pull.id, timeout=5)).state == "finished"
    assert "models/b" not in runner.started
    assert reports.last(old.id) == ("cancelled", ("cancelled", "cancelled"))


async def test_a_restart_requeues_a_running_job_once_then_ends_it_in_error(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    async def hangs(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def killed(system: JobSystem) -> None:
        """The process dies: nothing it would still write reaches the database."""
        system.store.close()
        await system.stop()

    first, _ = make_system({"fake": ScriptedRunner({"models/a": hangs})})
    await first.start()
    run = await create(first, job("models/a"), job("models/b"))
    await eventually(lambda: running_job(first, run.id))
    await killed(first)

    second, reports = make_system({"fake": ScriptedRunner({"models/a": hangs})})
    await second.start()
    again = await eventually(lambda: running_job(second, run.id))
    assert again.attempts == 2
    await eventually(lambda: reports.seen)  # the unfinished run was reported again
    assert reports.last(run.id)[0] == "running"
    await killed(second)

    third, reports = make_system({"fake": ScriptedRunner()})
    await third.start()
    done = await until_ended(third, run.id, reported=True, timeout=10)
    a, b = await third.jobs_of(run.id)
    assert (a.state, a.reason, a.attempts) == ("error", RESTART_REASON, 2)
    assert (b.state, b.attempts) == ("passed", 1)
    assert done.state == "finished"
    assert reports.last(run.id) == ("finished", ("error", "passed"))


async def test_a_requeued_job_says_why_and_a_clean_stop_uses_no_attempt(
    make_system: Callable[..., tuple[JobSystem, Reports]], db_path: str
) -> None:
    async def hangs(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    first, _ = make_system({"fake": ScriptedRunner({"models/a": hangs})})
    await first.start()
    run = await create(first, job("models/a"))
    await eventually(lambda: running_job(first, run.id))
    await first.stop()
    (stopped,) = await first.jobs_of(run.id)
    assert (stopped.state, stopped.attempts, stopped.reason) == ("queued", 0, STOPPED_REASON)

    first.store.close()  # a crash while it runs: recovery re-queues it with its reason
    second, _ = make_system({"fake": ScriptedRunner({"models/a": hangs})})
    await second.start()
    await eventually(lambda: running_job(second, run.id))
    second.store.close()
    await second.stop()
    store = Store(db_path)
    try:
        snaps = store.call_sync(lambda conn: runs_db.recover(conn, time.time()))
    finally:
        store.close()
    ((_, (requeued,)),) = snaps
    assert (requeued.state, requeued.reason, requeued.attempts) == ("queued", REQUEUED_REASON, 1)


async def test_a_run_whose_jobs_all_ended_is_finished_and_reported_at_start(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    first, _ = make_system({"fake": ScriptedRunner()})
    run = await create(first, job("models/a"))

    def ended_unfinished(conn: Any) -> None:
        # The process died between storing the last job's end and finishing the run.
        conn.execute("UPDATE jobs SET state = 'passed' WHERE run_id = ?", (run.id,))
        conn.execute("UPDATE runs SET state = 'running', reported_version = version")

    await first.store.call(ended_unfinished)
    await first.stop()
    first.store.close()

    second, reports = make_system({"fake": ScriptedRunner()})
    await second.start()
    done = await until_ended(second, run.id, reported=True, timeout=5)
    assert done.state == "finished"
    assert reports.last(run.id) == ("finished", ("passed",))


async def test_past_durations_and_queue_position(
    make_system: Callable[..., tuple[JobSystem, Reports]],
) -> None:
    gate = asyncio.Event()
    durations = iter([30.0, 50.0])

    async def timed(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        await gate.wait()
        return JobOutcome("passed", duration_s=next(durations) + 5, timings={"wait": 5.0})

    async def skipped(_request: RunRequest, _on_log: LogSink | None) -> JobOutcome:
        return JobOutcome("skipped", "no GPU for multi-gpu", duration_s=0.1)

    runner = ScriptedRunner({"models/a": timed, "models/b": skipped})
    system, _ = make_system({"fake": runner})
    first = await create(system, job("models/a"), job("models/b"))
    second = await create(system, job("models/a"), number=8)
    assert await system.queue_position(first.id) == 1
    assert await system.queue_position(second.id) == 3

    await system.start()
    await eventually(lambda: runner.started)
    assert await system.queue_position(first.id) == 1  # its second job is next
    assert await system.queue_position(second.id) == 2
    gate.set()
    await until_ended(system, second.id, timeout=10)
    assert await system.queue_position(second.id) == 0

    names = [job("models/a")[0], job("models/b")[0], "never-ran"]
    assert await system.past_durations("slow_ci", names, repo=REPO) == {names[0]: [50.0, 30.0]}
    assert await system.past_durations("style", names, repo=REPO) == {}
    # Another repository's job of the same name is other tests: it says nothing of these.
    assert await system.past_durations("slow_ci", names, repo="acme/other") == {}


async def test_failed_rerun_runs_only_the_failed_tests_of_the_last_run(
    make_system: Callable[..., tuple[JobSystem, Reports]], tmp_path: Path
) -> None:
    tests = (
        "def test_ok():\n    assert 2 * 2 == 4\n\n\n"
        "def test_wrong():\n    value = 3 * 2\n    assert value == 7\n"
    )
    git = Git(tmp_path / "git-home")
    origin = tmp_path / "origin"
    files = {
        "pyproject.toml": TOY_PYPROJECT,
        "tests/models/toy/test_math.py": tests,
        "tests/models/toy/test_more.py": "def test_fine():\n    pass\n",
    }
    sha = git.init(origin, files)
    system, _ = make_system({"local": local_runner(tmp_path)})
    await system.start()

    async def run_slow(jobs: list[tuple[str, dict[str, Any]]]) -> list[JobRecord]:
        run = await system.create_run(
            "slow_ci",
            repo=REPO,
            number=5,
            head_sha=sha,
            private=True,
            runner="local",
            spec={"request": {"head_clone_url": str(origin)}},
            jobs=jobs,
        )
        assert (await until_ended(system, run.id, timeout=60)).state == "finished"
        return await system.jobs_of(run.id)

    (first,) = await run_slow([job("models/toy")])
    wrong = "tests/models/toy/test_math.py::test_wrong"
    assert (first.state, first.passed, first.failed) == ("failed", 2, 1)
    assert first.failed_tests == (wrong,)
    assert first.failures == ((wrong, "assert 6 == 7"),)

    last = await system.last_run("slow_ci", REPO, 5)
    assert last is not None
    _, previous = last
    rerun = [(j.name, {**j.spec, "tests": list(j.failed_tests)}) for j in previous if not j.ok]
    (second,) = await run_slow(rerun)
    assert (second.state, second.passed, second.failed) == ("failed", 0, 1)
    assert [t.node_id for t in await system.job_tests(second.id)] == [wrong]
    assert "test_wrong" in (await system.job_junit(second.id) or "")
    newest = await system.last_run("slow_ci", REPO, 5)
    assert newest is not None and newest[1][0].id == second.id


# ---------------------------------------------------------------------- helpers


async def until_ended(
    system: JobSystem, run_id: int, *, reported: bool = False, timeout: float = 10
) -> RunRecord:
    async with asyncio.timeout(timeout):
        return await system.wait(run_id, reported=reported)


def local_runner(tmp_path: Path) -> LocalRunner:
    """The real local runner on the .venv's interpreter, which has pytest: nothing is built."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return LocalRunner(
        EnvCache(EnvConfig(python=sys.executable)),
        GpuPool(devices=[]),
        LocalRunnerConfig(work_dir=work, kill_grace_s=1.0),
    )


async def running_job(system: JobSystem, run_id: int) -> JobRecord | None:
    return next((j for j in await system.jobs_of(run_id) if j.state == "running"), None)


async def stored_log(system: JobSystem, job_id: int) -> str:
    """The log as a run page served by another process would read it: from the row."""
    blob = await system.store.call(
        lambda conn: conn.execute("SELECT log FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    )
    return runs_db.unzip(blob) or ""
