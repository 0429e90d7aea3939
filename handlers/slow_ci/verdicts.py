"""The failures of a finished `run-slow`, checked: which ones the pull request broke, which fail on
its base too, and which are flaky. Pure data and decisions; `verify.py` does the I/O.

When a run ends with failing tests, the bot re-runs them at the same commit (the pull request's
head merged into the base, as the run tested it) and runs them once at the base, both as small
runs of the same job system on the same runner. From what those answered each failing test gets
a label: `new` (fails at the head, passes at the base), `fails on the base too`, `flaky` (passed
on a re-run), or `could not tell` (the re-runs did not run it, or the base could not be tested).
The verdict itself is `classify`'s, the one the scheduled runs use; only the words are the pull
request's.

Choices, so the reader meets them once:

- At most :data:`MAX_CHECKED` failing tests are checked, the first ones in the run's order: a
  run with thousands of failures is broken as a whole, and checking each would hold the machines
  for hours. The comment says how many were left out.
- A test whose node id a job could not name (outside its folder, a control character, or a space
  for the Actions runner, whose workflow splits the list on spaces) is not checked.
- The re-runs group the tests by folder and machine type, one job per copy. The run at the base
  groups them by file: pytest runs nothing at all when one node id it is given does not exist,
  and a test the pull request adds to a file would otherwise take its neighbours' answers with
  it. A test whose file is not on the base at all runs nowhere there: it came with the pull
  request, so its failure is `new`.
- A job that reported none of its tests (its checkout failed, or pytest found a node id missing
  and ran nothing) is no answer for any of them: at the base that is `could not tell`, never
  `new`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from handlers.scheduled_ci.plan import FAILING, classify
from handlers.slow_ci.plan import JobSpec

__all__ = [
    "CHECKING",
    "DEFAULT_RERUNS",
    "DONE",
    "LABELS",
    "MAX_CHECKED",
    "MAX_RERUNS",
    "Base",
    "Checked",
    "JobAnswer",
    "Suspect",
    "Verification",
    "base_jobs",
    "choose",
    "conclude",
    "failing_tests",
    "judge",
    "outcomes_of",
    "rerun_jobs",
    "rerunnable",
]

#: The failing tests a run checks at most (re-runs and the run at the base).
MAX_CHECKED = 50
#: Re-runs of each failing test at the same commit, unless `[slow_ci] reruns` says otherwise.
DEFAULT_RERUNS = 2
MAX_RERUNS = 10
#: Where the checks of a run stand, as stored (`analysis_state.phase`).
CHECKING, DONE = "checking", "done"

Verdict = Literal["new", "flaky", "pre-existing", "unknown"]
#: A verdict as the pull request reads it.
LABELS: Mapping[str, str] = {
    "new": "new",
    "pre-existing": "fails on the base too",
    "flaky": "flaky",
    "unknown": "could not tell",
}

#: Control characters and whitespace other than a plain space: nothing a node id needs, and
#: what would let one test's id spill into a second argument or a second line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class Suspect:
    """A failing test of the run, on the machine type it failed on."""

    test: str
    folder: str
    machine_type: str

    @property
    def file(self) -> str:
        return self.test.split("::", 1)[0]


@dataclass(frozen=True, slots=True)
class Base:
    """The commit the failures are run at to see whether they fail there too.

    ``source`` says how it was found: `merge`, the first parent of the merge commit the run
    tested (exactly the base the run merged into); `branch`, the base branch's head when the
    checks started (the run tested no merge GitHub knows of: a local merge, or the head alone).
    """

    ref: str
    sha: str | None
    source: Literal["merge", "branch"] = "merge"


@dataclass(frozen=True, slots=True)
class Checked:
    """What one failing test turned out to be, and what it answered on the way.

    ``reruns`` holds one outcome per re-run (`missing`: the re-run did not report it);
    ``at_base`` the outcome at the base, `absent` where its file is not there, None where the
    base could not be tested.
    """

    suspect: Suspect
    verdict: Verdict
    reason: str
    reruns: tuple[str, ...] = ()
    at_base: str | None = None

    @property
    def label(self) -> str:
        return LABELS[self.verdict]


@dataclass(frozen=True, slots=True)
class JobAnswer:
    """One ended job of a check run: the tests it was given, and what its report said of each
    (node id -> outcome) for those it reported."""

    machine_type: str
    tests: tuple[str, ...]
    reported: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Verification:
    """Where the checks of one run stand, as stored (compare-and-set) and as reported.

    ``failing`` counts every failing test of the run; ``suspects`` are those checked;
    ``unrunnable`` those whose node id no job could name. ``rerun_run`` and ``base_run`` are the
    check runs (None: not started). ``error`` says why the checks could not start at all.
    """

    state: Literal["checking", "done"]
    suspects: tuple[Suspect, ...]
    failing: int
    reruns: int
    base: Base | None
    unrunnable: int = 0
    rerun_run: int | None = None
    base_run: int | None = None
    #: files of suspects that are not on the base: their tests are not run there
    absent: tuple[str, ...] = ()
    results: tuple[Checked, ...] = ()
    error: str = ""

    @property
    def left_out(self) -> int:
        """Failing tests not checked because of the cap."""
        return max(0, self.failing - len(self.suspects) - self.unrunnable)

    def counts(self) -> dict[str, int]:
        """Checked tests per verdict, in :data:`LABELS`' order; verdicts no test got are left
        out."""
        found = dict.fromkeys(LABELS, 0)
        for result in self.results:
            found[result.verdict] += 1
        return {verdict: n for verdict, n in found.items() if n}

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "suspects": [[s.test, s.folder, s.machine_type] for s in self.suspects],
            "failing": self.failing,
            "reruns": self.reruns,
            "base": None
            if self.base is None
            else {"ref": self.base.ref, "sha": self.base.sha, "source": self.base.source},
            "unrunnable": self.unrunnable,
            "rerun_run": self.rerun_run,
            "base_run": self.base_run,
            "absent": list(self.absent),
            "results": [
                {
                    "test": r.suspect.test,
                    "folder": r.suspect.folder,
                    "machine_type": r.suspect.machine_type,
                    "verdict": r.verdict,
                    "reason": r.reason,
                    "reruns": list(r.reruns),
                    "at_base": r.at_base,
                }
                for r in self.results
            ],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verification:
        base = data.get("base")
        return cls(
            state=DONE if data.get("state") == DONE else CHECKING,
            suspects=tuple(Suspect(*item) for item in data.get("suspects") or ()),
            failing=int(data.get("failing") or 0),
            reruns=int(data.get("reruns") or 0),
            base=None if not base else Base(base["ref"], base.get("sha"), base["source"]),
            unrunnable=int(data.get("unrunnable") or 0),
            rerun_run=data.get("rerun_run"),
            base_run=data.get("base_run"),
            absent=tuple(data.get("absent") or ()),
            results=tuple(
                Checked(
                    Suspect(r["test"], r["folder"], r["machine_type"]),
                    r["verdict"],
                    r["reason"],
                    tuple(r.get("reruns") or ()),
                    r.get("at_base"),
                )
                for r in data.get("results") or ()
            ),
            error=str(data.get("error") or ""),
        )


# --------------------------------------------------------------------------- what is checked


def failing_tests(jobs: Iterable[tuple[str, str, Sequence[str]]]) -> list[Suspect]:
    """Each failing test once per machine type, in the run's order, from its jobs' (folder,
    machine type, failed node ids)."""
    found: dict[tuple[str, str], Suspect] = {}
    for folder, machine_type, tests in jobs:
        for test in tests:
            found.setdefault((test, machine_type), Suspect(test, folder, machine_type))
    return list(found.values())


def rerunnable(suspect: Suspect, runner: str) -> bool:
    """Whether a job can be given the test by its node id: under its folder (what the runners
    accept), on one line, and without a space for the Actions runner."""
    test = suspect.test
    path = suspect.file
    if _CONTROL.search(test) or not path.startswith(f"tests/{suspect.folder}/"):
        return False
    if ".." in path.split("/") or len(test) > 1000:
        return False
    return not (runner == "github-actions" and " " in test)


def choose(
    suspects: Sequence[Suspect], runner: str, cap: int = MAX_CHECKED
) -> tuple[tuple[Suspect, ...], int]:
    """The tests to check (the first ``cap`` that can be named) and how many cannot be."""
    named = [s for s in suspects if rerunnable(s, runner)]
    return tuple(named[:cap]), len(suspects) - len(named)


def _options(options: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A job's own runner options: the Actions runner tells its dispatches apart by `run_key`,
    folder, machine type and commit, which two copies of one job share."""
    return {"options": {**options, "run_key": key}} if options else {}


def rerun_jobs(
    suspects: Sequence[Suspect],
    copies: int,
    *,
    runner: str,
    options: Mapping[str, Any],
    key: str,
) -> list[tuple[str, dict[str, Any]]]:
    """The re-runs' jobs: per folder and machine type, ``copies`` jobs of its tests."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for suspect in suspects:
        groups[(suspect.folder, suspect.machine_type)].append(suspect.test)
    return [
        (
            f"{JobSpec(folder, machine).name} re-run {copy}",
            {
                "runner": runner,
                "folder": folder,
                "machine_type": machine,
                "tests": tests,
                **_options(options, f"{key}:{folder}:{copy}"),
            },
        )
        for (folder, machine), tests in groups.items()
        for copy in range(1, copies + 1)
    ]


def base_jobs(
    suspects: Sequence[Suspect],
    absent: Iterable[str],
    *,
    runner: str,
    options: Mapping[str, Any],
    key: str,
) -> list[tuple[str, dict[str, Any]]]:
    """The run at the base: a job per file and machine type, for the files the base has."""
    missing = set(absent)
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for suspect in suspects:
        if suspect.file not in missing:
            groups[(suspect.folder, suspect.machine_type, suspect.file)].append(suspect.test)
    return [
        (
            f"{file} ({machine})",
            {
                "runner": runner,
                "folder": folder,
                "machine_type": machine,
                "tests": tests,
                **_options(options, f"{key}:{file}"),
            },
        )
        for (folder, machine, file), tests in groups.items()
    ]


# --------------------------------------------------------------------------- what they answered


def outcomes_of(answers: Iterable[JobAnswer]) -> dict[tuple[str, str], list[str | None]]:
    """Each (test, machine type)'s outcomes across the jobs given it: what the job's report
    said, `missing` when the report left it out, None when the job reported no test at all."""
    found: dict[tuple[str, str], list[str | None]] = defaultdict(list)
    for answer in answers:
        for test in answer.tests:
            outcome: str | None = answer.reported.get(test, "missing")
            if not answer.reported:
                outcome = None
            found[(test, answer.machine_type)].append(outcome)
    return found


def judge(
    suspect: Suspect,
    reruns: Sequence[str | None],
    at_base: str | None,
    *,
    base: Base | None,
) -> Checked:
    """One failing test's label, from its re-runs and its outcome at the base (`absent`: its
    file is not there; None: not tested there)."""
    answers = tuple(outcome or "missing" for outcome in reruns)
    # A test whose file the base lacks came with the pull request: at the base it is as good as
    # passing, and a failure that holds on the re-runs is the pull request's.
    decided = classify(answers, "passed" if at_base == "absent" else at_base)
    where = base.ref if base is not None else "the base"
    parts = []
    if decided.verdict == "flaky":
        passed = sum(outcome == "passed" for outcome in answers)
        parts.append(f"passed {passed} of {len(answers)} re-runs")
    elif answers and not any(outcome in FAILING for outcome in answers):
        parts.append("the re-runs did not run it (not collected: renamed since?)")
    else:
        if answers:
            fails = sum(outcome in FAILING for outcome in answers)
            parts.append(f"failed {fails} of {len(answers)} re-runs")
        parts.append(_at_base(at_base, where, base))
    return Checked(suspect, decided.verdict, "; ".join(parts), answers, at_base)


def _at_base(at_base: str | None, where: str, base: Base | None) -> str:
    if base is None or base.sha is None:
        return "no base commit to run it at"
    if at_base == "absent":
        return f"its file is not on {where}: this pull request adds it"
    if at_base == "passed":
        return f"passes on {where}"
    if at_base == "failed":
        return f"fails on {where} too"
    if at_base == "error":
        return f"errors on {where} too"
    if at_base is None:
        return f"could not be run on {where} (see its run)"
    if at_base == "skipped":
        return f"skipped on {where}"
    return f"not collected on {where} (added by this pull request, or renamed)"


def conclude(
    verification: Verification,
    reruns: Mapping[tuple[str, str], Sequence[str | None]],
    at_base: Mapping[tuple[str, str], Sequence[str | None]],
) -> Verification:
    """The checks' answers as each test's verdict: the verification, done."""
    absent = set(verification.absent)
    results = []
    for suspect in verification.suspects:
        key = (suspect.test, suspect.machine_type)
        there: str | None = "absent"
        if suspect.file not in absent:
            there = (list(at_base.get(key) or ()) or [None])[0]
        results.append(judge(suspect, reruns.get(key) or (), there, base=verification.base))
    return replace(verification, state=DONE, results=tuple(results))
