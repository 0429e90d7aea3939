"""Starting and concluding the checks of a run's failures over a fake job system and a fake narrow
client: "the run ended like this, GitHub answers that -> these check runs, this record".

The records are a real store (the verdicts refer to the run's row), so what a restart finds is
what a restart would find.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import pytest

from bot.jobs.records import JobRecord, RunRecord
from bot.jobs.runners.junit import TestResult
from bot.kit.records import Records
from bot.store.engine import Store
from bot.store.runs import insert_run
from handlers.slow_ci import verify
from handlers.slow_ci.verdicts import CHECKING, DONE

HEAD, BASE, MERGE, MAIN_NOW = "a" * 40, "b" * 40, "c" * 40, "d" * 40
BROKEN = "tests/models/toy/test_a.py::test_x"
FLAKY = "tests/models/toy/test_b.py::test_y"
ADDED = "tests/models/toy/test_new.py::test_z"


def _job(job_id: int, run_id: int, tests: dict[str, str], **changes: Any) -> JobRecord:
    failed = tuple(t for t, outcome in tests.items() if outcome == "failed")
    job = JobRecord(
        id=job_id, run_id=run_id, kind="slow_ci", name=f"job {job_id}",
        spec={"folder": "models/toy", "machine_type": "single-gpu", "tests": list(tests)},
        state="failed" if failed else "passed", attempts=1,
        passed=sum(o == "passed" for o in tests.values()), failed=len(failed), skipped=0,
        errors=0, duration_s=1.0, busy_s=1.0, reason=None, failures=(), failed_tests=failed,
        tested_sha=MERGE, exit_code=1 if failed else 0, timings={}, created_at=0.0,
        started_at=0.0, finished_at=1.0,
    )  # fmt: skip
    return replace(job, **changes)


@dataclass
class FakeJobs:
    """The job system as the checks use it: keyed creation, and runs and results to read."""

    runs: dict[int, RunRecord] = field(default_factory=dict)
    jobs: dict[int, list[JobRecord]] = field(default_factory=dict)
    results: dict[int, dict[str, str]] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    refuse: str | None = None
    next_id: int = 100

    async def create_run(self, kind: str, *, key: str, **run: Any) -> Any:
        if self.refuse:
            raise ValueError(self.refuse)
        for existing in self.runs.values():
            if existing.key == key:
                return existing
        self.next_id += 1
        self.created.append({"kind": kind, "key": key, **run})
        record = RunRecord(
            id=self.next_id, kind=kind, repo=run["repo"], number=run["number"],
            head_sha=run["head_sha"], base_ref=run.get("base_ref"), requested_by=None,
            requested_at=0.0, state="queued", reason=None, spec=run["spec"], superseded_by=None,
            version=1, reported_version=0, created_at=0.0, started_at=None, finished_at=None,
            private=run["private"], runner=run["runner"], key=key,
        )  # fmt: skip
        self.runs[record.id] = record
        self.jobs[record.id] = [
            _job(record.id * 10 + i, record.id, dict.fromkeys(spec["tests"], "queued"))
            for i, (_, spec) in enumerate(run["jobs"])
        ]
        return record

    def end(self, run_id: int, answers: list[dict[str, str]]) -> None:
        """The check run ended; its jobs reported `answers`, one mapping per job."""
        self.runs[run_id] = replace(self.runs[run_id], state="finished")
        for job, answer in zip(self.jobs[run_id], answers, strict=True):
            self.results[job.id] = answer

    async def runs_of(self, repo: str, number: int | None, **_: Any) -> list[RunRecord]:
        return sorted(
            (r for r in self.runs.values() if r.number == number and r.kind == "slow_ci"),
            key=lambda r: -r.id,
        )

    async def get_run(self, run_id: int) -> RunRecord | None:
        return self.runs.get(run_id)

    async def jobs_of(self, run_id: int) -> list[JobRecord]:
        return self.jobs.get(run_id, [])

    async def job_tests(self, job_id: int) -> list[TestResult]:
        return [TestResult(t, o) for t, o in self.results.get(job_id, {}).items()]


@dataclass
class FakeGitHub:
    parents: dict[str, tuple[str, ...]] = field(default_factory=lambda: {MERGE: (BASE, HEAD)})
    heads: dict[str, str] = field(default_factory=lambda: {"main": MAIN_NOW})
    files: set[str] = field(
        default_factory=lambda: {"tests/models/toy/test_a.py", "tests/models/toy/test_b.py"}
    )

    async def commit_parents(self, sha: str) -> tuple[str, ...] | None:
        return self.parents.get(sha)

    async def branch_head(self, branch: str) -> str | None:
        return self.heads.get(branch)

    async def is_file(self, path: str, ref: str) -> bool:
        return path in self.files


@pytest.fixture
async def store(tmp_path):
    opened = Store(str(tmp_path / "bot.sqlite3"))
    yield opened
    opened.close()


@pytest.fixture
async def world(store):
    """A pull request's finished run with three failing tests, and the services around it."""
    run_id, _ = await store.call(
        lambda conn: insert_run(
            conn,
            kind="slow_ci",
            repo="acme/models",
            number=7,
            head_sha=HEAD,
            base_ref="main",
            requested_by="maint",
            requested_at=0.0,
            private=False,
            runner="local",
            spec={},
            jobs=[("job", {})],
            key=None,
            now=time.time(),
        )
    )
    jobs = FakeJobs()
    run = RunRecord(
        id=run_id, kind="slow_ci", repo="acme/models", number=7, head_sha=HEAD, base_ref="main",
        requested_by="maint", requested_at=0.0, state="finished", reason=None,
        spec={
            "installation_id": 5, "reruns": 2,
            "request": {"head_clone_url": "/fork.git", "head_ref": "feature",
                        "base_clone_url": "/acme/models.git", "timeout_s": 60.0, "options": {}},
        },
        superseded_by=None, version=5, reported_version=4, created_at=0.0, started_at=0.0,
        finished_at=1.0, private=False, runner="local",
    )  # fmt: skip
    jobs.runs[run.id] = run
    rows = [_job(1, run.id, {BROKEN: "failed", FLAKY: "failed", ADDED: "failed", "t": "passed"})]
    jobs.jobs[run.id] = rows
    services = SimpleNamespace(jobs=jobs, records=Records(store))
    return SimpleNamespace(
        services=services, jobs=jobs, run=run, rows=rows, github=FakeGitHub(), store=store
    )


async def _start(world, run=None, rows=None):
    return await verify.start(
        world.services, world.github, run or world.run, rows if rows is not None else world.rows
    )


async def test_a_failed_run_starts_its_reruns_and_its_run_at_the_base(world):
    started = await _start(world)
    assert started is not None and started.state == CHECKING
    reruns, at_base = world.jobs.created
    assert (reruns["key"], at_base["key"]) == (
        f"slow_ci:{world.run.id}:reruns",
        f"slow_ci:{world.run.id}:base",
    )
    # the re-runs: the approved head merged into the base the run merged into, twice
    assert (reruns["kind"], reruns["number"], reruns["head_sha"]) == ("slow_ci.check", None, HEAD)
    assert reruns["spec"]["request"] == {
        "head_clone_url": "/fork.git",
        "base_clone_url": "/acme/models.git",
        "timeout_s": 60.0,
        "base_sha": BASE,
    }  # no head_ref: a push since the run does not stop the checks of the approved commit
    assert [spec["tests"] for _, spec in reruns["jobs"]] == [[BROKEN, FLAKY, ADDED]] * 2
    # the base: its own commit, alone, a job per file it has
    assert (at_base["head_sha"], at_base.get("base_ref")) == (BASE, None)
    assert at_base["spec"]["request"] == {"head_clone_url": "/acme/models.git", "timeout_s": 60.0}
    assert [spec["tests"] for _, spec in at_base["jobs"]] == [[BROKEN], [FLAKY]]
    assert started.absent == ("tests/models/toy/test_new.py",)
    assert started.base is not None and started.base.source == "merge"


async def test_a_report_after_a_restart_creates_nothing_twice(world):
    first = await _start(world)
    again = await _start(world)
    assert again == first and len(world.jobs.created) == 2
    # a crash between creating the runs and storing the record: the keys find the same runs
    await world.store.call(lambda conn: conn.execute("DELETE FROM analysis_state"))
    resumed = await _start(world)
    assert resumed is not None and resumed.rerun_run == first.rerun_run
    assert len(world.jobs.created) == 2


async def test_a_merge_github_does_not_have_is_compared_with_the_base_branch_now(world):
    world.github.parents = {}  # the runner merged locally
    started = await _start(world)
    assert started is not None and started.base is not None
    assert (started.base.sha, started.base.source) == (MAIN_NOW, "branch")
    assert world.jobs.created[1]["head_sha"] == MAIN_NOW


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"state": "cancelled"}, id="cancelled"),
        pytest.param({"state": "cancelled", "superseded_by": 99}, id="superseded"),
        pytest.param({"state": "error", "reason": "checkout failed"}, id="errored"),
        pytest.param({"spec": {"reruns": 0}}, id="reruns = 0"),
    ],
)
async def test_a_run_that_did_not_finish_or_turned_checks_off_starts_none(world, change):
    assert await _start(world, run=replace(world.run, **change)) is None
    assert world.jobs.created == []


async def test_a_run_whose_head_moved_starts_none(world):
    rows = [replace(world.rows[0], state="error", reason="head moved: the PR is at c0ffee")]
    assert await _start(world, rows=rows) is None
    assert world.jobs.created == []


async def test_a_run_a_newer_run_slow_replaced_starts_none(world):
    world.jobs.runs[999] = replace(world.run, id=999)
    assert await _start(world) is None
    assert world.jobs.created == []


async def test_checks_the_job_system_refuses_end_with_the_reason(world):
    world.jobs.refuse = "no runner named 'local'"
    refused = await _start(world)
    assert refused is not None and refused.state == DONE
    assert refused.error == "the job system refused them (no runner named 'local')"


async def test_the_checks_conclude_once_both_ended_and_the_verdicts_are_kept(world):
    started = await _start(world)
    assert started is not None
    assert (await verify.advance(world.services, world.run.id)).state == CHECKING
    world.jobs.end(
        started.rerun_run,
        [
            {BROKEN: "failed", FLAKY: "failed", ADDED: "failed"},
            {BROKEN: "failed", FLAKY: "passed", ADDED: "failed"},
        ],
    )
    assert (await verify.advance(world.services, world.run.id)).state == CHECKING
    world.jobs.end(started.base_run, [{BROKEN: "passed"}, {FLAKY: "passed"}])
    done = await verify.advance(world.services, world.run.id)
    assert done is not None and done.state == DONE
    assert {r.suspect.test: r.label for r in done.results} == {
        BROKEN: "new",
        FLAKY: "flaky",
        ADDED: "new",
    }
    kept = {v.test: v for v in await world.services.records.verdicts_of(world.run.id)}
    assert {t: (v.status, v.verdict) for t, v in kept.items()} == {
        BROKEN: ("new", "new"),
        FLAKY: ("new", "flaky"),
        ADDED: ("new", "new"),
    }
    assert kept[BROKEN].evidence[-1] == {
        "where": "base",
        "sha": BASE,
        "run_id": started.base_run,
        "outcome": "passed",
    }
    assert await verify.advance(world.services, world.run.id) == done  # settled: stays so
