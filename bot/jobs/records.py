"""Runs and jobs as the job system hands them out: plain, frozen records and their states.

Apart from the system (`bot/jobs/system.py`) and the queries (`bot/store/runs.py`) because
features, pages and the store all read these, and a feature must not import the store: a record
here is what a run *is*, whichever layer holds it.

A **run** is one request by a person (a `run-slow` comment): `queued` until its first job
starts, `running` until every job has ended, then `finished`; `cancelled` (superseded, stopped)
and `error` (the feature found it cannot run) end it early. A **job** is `queued`, `running`, then
one of the runner's end states (`passed`, `failed`, `skipped`, `error`, `timed_out`, `cancelled`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

RunState = Literal["queued", "running", "finished", "cancelled", "error"]
JobState = Literal[
    "queued", "running", "passed", "failed", "skipped", "error", "timed_out", "cancelled"
]
ACTIVE_RUN_STATES: tuple[str, ...] = ("queued", "running")
JOB_END_STATES: frozenset[str] = frozenset(
    {"passed", "failed", "skipped", "error", "timed_out", "cancelled"}
)
#: A job killed with the process twice is more likely the cause than the victim.
MAX_ATTEMPTS = 2
#: A job's `reason` after a restart: a runner resuming one reads these (`RunRequest.resumed`).
RESTART_REASON = "the bot restarted during this job"
REQUEUED_REASON = "re-queued: the bot restarted during this job"
STOPPED_REASON = "re-queued: the bot was stopped during this job"


class FailedTest(NamedTuple):
    """A failed test and the first line of why, as a run's comment and check run list them."""

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
    #: What the feature asked for when it created the run; never changed afterwards.
    spec: dict[str, Any]
    superseded_by: int | None
    version: int
    reported_version: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    #: Whether the run's pages are for those who may read its repository only.
    private: bool
    #: The runner every job of the run goes to.
    runner: str
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
    state: JobState
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


#: A run and its jobs as one change left them: what a reporter renders.
Snapshot = tuple[RunRecord, list[JobRecord]]


@dataclass(frozen=True)
class ReportState:
    """What a feature's reports have left on GitHub for one run, so the next report edits them.

    Its own record, written by compare-and-set (`JobSystem.swap_report_state`), because reports
    of one run write it from concurrent effects (the comment, the check run): keys merged into
    the run's spec let one writer's stale read undo another's write.
    """

    #: the bot's comment that reports the run (a `run-slow` result, a `/style` reply)
    comment_id: int | None = None
    #: the run's check run; a feature may keep a sentinel here (slow_ci's 0: GitHub refused)
    check_run_id: int | None = None
    #: annotations already sent to that check run: GitHub appends each request's to the last
    annotations_sent: int = 0
    #: whether the comment that asked for the run got its final reaction
    reacted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "comment_id": self.comment_id,
            "check_run_id": self.check_run_id,
            "annotations_sent": self.annotations_sent,
            "reacted": self.reacted,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportState:
        return cls(
            comment_id=_optional_int(data.get("comment_id")),
            check_run_id=_optional_int(data.get("check_run_id")),
            annotations_sent=int(data.get("annotations_sent") or 0),
            reacted=bool(data.get("reacted")),
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class RunFilter:
    """Which runs a listing shows; `visible` limits private repositories to those named."""

    kind: str | None = None
    repo: str | None = None
    number: int | None = None
    states: Sequence[str] | None = None
    #: None: every repository; else public runs plus the private repositories named here.
    visible: frozenset[str] | None = None


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
