"""What a run's report says, from its rows: the comment, the commit status, the check run and the
Slack summary, as one pure plan that the handler performs.

The job system hands the reporter a run and its jobs after every change, and again after a
restart; the plan depends on nothing else but a few reads its phase calls for (`ReportFacts`):
the queue position and past durations of a queued run, the failing tests of a finished one, the
newer run of a superseded one. So the same rows always say the same thing, wherever reported.

A finished run with failing tests has them checked (`verify.py`): its comment and check run say
so at once, then each test's label once the checks end; its commit status and conclusion stay
the run's own, whatever the labels.

The superseded rule: a run a newer `run-slow` on the pull request replaced says so in its
comment and ends its check run `cancelled`; its commit status is left to the newer run when that
one is on the same commit (its own status replaces it there), and ends `error` otherwise, since
nothing else would ever end it and it would stay pending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.kit.comments import marker
from bot.kit.context import JobRecord, RunRecord
from handlers.slow_ci.checks import CheckRunPlan, ReportedTest, plan_check_run
from handlers.slow_ci.plan import (
    Failure,
    JobResult,
    JobSpec,
    Phase,
    Selection,
    estimate,
    overall_state,
)
from handlers.slow_ci.render import (
    PENDING_DESCRIPTION,
    error_description,
    render_comment,
    slack_summary,
    status_description,
)
from handlers.slow_ci.verdicts import Verification

__all__ = [
    "HEAD_MOVED",
    "SUPERSEDED_DESCRIPTION",
    "CommitStatus",
    "Newer",
    "ReportFacts",
    "ReportPlan",
    "comment_key",
    "job_result",
    "job_spec",
    "phase_of",
    "plan_report",
]

#: How the runner says the approved commit is no longer the PR's head: nothing was tested.
HEAD_MOVED = "head moved"
SUPERSEDED_DESCRIPTION = "Superseded by a newer run-slow"

StatusState = Literal["success", "failure", "pending", "error"]


@dataclass(frozen=True, slots=True)
class CommitStatus:
    """The `pytest/custom-tests` status of the run's commit."""

    state: StatusState
    description: str


@dataclass(frozen=True, slots=True)
class Newer:
    """The run that superseded this one: its page, and the commit it runs on."""

    url: str
    head_sha: str | None  # None: the newer run is not found


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """A run's rows, and what its phase calls for besides (`phase_of` says which phase)."""

    run: RunRecord
    jobs: Sequence[JobRecord]
    run_url: str
    #: a queued run: its place in the queue, and past job durations by job name
    queue_position: int | None = None
    past_durations: Mapping[str, Sequence[float]] = field(default_factory=dict)
    #: a finished run: the per-test results of its jobs with failing tests (the annotations)
    tests: Mapping[JobSpec, Sequence[ReportedTest]] | None = None
    #: a superseded run: the newer run
    newer: Newer | None = None
    #: a finished run with failures: where the checks of its failures stand, and the pages of
    #: its check runs by run id
    verification: Verification | None = None
    check_urls: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportPlan:
    """Everything the report of a run sends now. ``status`` None: leave the commit status to
    the newer run; ``slack`` None: no summary (the run has not ended, or has no channel)."""

    comment: str
    status: CommitStatus | None
    check: CheckRunPlan
    slack: Mapping[str, Any] | None = None


def comment_key(run_id: int) -> str:
    """The run's one comment is marked with this, so a report finds it again after a crash."""
    return f"slow_ci:run:{run_id}"


def job_spec(job: JobRecord) -> JobSpec:
    return JobSpec(job.spec["folder"], job.spec["machine_type"])


def job_result(job: JobRecord) -> JobResult:
    """A job's row as the comment, the check run and Slack read it."""
    return JobResult(
        job_spec(job),
        state=job.state,
        passed=job.passed,
        failed=job.failed,
        skipped=job.skipped,
        errors=job.errors,
        duration=job.duration_s,
        failures=tuple(Failure(f.test, f.message) for f in job.failures),
        reason=job.reason or "",
    )


def phase_of(run: RunRecord, jobs: Sequence[JobRecord]) -> tuple[Phase, str | None]:
    """Where the run stands, and why it could not run where it could not.

    A job that found the head moved makes the whole run an error (nothing it tested was what
    was approved), unless the run was cancelled first.
    """
    if run.state == "error":
        return "error", run.reason or "the run could not start"
    moved = next((j.reason for j in jobs if (j.reason or "").startswith(HEAD_MOVED)), None)
    if moved and run.state != "cancelled":
        return "error", moved
    if run.state == "cancelled":
        if run.superseded_by:
            return "superseded", None
        return "error", run.reason or "cancelled"
    if run.state == "finished":
        return "finished", None
    if any(job.state != "queued" for job in jobs):
        return "running", None
    return "queued", None


def plan_report(facts: ReportFacts) -> ReportPlan:
    """The comment, commit status, check run and Slack summary of a run, from its rows."""
    run = facts.run
    results = [job_result(job) for job in facts.jobs]
    specs = [result.job for result in results]
    selection = Selection.from_json(run.spec.get("selection") or {})
    failed_only = bool(run.spec.get("failed_only"))
    phase, error = phase_of(run, facts.jobs)
    queued = phase == "queued"
    position = facts.queue_position if queued else None
    estimate_s = None
    if queued:
        past = facts.past_durations
        by_folder = {job.spec["folder"]: past.get(job.name, []) for job in facts.jobs}
        estimate_s = estimate(by_folder, specs)
    newer_url = facts.newer.url if facts.newer is not None else None
    comment = render_comment(
        marker=marker(comment_key(run.id)),
        selection=selection,
        run_url=facts.run_url,
        phase=phase,
        jobs=specs,
        results=results,
        sha=run.head_sha,
        failed_only=failed_only,
        queue_position=position,
        estimate_seconds=estimate_s,
        superseded_by=newer_url,
        error=error,
        verification=facts.verification,
        check_urls=facts.check_urls,
    )
    check = plan_check_run(
        phase=phase,
        selection=selection,
        run_url=facts.run_url,
        jobs=specs,
        results=results,
        tests=facts.tests if phase == "finished" else None,
        sha=run.head_sha,
        failed_only=failed_only,
        queue_position=position,
        superseded_by=newer_url,
        error=error,
        verification=facts.verification,
        check_urls=facts.check_urls,
    )
    slack = None
    if not run.active and phase == "finished" and run.spec.get("channel"):
        message = slack_summary(
            repo=run.repo,
            number=run.number or 0,
            title=run.spec.get("title", ""),
            pull_url=run.spec.get("html_url", ""),
            run_url=facts.run_url,
            results=results,
            sha=run.head_sha,
        )
        slack = {**message, "channel": run.spec["channel"]}
    return ReportPlan(comment, _status(phase, error, results, run, facts.newer), check, slack)


def _status(
    phase: Phase,
    error: str | None,
    results: Sequence[JobResult],
    run: RunRecord,
    newer: Newer | None,
) -> CommitStatus | None:
    if phase in ("started", "queued", "running"):
        return CommitStatus("pending", PENDING_DESCRIPTION)
    if phase == "finished":
        return CommitStatus(overall_state(results), status_description(results))
    if phase == "error":
        return CommitStatus("error", error_description(error or ""))
    # superseded: on the same head the newer run's status replaces this one
    if newer is not None and newer.head_sha == run.head_sha:
        return None
    return CommitStatus("error", SUPERSEDED_DESCRIPTION)
