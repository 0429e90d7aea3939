"""The checks of a finished `run-slow`'s failures: small runs of the same job system and runner, a
stored record of where they stand, and each test's verdict once they end.

`verdicts.py` decides; this module reads and acts. When a run's report finds it finished with
failing tests, `start` reads the base the run merged into and which of the failing tests' files
it has, creates the check runs (kind :data:`CHECK_KIND`, keyed on the run, so a retried report
finds the same runs), and stores the verification with compare-and-set in the run's analysis
record. When a check run ends, `advance` reads what its jobs answered and, once both have ended,
stores the verdicts (`records.save_verdicts`, one row per test) and marks the verification done;
the handler then reports the run again, so its comment and check run show the labels. A restart
re-reports the run, which finds the stored record and resumes from it.

No checks start for a run that did not finish (cancelled, superseded, errored), for one a newer
`run-slow` on the pull request has replaced, or where `[slow_ci] reruns = 0`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from bot.kit.context import JobRecord, RunRecord, Services
from bot.kit.records import TestVerdict
from handlers.slow_ci.client import SlowCiGitHub
from handlers.slow_ci.decide import KIND
from handlers.slow_ci.report import phase_of
from handlers.slow_ci.verdicts import (
    CHECKING,
    DEFAULT_RERUNS,
    DONE,
    Base,
    JobAnswer,
    Suspect,
    Verification,
    base_jobs,
    choose,
    conclude,
    failing_tests,
    outcomes_of,
    rerun_jobs,
)

__all__ = ["CHECK_KIND", "advance", "start", "stored", "wanted"]

log = logging.getLogger(__name__)

#: The runs that check a `run-slow`'s failures: its re-runs and its run at the base.
CHECK_KIND = "slow_ci.check"


def wanted(run: RunRecord, jobs: Sequence[JobRecord]) -> list[Suspect]:
    """The failing tests a run's report would have checked: none unless the run finished (its
    jobs ended on the approved commit) with failing tests, and its checks are on."""
    if run.state != "finished" or run.number is None or phase_of(run, jobs)[0] != "finished":
        return []
    if _reruns(run) < 1:
        return []
    return failing_tests(
        (str(job.spec.get("folder", "")), str(job.spec.get("machine_type", "")), job.failed_tests)
        for job in jobs
        if job.done
    )


def _reruns(run: RunRecord) -> int:
    """What `[slow_ci] reruns` said when the run was asked for (the default for older runs)."""
    value = run.spec.get("reruns", DEFAULT_RERUNS)
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_RERUNS


async def stored(services: Services, run_id: int) -> Verification | None:
    found = await services.records.analysis(run_id)
    return None if found is None else Verification.from_json({**found.state, "state": found.phase})


async def start(
    services: Services, github: SlowCiGitHub, run: RunRecord, jobs: Sequence[JobRecord]
) -> Verification | None:
    """The run's verification: the stored one, else the checks of its failures started now;
    None when nothing is to be checked."""
    current = await stored(services, run.id)
    if current is not None:
        return current
    suspects = wanted(run, jobs)
    if not suspects:
        return None
    newest = await services.jobs.runs_of(run.repo, run.number, kind=KIND, limit=1)
    if newest and newest[0].id > run.id:
        log.info("run %s has a newer run-slow; its failures are not checked", run.id)
        return None
    chosen, unrunnable = choose(suspects, run.runner)
    # The jobs keep a bounded list of failing node ids; their counts are whole.
    failing = max(len(suspects), sum(job.failed + job.errors for job in jobs if job.done))
    base = await _base(github, run, jobs)
    verification = Verification(CHECKING, chosen, failing, _reruns(run), base, unrunnable)
    if not chosen:
        verification = dataclasses.replace(
            verification, state=DONE, error="no failing test has a node id a job can be given"
        )
    else:
        verification = await _create_checks(services, github, run, verification)
    if not await services.records.swap_analysis(
        run.id, 0, verification.state, verification.to_json()
    ):
        log.info("the checks of run %s were started by another report", run.id)
    return await stored(services, run.id)


async def _base(github: SlowCiGitHub, run: RunRecord, jobs: Sequence[JobRecord]) -> Base | None:
    """The base commit the run merged into: the first parent of the merge it tested, where
    GitHub has that merge (its `refs/pull/N/merge`); else the base branch's head now."""
    if not run.base_ref:
        return None
    tested = next((job.tested_sha for job in jobs if job.failed_tests and job.tested_sha), None)
    if tested and tested != run.head_sha:
        parents = await github.commit_parents(tested)
        if parents is not None and len(parents) == 2 and parents[1] == run.head_sha:
            return Base(run.base_ref, parents[0], "merge")
    return Base(run.base_ref, await github.branch_head(run.base_ref), "branch")


async def _create_checks(
    services: Services, github: SlowCiGitHub, run: RunRecord, verification: Verification
) -> Verification:
    """Creates the re-runs and the run at the base; a spec the job system refuses ends the
    verification with the reason, rather than a report that fails for ever."""
    request: dict[str, Any] = dict(run.spec.get("request") or {})
    # The approved commit is pinned; a push since the run does not make it less approved.
    request.pop("head_ref", None)
    options = dict(request.pop("options", None) or {})
    base = verification.base
    base_sha = base.sha if base is not None else None
    shared = {
        "parent": run.id,
        "installation_id": run.spec.get("installation_id"),
        "number": run.number,
    }
    suspects = verification.suspects
    absent: tuple[str, ...] = ()
    if base_sha is not None:  # read before anything is created: a retry starts from here
        files = sorted({s.file for s in suspects})
        present = await asyncio.gather(*(github.is_file(f, base_sha) for f in files))
        absent = tuple(f for f, here in zip(files, present, strict=True) if not here)
    try:
        key = f"slow_ci:{run.id}:reruns"
        reruns = await services.jobs.create_run(
            CHECK_KIND,
            repo=run.repo,
            number=None,  # not the pull request's own run: no supersede, no `--failed` source
            head_sha=run.head_sha,
            base_ref=run.base_ref,
            private=run.private,
            runner=run.runner,
            jobs=rerun_jobs(
                suspects, verification.reruns, runner=run.runner, options=options, key=key
            ),
            requested_at=time.time(),
            key=key,
            spec={
                **shared,
                "check": "reruns",
                "request": {**request, **({"base_sha": base_sha} if base_sha else {})},
            },
        )
        base_run = None
        if base_sha is not None:
            key = f"slow_ci:{run.id}:base"
            jobs = base_jobs(suspects, absent, runner=run.runner, options=options, key=key)
            if jobs:
                at_base = {
                    k: v
                    for k, v in request.items()
                    if k not in ("base_clone_url", "base_sha", "head_clone_url")
                }
                at_base["head_clone_url"] = request.get("base_clone_url") or request.get(
                    "head_clone_url"
                )
                created = await services.jobs.create_run(
                    CHECK_KIND,
                    repo=run.repo,
                    number=None,
                    head_sha=base_sha,
                    private=run.private,
                    runner=run.runner,
                    jobs=jobs,
                    requested_at=time.time(),
                    key=key,
                    spec={**shared, "check": "base", "request": at_base},
                )
                base_run = created.id
    except ValueError as exc:
        log.warning("the checks of run %s could not start: %s", run.id, exc)
        return dataclasses.replace(
            verification, state=DONE, error=f"the job system refused them ({exc})"
        )
    return dataclasses.replace(verification, rerun_run=reruns.id, base_run=base_run, absent=absent)


async def advance(services: Services, run_id: int, *, tries: int = 5) -> Verification | None:
    """Concludes the run's verification once its check runs have ended; its verdicts are
    (re)written whenever it is done, so one lost with the process is written by the next."""
    for _ in range(tries):
        found = await services.records.analysis(run_id)
        if found is None:
            return None
        current = Verification.from_json({**found.state, "state": found.phase})
        if current.state == DONE:
            await services.records.save_verdicts(_rows(run_id, current))
            return current
        reruns = await _answers(services, current.rerun_run)
        at_base = await _answers(services, current.base_run)
        if reruns is None or at_base is None:
            return current  # a check run is still going: its end comes back here
        done = conclude(current, outcomes_of(reruns), outcomes_of(at_base))
        if await services.records.swap_analysis(run_id, found.version, DONE, done.to_json()):
            await services.records.save_verdicts(_rows(run_id, done))
            return done
        log.info("the verification of run %s moved under us; reading it again", run_id)
    log.warning("the verification of run %s did not settle in %s tries", run_id, tries)
    return None


async def _answers(services: Services, run_id: int | None) -> list[JobAnswer] | None:
    """What a check run's jobs reported, or None while it runs (no run: nothing reported)."""
    if run_id is None:
        return []
    run = await services.jobs.get_run(run_id)
    if run is None:
        return []
    if run.active:
        return None
    answers = []
    for job in await services.jobs.jobs_of(run_id):
        reported = {test.node_id: test.outcome for test in await services.jobs.job_tests(job.id)}
        tests = tuple(str(test) for test in job.spec.get("tests") or ())
        answers.append(JobAnswer(str(job.spec.get("machine_type", "")), tests, reported))
    return answers


def _rows(run_id: int, verification: Verification) -> list[TestVerdict]:
    """Each checked test's verdict as the records keep it (a pull request's failures are all
    `new` to it: there is no earlier run to compare with)."""
    base = verification.base
    rows = []
    for result in verification.results:
        evidence: list[dict[str, Any]] = [
            {"where": "re-run", "run_id": verification.rerun_run, "outcome": outcome}
            for outcome in result.reruns
        ]
        if base is not None and base.sha is not None:
            evidence.append(
                {
                    "where": "base",
                    "sha": base.sha,
                    "run_id": verification.base_run,
                    "outcome": result.at_base,
                }
            )
        rows.append(
            TestVerdict(
                run_id=run_id,
                test=result.suspect.test,
                status="new",
                machine_type=result.suspect.machine_type,
                folder=result.suspect.folder,
                verdict=result.verdict,
                reason=result.reason,
                evidence=evidence,
            )
        )
    return rows
