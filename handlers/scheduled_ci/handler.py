"""Scheduled slow runs: a fire starts a run on the default branch's head; its end starts the checks.

Thin I/O around the pure parts. A fire (`on_fire`) reads the default branch's head and its test
folders and creates one run: every selected folder × machine type, longest first. When that run
ends, `advance` compares it with the schedule's previous finished run, then checks each new
failure with small runs of the same job system: re-runs at the same commit (flaky?), one run at
the previous run's commit (pre-existing?), then bisect probes over the first-parent commits
between the two. Each step is a run, and where the analysis stands is one stored record written
with compare-and-set, so a restart resumes from the stored steps and two checks ending together
never lose one another's answers. The report goes to Slack through the outbox, once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bot.jobs.runners.base import node_under
from bot.kit.context import JobRecord, RunRecord, Services
from bot.kit.conversation import job_refusal
from bot.kit.feature import Fire, FireResult, ScheduleSpec
from bot.kit.records import TestVerdict
from handlers.scheduled_ci.bisect import Bisect
from handlers.scheduled_ci.client import CommitPull, ScheduledCiGitHub
from handlers.scheduled_ci.config import Schedule
from handlers.scheduled_ci.plan import (
    Comparison,
    RunTests,
    classify,
    compare,
    order_jobs,
    select_folders,
)
from handlers.scheduled_ci.render import could_not_start_message
from handlers.scheduled_ci.report import notify_pulls, send_report

log = logging.getLogger(__name__)

KIND = "scheduled_ci"
#: The small runs that check a scheduled run's new failures: re-runs, the previous commit, and
#: bisect probes. Their reporter only moves the scheduled run's analysis along.
CHECK_KIND = "scheduled_ci.check"
#: What a schedule tests when it names no folders: every model and quantization folder.
DEFAULT_FOLDERS = ("models/*", "quantization/*")

# Phases of a scheduled run's analysis, in order.
VERIFY, BISECT, REPORT, DONE = "verify", "bisect", "report", "done"


def schedules(config: Any) -> list[ScheduleSpec]:
    """What a repository's `bot.toml` asks the scheduler for."""
    return [ScheduleSpec(s.name, s.cron) for s in config.scheduled_ci]


def _job_name(folder: str, machine_type: str) -> str:
    return f"{folder} ({machine_type})"


# ---------------------------------------------------------------------- fire


async def on_fire(services: Services, fire: Fire) -> FireResult:
    """Starts the schedule's run on the default branch's head, or says why none started (and
    tells the schedule's channel, rather than reporting zeros later)."""
    gh = await services.github.for_installation(fire.installation_id)
    github = ScheduledCiGitHub(gh, fire.repo)
    repository = await github.repository()
    config = await services.configs.get(gh, fire.repo, repository.default_branch)
    schedule = next((s for s in config.scheduled_ci if s.name == fire.name), None)
    if schedule is None:
        return FireResult(None, f"the schedule {fire.name!r} is no longer in bot.toml")
    slow = config.slow_ci
    sha = await github.branch_head(repository.default_branch)
    available = await github.test_folders(sha)
    folders, unmatched = select_folders(schedule.folders, available)
    reason = None
    if not folders:
        wanted = ", ".join(schedule.folders or DEFAULT_FOLDERS)
        reason = f"no test folder at {sha[:12]} matches {wanted}"
    else:
        reason = job_refusal(services.jobs, slow.runner, "the [slow_ci] runner setting")
    if reason is not None:
        await _could_not_start(services, fire, schedule, reason)
        return FireResult(None, reason)
    if unmatched:
        log.warning(
            "schedule %s of %s: %s matched no test folder at %s; running the others",
            schedule.name,
            fire.repo,
            ", ".join(unmatched),
            sha[:12],
        )
    pairs = [(folder, machine) for folder in folders for machine in schedule.machine_types]
    past = await services.jobs.past_durations(
        KIND, [_job_name(*pair) for pair in pairs], repo=fire.repo
    )
    durations = {
        pair: times[0] for pair in pairs if (times := past.get(_job_name(*pair))) and times
    }
    ordered = order_jobs(pairs, durations)
    run = await services.jobs.create_run(
        KIND,
        repo=fire.repo,
        number=None,
        head_sha=sha,
        private=repository.private,
        runner=slow.runner,
        jobs=[
            (_job_name(folder, machine), {"folder": folder, "machine_type": machine})
            for folder, machine in ordered
        ],
        requested_by=None,
        requested_at=fire.fired_at,
        key=f"scheduled_ci:{fire.id}",
        spec={
            "schedule": schedule.name,
            "installation_id": fire.installation_id,
            "default_branch": repository.default_branch,
            "html_url": repository.html_url,
            "unmatched": unmatched,
            "request": _request(repository.clone_url, schedule, slow, repository.default_branch),
        },
    )
    log.info(
        "scheduled run %s of %s on %s: %s jobs at %s",
        run.id,
        schedule.name,
        fire.repo,
        len(ordered),
        sha[:12],
    )
    return FireResult(run.id)


def _request(clone_url: str, schedule: Schedule, slow: Any, branch: str) -> dict[str, Any]:
    """What every job of the run and of its checks is given: the same runner settings as
    `run-slow`'s, with the schedule's time limit."""
    options: dict[str, Any] = {}
    if slow.runner == "github-actions":
        options = {
            "workflow": slow.workflow,
            "ref": branch,
            "labels": {**slow.runner_labels},
        }
    return {
        "head_clone_url": clone_url,
        "timeout_s": float(schedule.job_timeout_seconds),
        "network": slow.network,
        "limits": slow.limits.as_json(),
        "extras": None if slow.extras is None else list(slow.extras),
        "options": options,
    }


async def _could_not_start(services: Services, fire: Fire, schedule: Schedule, reason: str) -> None:
    if not schedule.channel:
        return
    page = services.page_url(f"/schedules/{fire.repo}/{quote(schedule.name, safe='')}")
    message = could_not_start_message(schedule.name, fire.repo, reason, page)
    await services.outbox.queue_slack(
        f"scheduled_ci:{fire.id}:could-not-start", {**message, "channel": schedule.channel}
    )


# ---------------------------------------------------------------------- analysis


@dataclass
class Analysis:
    """Where a scheduled run's analysis stands: stored as JSON, advanced with compare-and-set."""

    phase: str
    #: node id -> what is known of it: folder, machine type, status (new / still failing /
    #: fixed), and once decided, verdict, reason, first_bad and evidence
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: name -> id of the check runs started (`reruns`, `previous`, `probe:<sha>`)
    checks: dict[str, int] = field(default_factory=dict)
    previous: dict[str, Any] | None = None  # id and head_sha of the previous run
    bisect: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tests": self.tests,
            "checks": self.checks,
            "previous": self.previous,
            "bisect": self.bisect,
        }

    @classmethod
    def from_json(cls, phase: str, data: Mapping[str, Any]) -> Analysis:
        return cls(
            phase=phase,
            tests=dict(data.get("tests") or {}),
            checks=dict(data.get("checks") or {}),
            previous=data.get("previous"),
            bisect=data.get("bisect"),
        )


async def report_scheduled(services: Services, run: RunRecord, rows: list[JobRecord]) -> None:
    """The job system's reporter for scheduled runs: once the run has ended, its analysis."""
    if not run.active:
        await advance(services, run.id)


async def report_check(services: Services, run: RunRecord, rows: list[JobRecord]) -> None:
    """A check run ended: the scheduled run it checks may move on."""
    parent = run.spec.get("parent")
    if not run.active and isinstance(parent, int):
        await advance(services, parent)


async def advance(services: Services, run_id: int, *, tries: int = 5) -> None:
    """Moves the analysis of scheduled run `run_id` as far as its finished checks allow."""
    for _ in range(tries):
        stored = await services.records.analysis(run_id)
        version = stored.version if stored else 0
        current = Analysis.from_json(stored.phase, stored.state) if stored else None
        run = await services.jobs.get_run(run_id)
        if run is None or run.active:
            return
        step = _Step(services, run)
        changed = await step.next(current)
        if changed is None:
            return
        if await services.records.swap_analysis(run_id, version, changed.phase, changed.to_json()):
            await services.records.save_verdicts(_verdicts(run_id, changed))
            if changed.phase == DONE:
                return
            continue  # one more step may be possible at once (nothing new to wait for)
        log.info("analysis of run %s moved under us; reading it again", run_id)
    log.warning("analysis of run %s did not settle in %s tries", run_id, tries)


def runnable(tests: Mapping[str, dict[str, Any]], runner: str = "local") -> list[str]:
    """The new failures that can be run again on their own. A node id comes from the report the
    tests wrote: one that is not a test under its job's folder (`..`, a line break, another
    folder) is never handed to pytest; its verdict says why instead. The Actions workflow takes
    its tests as one space-separated input, so there an id with a space cannot be named."""
    found = []
    for test, info in tests.items():
        if info["status"] != "new":
            continue
        if not node_under(test, info["folder"]):
            info["verdict"] = "unknown"
            info["reason"] = f"not checked: not a test under tests/{info['folder']}/"
        elif runner == "github-actions" and " " in test:
            info["verdict"] = "unknown"
            info["reason"] = "not checked: the Actions workflow cannot be given an id with a space"
        else:
            found.append(test)
    return found


def _verdicts(run_id: int, analysis: Analysis) -> list[TestVerdict]:
    """The analysis as the records the pages read: one row per test that changed."""
    return [
        TestVerdict(
            run_id=run_id,
            test=test,
            status=info["status"],
            machine_type=info.get("machine_type", ""),
            folder=info.get("folder", ""),
            verdict=info.get("verdict"),
            reason=info.get("reason", ""),
            first_bad=info.get("first_bad"),
            evidence=info.get("evidence", []),
        )
        for test, info in sorted(analysis.tests.items())
    ]


class _Step:
    """One step of the analysis of one ended scheduled run; every write it makes is keyed so that
    a step taken twice (a retry, a restart) creates nothing twice."""

    def __init__(self, services: Services, run: RunRecord) -> None:
        self.services, self.run = services, run
        self.jobs = services.jobs

    async def next(self, current: Analysis | None) -> Analysis | None:
        if current is None:
            return await self._start()
        if current.phase == VERIFY:
            return await self._verify(current)
        if current.phase == BISECT:
            return await self._bisect(current)
        if current.phase == REPORT:
            await self._report(current)
            current.phase = DONE
            return current
        return None

    # -- compare and start the checks

    async def _start(self) -> Analysis:
        if self.run.state != "finished":  # cancelled, or ended in error: nothing to compare
            return Analysis(phase=REPORT)
        rows = await self.jobs.jobs_of(self.run.id)
        now_tests, placement, firsts = await self._tests(rows)
        previous = await self._previous()
        before = None
        if previous is not None:
            before, _, _ = await self._tests(await self.jobs.jobs_of(previous.id))
        comparison: Comparison = compare(before, now_tests)
        analysis = Analysis(
            phase=VERIFY,
            previous=None if previous is None else {"id": previous.id, "sha": previous.head_sha},
        )
        for status, tests in (
            ("new", comparison.new),
            ("still failing", comparison.still_failing),
            ("fixed", comparison.fixed),
        ):
            for test in tests:
                folder, machine = placement.get(test, ("", ""))
                analysis.tests[test] = {
                    "folder": folder,
                    "machine_type": machine,
                    "status": status,
                    "message": firsts.get(test, ""),
                }
        new = runnable(analysis.tests, self.run.runner)
        if not new:
            analysis.phase = REPORT
            return analysis
        schedule = await self._schedule()
        reruns = schedule.reruns if schedule else 3
        analysis.checks["reruns"] = await self._check(
            "reruns", self.run.head_sha, new, analysis, copies=reruns
        )
        if previous is not None:
            analysis.checks["previous"] = await self._check(
                "previous", previous.head_sha, new, analysis
            )
        return analysis

    async def _tests(
        self, rows: Sequence[JobRecord]
    ) -> tuple[RunTests, dict[str, tuple[str, str]], dict[str, str]]:
        failed, passed = set(), set()
        placement: dict[str, tuple[str, str]] = {}
        firsts: dict[str, str] = {}
        for row in rows:
            folder = str(row.spec.get("folder", ""))
            machine = str(row.spec.get("machine_type", ""))
            for result in await self.jobs.job_tests(row.id):
                placement.setdefault(result.node_id, (folder, machine))
                if result.outcome in ("failed", "error"):
                    failed.add(result.node_id)
                    firsts.setdefault(result.node_id, result.headline)
                elif result.outcome == "passed":
                    passed.add(result.node_id)
        return RunTests(failed=frozenset(failed), passed=frozenset(passed)), placement, firsts

    async def _previous(self) -> RunRecord | None:
        name = self.run.spec.get("schedule")
        for run in await self.jobs.runs_of(self.run.repo, None, kind=KIND, states=("finished",)):
            if run.id < self.run.id and run.spec.get("schedule") == name:
                return run
        return None

    async def _schedule(self) -> Schedule | None:
        gh = await self.services.github.for_installation(self.run.spec.get("installation_id"))
        branch = str(self.run.spec.get("default_branch") or "main")
        config = await self.services.configs.get(gh, self.run.repo, branch)
        name = self.run.spec.get("schedule")
        return next((s for s in config.scheduled_ci if s.name == name), None)

    async def _check(
        self,
        name: str,
        sha: str,
        tests: Iterable[str],
        analysis: Analysis,
        *,
        copies: int = 1,
    ) -> int:
        """A check run of these tests at `sha`: one job per (folder, machine type) and copy."""
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for test in sorted(tests):
            info = analysis.tests[test]
            groups[(info["folder"], info["machine_type"])].append(test)
        options = (self.run.spec.get("request") or {}).get("options") or {}
        key = f"scheduled_ci:{self.run.id}:{name}"
        jobs = []
        for (folder, machine), nodes in sorted(groups.items()):
            for copy in range(copies):
                job = f"{_job_name(folder, machine)} #{copy + 1}"
                spec: dict[str, Any] = {"folder": folder, "machine_type": machine, "tests": nodes}
                if options:  # the Actions runner tells dispatches apart by their run key
                    spec["options"] = {**options, "run_key": f"{key}:{job}"}
                jobs.append((job, spec))
        run = await self.jobs.create_run(
            CHECK_KIND,
            repo=self.run.repo,
            number=None,
            head_sha=sha,
            private=self.run.private,
            runner=self.run.runner,
            jobs=jobs,
            requested_at=time.time(),
            key=key,
            spec={
                "parent": self.run.id,
                "check": name,
                "schedule": self.run.spec.get("schedule"),
                "installation_id": self.run.spec.get("installation_id"),
                "request": self.run.spec.get("request") or {},
            },
        )
        return run.id

    async def _outcomes(self, run_id: int) -> dict[str, list[str]] | None:
        """Each test's outcomes in a check run (one per copy), or None while it runs. A test a
        job did not report (it errored before, the commit could not be built) is `missing`."""
        run = await self.jobs.get_run(run_id)
        if run is None or run.active:
            return None
        found: dict[str, list[str]] = defaultdict(list)
        for row in await self.jobs.jobs_of(run_id):
            seen = {r.node_id: r.outcome for r in await self.jobs.job_tests(row.id)}
            for test in row.spec.get("tests") or ():
                found[test].append(seen.get(test, "missing"))
        return found

    # -- flaky or pre-existing

    async def _verify(self, analysis: Analysis) -> Analysis | None:
        reruns = await self._outcomes(analysis.checks["reruns"])
        previous: dict[str, list[str]] | None = {}
        if "previous" in analysis.checks:
            previous = await self._outcomes(analysis.checks["previous"])
        if reruns is None or previous is None:
            return None
        suspects = []
        for test, info in analysis.tests.items():
            if info["status"] != "new" or info.get("verdict") == "unknown":
                continue
            at_previous = (previous.get(test) or [None])[0] if analysis.previous else None
            decided = classify(reruns.get(test, ["missing"]), at_previous)
            info["verdict"], info["reason"] = decided.verdict, decided.reason
            info["evidence"] = [
                *(
                    {"step": "rerun", "sha": self.run.head_sha, "outcome": outcome}
                    for outcome in reruns.get(test, [])
                ),
                *(
                    [{"step": "previous", "sha": analysis.previous["sha"], "outcome": at_previous}]
                    if analysis.previous and at_previous
                    else []
                ),
            ]
            if decided.verdict == "flaky":
                await self.services.records.record_flaky(self.run.repo, test, run_id=self.run.id)
            if decided.verdict == "new":
                suspects.append(test)
        schedule = await self._schedule()
        if not suspects or analysis.previous is None or (schedule and not schedule.bisect):
            analysis.phase = REPORT
            return analysis
        gh = await self.services.github.for_installation(self.run.spec.get("installation_id"))
        chain = await ScheduledCiGitHub(gh, self.run.repo).first_parents(
            analysis.previous["sha"], self.run.head_sha
        )
        if chain is None:
            for test in suspects:
                analysis.tests[test]["reason"] = (
                    "not bisected: the previous run's commit is not on the first-parent"
                    f" history of {self.run.head_sha[:12]} within reach"
                )
            analysis.phase = REPORT
            return analysis
        if not chain:  # the previous run tested this very commit: there is nothing to bisect
            for test in suspects:
                analysis.tests[test]["reason"] = (
                    "not bisected: the previous run tested the same commit"
                )
            analysis.phase = REPORT
            return analysis
        if len(chain) == 1:  # one commit between the runs: it is the one
            for test in suspects:
                analysis.tests[test]["first_bad"] = chain[0]
            analysis.phase = REPORT
            return analysis
        # The run's own commit is known to fail: probes go between the two runs only.
        analysis.bisect = Bisect.start(chain, suspects).to_json()
        analysis.phase = BISECT
        return await self._bisect(analysis)

    # -- bisect

    async def _bisect(self, analysis: Analysis) -> Analysis | None:
        bisect = Bisect.from_json(analysis.bisect or {})
        changed = False
        for sha, tests in bisect.next_probes():
            key = f"probe:{sha}"
            if key not in analysis.checks:
                analysis.checks[key] = await self._check(key, sha, tests, analysis)
                changed = True
                continue
            outcomes = await self._outcomes(analysis.checks[key])
            if outcomes is not None:
                bisect.record(sha, {test: (outcomes.get(test) or ["missing"])[0] for test in tests})
                changed = True
        analysis.bisect = bisect.to_json()
        if not bisect.done:
            return analysis if changed else None
        for test, result in bisect.results().items():
            info = analysis.tests[test]
            info["first_bad"] = result.first_bad
            info["evidence"] = [
                *info.get("evidence", []),
                *({"step": "bisect", **step} for step in result.evidence),
            ]
            if result.verdict != "new":
                info["verdict"], info["reason"] = result.verdict, result.reason
        analysis.phase = REPORT
        return analysis

    # -- report

    async def _report(self, analysis: Analysis) -> None:
        schedule = await self._schedule()
        if schedule is None:
            return
        if self.run.state != "finished":
            if not schedule.channel:
                return
            reason = f"the run ended {self.run.state}: {self.run.reason or 'no reason given'}"
            message = could_not_start_message(
                schedule.name,
                self.run.repo,
                reason,
                self.services.page_url(f"/runs/{self.run.id}"),
            )
            await self.services.outbox.queue_slack(
                f"scheduled_ci:{self.run.id}:ended", {**message, "channel": schedule.channel}
            )
            return
        if not schedule.channel and not schedule.notify_pr:
            return  # the verdicts are on the run's page; nobody is told
        gh = await self.services.github.for_installation(self.run.spec.get("installation_id"))
        github = ScheduledCiGitHub(gh, self.run.repo)
        culprits: dict[str, CommitPull] = {}
        for sha in sorted({i["first_bad"] for i in analysis.tests.values() if i.get("first_bad")}):
            culprits[sha] = await github.commit_pull(sha)
        head = await github.commit_pull(self.run.head_sha)
        rows = await self.jobs.jobs_of(self.run.id)
        report = await send_report(
            self.services, schedule, self.run, rows, analysis.tests, head, culprits
        )
        if schedule.notify_pr:
            await notify_pulls(self.services, gh, report, self.run.id)


def register_jobs(jobs: Any, services: Services) -> None:
    """Scheduled runs and their checks report to the analysis; their fetch token is the
    installation's, as `run-slow`'s."""

    async def token(run: RunRecord) -> str | None:
        return await services.github.fetch_token(run.spec.get("installation_id"))

    async def main(run: RunRecord, rows: list[JobRecord]) -> None:
        await report_scheduled(services, run, rows)

    async def check(run: RunRecord, rows: list[JobRecord]) -> None:
        await report_check(services, run, rows)

    jobs.register(KIND, main, token_provider=token)
    jobs.register(CHECK_KIND, check, token_provider=token)
