"""What a scheduled run decides, as data: which folders it tests, in which order, what changed
since the previous run, and what each new failure turned out to be.

Pure: no I/O. The handler fetches the repository's folders, past durations and test results,
and hands them here; `bisect.py` finds the breaking commit and `render.py` writes the Slack
messages from the `ScheduledReport` built at the end.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_PATTERNS",
    "MACHINE_TYPES",
    "BreakingCommit",
    "Comparison",
    "FailingTest",
    "ModelFailures",
    "Outcome",
    "ResultRow",
    "RunTests",
    "ScheduledReport",
    "Unresolved",
    "Verdict",
    "check_pattern",
    "classify",
    "compare",
    "order_jobs",
    "select_folders",
]

#: Without `folders`, a schedule tests every model's folder and every quantization method's.
DEFAULT_PATTERNS = ("models/*", "quantization/*")
MACHINE_TYPES = ("single-gpu", "multi-gpu")
#: What one test answered at one commit; `missing` is no answer (not collected, no report).
Outcome = Literal["passed", "failed", "error", "missing"]
FAILING = frozenset({"failed", "error"})

MAX_PATTERN_LENGTH = 200
#: A path segment: what a folder name or a glob over one may hold (no `/`, `\`, controls).
_SEGMENT = re.compile(r"[A-Za-z0-9_.*?\[\]!-]+")


# --------------------------------------------------------------------------- folders


def check_pattern(pattern: str) -> str | None:
    """None when `pattern` may select folders under `tests/`, else why not: only relative paths
    of plain segments, each a name or an fnmatch glob (`*`, `?`, `[...]`), and never `.` or `..`,
    so no pattern reaches outside `tests/` whatever the repository holds."""
    if not pattern:
        return "an empty pattern"
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"longer than {MAX_PATTERN_LENGTH} characters"
    if pattern.startswith("/"):
        return "an absolute path (patterns are under tests/)"
    segments = pattern.split("/")
    if "" in segments:
        return "an empty path segment (`//` or a trailing `/`)"
    for segment in segments:
        if segment in (".", ".."):
            return f"`{segment}` is not allowed (patterns stay under tests/)"
        if not _SEGMENT.fullmatch(segment):
            return f"{segment!r} holds a character a folder pattern does not take"
    return None


def _matches(pattern: str, folder: str) -> bool:
    """Segment by segment, so `*` never crosses a `/`; a wildcard does not match a leading
    dot, as a shell's does not, so `models/*` leaves hidden folders out."""
    wanted, have = pattern.split("/"), folder.split("/")
    if len(wanted) != len(have):
        return False
    for glob, name in zip(wanted, have, strict=True):
        if name.startswith(".") and not glob.startswith("."):
            return False
        if not fnmatch.fnmatchcase(name, glob):
            return False
    return True


def select_folders(
    patterns: Sequence[str], available: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The test folders (`models/bert`, relative to `tests/`) that `patterns` select from the
    repository's `available` ones, sorted, and the patterns that selected nothing.

    No patterns: `DEFAULT_PATTERNS`, whose matching nothing is not worth a mention (a
    repository without quantization tests). A hostile pattern selects nothing and is reported
    as unmatched; a hostile name among `available` is never selected.
    """
    given = bool(patterns)
    chosen = list(patterns) if given else list(DEFAULT_PATTERNS)
    folders = sorted({f.rstrip("/") for f in available if check_pattern(f.rstrip("/")) is None})
    # A folder name with glob characters in it could only be matched by accident.
    folders = [f for f in folders if not any(c in f for c in "*?[]!")]
    selected: set[str] = set()
    unmatched: list[str] = []
    for pattern in chosen:
        found = (
            [f for f in folders if _matches(pattern, f)] if check_pattern(pattern) is None else []
        )
        selected.update(found)
        if not found and given and pattern not in unmatched:
            unmatched.append(pattern)
    return sorted(selected), unmatched


# --------------------------------------------------------------------------- job order


def order_jobs(
    jobs: Sequence[tuple[str, str]], durations: Mapping[tuple[str, str], float]
) -> list[tuple[str, str]]:
    """(folder, machine type) pairs, longest first by past duration, so the long jobs start
    while there is still time to run the short ones beside them (the longest-processing-time
    rule: within 4/3 of the best order on identical machines).

    A pair never timed before takes the same folder's time on the other machine type when
    there is one. One with no time at all goes first: its only bound is the job's timeout, and
    a long unknown job started last would set the run's end alone; once it has run, its time is
    known. Equal times keep the order given.
    """

    def known(value: float | None) -> bool:
        return value is not None and math.isfinite(value) and value >= 0

    by_folder: dict[str, float] = {}
    for (folder, _), seconds in durations.items():
        if known(seconds):
            by_folder[folder] = max(by_folder.get(folder, 0.0), seconds)

    def estimate(job: tuple[str, str]) -> float:
        seconds = durations.get(job)
        if known(seconds):
            assert seconds is not None
            return seconds
        return by_folder.get(job[0], math.inf)

    unique = list(dict.fromkeys(jobs))
    return sorted(unique, key=estimate, reverse=True)


# --------------------------------------------------------------------------- comparing runs


@dataclass(frozen=True)
class RunTests:
    """A run's test results by node id: the ones that failed (outcome failed or error), the
    ones that passed, and which of the failures were errors."""

    failed: frozenset[str] = frozenset()
    passed: frozenset[str] = frozenset()
    #: the failures that were errors (a fixture, a download): the test itself did not get to
    #: fail, so it says little about the test
    errored: frozenset[str] = frozenset()

    @classmethod
    def of(cls, outcomes: Iterable[tuple[str, str]]) -> RunTests:
        """From (node id, outcome) pairs; a test run twice (two machine types) failed when
        it failed on either."""
        pairs = list(outcomes)
        failed = {test for test, outcome in pairs if outcome == "failed"}
        errored = {test for test, outcome in pairs if outcome == "error"} - failed
        passed = {test for test, outcome in pairs if outcome == "passed"} - failed - errored
        return cls(frozenset(failed | errored), frozenset(passed), frozenset(errored))


@dataclass(frozen=True)
class Comparison:
    """A run's failures against the previous run of the same schedule, each sorted."""

    #: failing now, not at the previous run (passed, not run or errored there): to be checked
    new: tuple[str, ...] = ()
    #: failing now and at the previous run
    still_failing: tuple[str, ...] = ()
    #: passing now, failing (or erroring) at the previous run
    fixed: tuple[str, ...] = ()


def compare(previous: RunTests | None, current: RunTests) -> Comparison:
    """Which failures are news. A test that only errored last time did not show that it fails,
    so failing now makes it new, to be checked at the previous commit like one not run."""
    if previous is None:
        return Comparison(new=tuple(sorted(current.failed)))
    failed_before = previous.failed - previous.errored
    return Comparison(
        new=tuple(sorted(current.failed - failed_before)),
        still_failing=tuple(sorted(current.failed & failed_before)),
        fixed=tuple(sorted(current.passed & previous.failed)),
    )


# --------------------------------------------------------------------------- verdicts


VerdictName = Literal["flaky", "pre-existing", "new", "unknown"]


@dataclass(frozen=True)
class Verdict:
    """What a new failure turned out to be, and why: the reason is shown beside it."""

    verdict: VerdictName
    reason: str


def classify(reruns: Sequence[str], at_previous: str | None) -> Verdict:
    """A new failure, from its re-runs at the same commit and its run at the previous run's
    commit (None: that commit could not be tested).

    Any re-run that passes makes it flaky: the failure does not come from the code. Otherwise
    it is pre-existing if it fails (or errors) at the previous commit too, and new if it passes
    there; `new` is the only verdict that asks for a bisect. Outcomes other than passed, failed
    and error (missing, skipped) are no answer.
    """
    passed = sum(outcome == "passed" for outcome in reruns)
    if passed:
        return Verdict("flaky", f"passed {passed} of {len(reruns)} re-runs")
    if reruns and not any(outcome in FAILING for outcome in reruns):
        return Verdict("unknown", "the re-runs did not run it (not collected)")
    confirmed = f"failed {len(reruns)} re-runs, " if reruns else ""
    if at_previous is None:
        return Verdict("unknown", f"{confirmed}and the previous run's commit could not be tested")
    if at_previous in FAILING:
        word = "fails" if at_previous == "failed" else "errors"
        return Verdict("pre-existing", f"{confirmed}and {word} at the previous run's commit too")
    if at_previous == "passed":
        return Verdict("new", f"{confirmed}and passes at the previous run's commit")
    return Verdict(
        "unknown",
        f"{confirmed}and was not collected at the previous run's commit"
        " (added since, or it could not be imported there)",
    )


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ResultRow:
    """One line of a result table: a machine type or a model folder."""

    name: str
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    @property
    def failures(self) -> int:
        return self.failed + self.errors


@dataclass(frozen=True)
class FailingTest:
    test: str
    #: the first line of what went wrong (`TestResult.headline`)
    first_line: str = ""
    machine_type: str = ""


@dataclass(frozen=True)
class ModelFailures:
    """A model folder's failing tests, for its threaded reply."""

    folder: str
    tests: tuple[FailingTest, ...]


@dataclass(frozen=True)
class BreakingCommit:
    """A commit the bisect found the new failures of `tests` first at, resolved to its PR."""

    sha: str
    url: str
    tests: tuple[str, ...]
    pr_number: int | None = None
    pr_url: str = ""
    pr_title: str = ""
    #: GitHub logins; empty when unknown
    author: str = ""
    merger: str = ""


@dataclass(frozen=True)
class Unresolved:
    """A new failure without a breaking commit: bisect off, or it could not decide."""

    test: str
    reason: str


@dataclass(frozen=True)
class ScheduledReport:
    """Everything the Slack messages of one finished scheduled run say."""

    schedule: str
    repo: str
    sha: str
    commit_url: str
    run_url: str
    total_tests: int
    failures: int
    duration_s: float
    by_machine: tuple[ResultRow, ...] = ()
    by_model: tuple[ResultRow, ...] = ()
    failing: tuple[ModelFailures, ...] = ()
    #: the tested commit's pull request and its author
    pr_number: int | None = None
    pr_url: str = ""
    author: str = ""
    new_failures: tuple[BreakingCommit, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()
    flaky: tuple[str, ...] = ()
    pre_existing: tuple[str, ...] = ()
