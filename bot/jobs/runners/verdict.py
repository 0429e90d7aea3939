"""What a test job came to: one rule for every runner, from how the tests ended and their report.

The local runner sees pytest's exit code; the Actions runner sees only the workflow run's
conclusion. Both are read into one `Ending`, so that a job run here and the same job run on
Actions end in the same state for the same reason, and the comment, the status and the run page
need not know which runner ran it. The JUnit report is what tells a pass from a failure: one
that could not be read (missing, too big, refused) proves neither, and one that names failures
is never a pass, whatever the process's exit said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.jobs.runners.base import JobState
from bot.jobs.runners.junit import JUnitReport, TestResult

#: pytest's exit codes past "tests failed", in its own words
_PYTEST_STOPPED = {2: "interrupted", 3: "internal error", 4: "usage error"}
#: What a test module or conftest that imports an absent package makes pytest print.
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([A-Za-z0-9_.]+)'")
WORKFLOW_CANCELLED = "the workflow run was cancelled"


@dataclass(frozen=True)
class Ending:
    """How the tests' process ended, as its runner saw it.

    `code` is pytest's exit code; a negative one is the signal that killed the process (as
    asyncio reports it). None is a failure whose code the runner cannot see: a workflow run
    that concluded anything but success, cancelled or timed out.
    """

    code: int | None = None
    #: the runner stopped the tests before they ended on their own
    stopped: Literal["cancelled", "timed_out"] | None = None
    #: a stopped ending's reason, in the runner's words
    reason: str = ""
    #: the workflow run's conclusion, where the ending comes from one
    conclusion: str | None = None
    #: where the reader sees the run (a workflow run's page); said where a reason sends them there
    url: str = ""
    #: a cancel was asked for: a failure or an error that follows is the cancel's doing
    cancel_requested: bool = False

    @classmethod
    def exited(cls, code: int) -> Ending:
        return cls(code=code)

    @classmethod
    def cancelled(cls, reason: str = "cancelled") -> Ending:
        return cls(stopped="cancelled", reason=reason)

    @classmethod
    def timed_out(cls, reason: str) -> Ending:
        return cls(stopped="timed_out", reason=reason)

    @classmethod
    def workflow(cls, conclusion: str, url: str = "", *, cancel_requested: bool = False) -> Ending:
        """A workflow run's conclusion in the same terms: `success` is the test step's exit 0
        (`slow-tests.yml` keeps pytest's exit code as the step's), a failure is an exit code not
        known, and cancelled and timed out are the runner's stops."""
        if conclusion == "cancelled":
            return cls(stopped="cancelled", reason=WORKFLOW_CANCELLED, conclusion=conclusion)
        if conclusion == "timed_out":
            reason = f"the workflow run timed out{_at(url)}"
            return cls(stopped="timed_out", reason=reason, conclusion=conclusion)
        return cls(
            code=0 if conclusion == "success" else None,
            reason=WORKFLOW_CANCELLED if cancel_requested else "",
            conclusion=conclusion,
            url=url,
            cancel_requested=cancel_requested,
        )

    @property
    def told(self) -> str:
        """The ending in words, the way a reason starts."""
        if self.conclusion == "success":
            return "the workflow run succeeded"
        if self.conclusion is not None:
            return f"the workflow run ended {self.conclusion}"
        return f"pytest exited with code {self.code}"


def verdict(
    ending: Ending, report: JUnitReport, *, log: str = "", missing_hint: str = ""
) -> tuple[JobState, str]:
    """The job's state and the reason the PR, the status and the run page show.

    `report` is the JUnit report the tests wrote; one that is missing or could not be read
    carries the why in `report.error`. `log` and `missing_hint` name a module whose absence
    stopped pytest, and where its package would come from.
    """
    state, reason = _verdict(ending, report, log, missing_hint)
    if ending.cancel_requested and state in ("error", "failed"):
        return "cancelled", ending.reason or "cancelled"
    return state, reason


def _verdict(
    ending: Ending, report: JUnitReport, log: str, missing_hint: str
) -> tuple[JobState, str]:
    if ending.stopped is not None:
        return ending.stopped, ending.reason
    code = ending.code
    if code is not None and code < 0:
        return "error", f"the test process was killed by signal {-code}"
    if code == 5:
        return "skipped", "no tests collected"
    if code in (0, 1, None):
        if report.error:
            if code is None:
                where = f"; {ending.url}" if ending.url else ""
                return "error", f"{ending.told} before any test result ({report.error}{where})"
            return "error", f"{ending.told}, but {report.error}"
        counts = (
            f"{report.passed} passed, {report.failed} failed, {report.errors} errors,"
            f" {report.skipped} skipped"
        )
        if code == 1 or report.failed or report.errors:
            return "failed", counts
        if code is None:
            return "error", f"{ending.told} with no failing test{_at(ending.url)}"
        if report.passed == 0 and report.skipped > 0:
            return "skipped", f"all {report.skipped} tests skipped"
        if not report.tests:
            # A succeeded workflow run whose step turned pytest's 5 into success: nothing ran.
            return "skipped", "no tests collected"
        return "passed", counts
    reason = f"pytest exited with code {code} ({_PYTEST_STOPPED.get(code, 'unexpected')})"
    module = missing_module(report, log)
    if module is not None:
        reason += f"; the test environment has no module '{module.split('.')[0]}'"
        return "error", reason + (f": {missing_hint}" if missing_hint else "")
    collect = _collection_errors(report)
    if collect:
        first = collect[0]
        reason += f"; collection failed: {first.node_id}: {first.headline}"
    elif report.error:
        reason += f"; {report.error}"
    return "error", reason


def missing_module(report: JUnitReport, log: str) -> str | None:
    """The module whose absence stopped collection: from the JUnit collection errors, else the
    log (a conftest that fails to import stops pytest before it writes any JUnit)."""
    texts = [f"{t.traceback}\n{t.message}" for t in _collection_errors(report)]
    for text in [*texts, log]:
        if found := _MISSING_MODULE.search(text):
            return found[1]
    return None


def _collection_errors(report: JUnitReport) -> list[TestResult]:
    # A collection error is reported against a file, not a test: its node id has no `::`.
    return [t for t in report.tests if t.outcome == "error" and "::" not in t.node_id]


def _at(url: str) -> str:
    return f" ({url})" if url else ""
