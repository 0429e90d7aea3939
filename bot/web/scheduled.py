"""What the pages of scheduled runs show: a schedule's runs with their pass rate over time, a
scheduled run's comparison with the previous one and the evidence behind each verdict, and a
test's outcome across runs, as data and inline SVG geometry (no script, no image request).

Pure: records in, views out; the templates only print them. The run kinds are those
`handlers/scheduled_ci` creates: the pages read its records, they do not import it.
"""

from __future__ import annotations

import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.jobs.records import RunRecord
from bot.store.verdicts import Analysis, TestInRun, TestVerdict, outcome_in

#: The feature whose schedules have a page here.
SCHEDULED_FEATURE = "scheduled_ci"
#: A scheduled run, and the small runs that check its new failures (re-runs, bisect probes).
SCHEDULED_KIND = "scheduled_ci"
CHECK_KIND = "scheduled_ci.check"
#: A test id is shown cut to this many characters: a parametrized id can be kilobytes long.
SHOWN_TEST_CHARS = 300
#: The longest test id a history page is offered for, and the most its query takes.
MAX_TEST_CHARS = 2000

#: How a run's changed tests are counted on its schedule's page.
BUCKETS = ("new", "still failing", "fixed", "flaky")
#: What a test's cell in its history says.
OUTCOMES = ("passed", "failed", "flaky", "not run")
FAILING = frozenset({"failed", "error"})

#: What an analysis in each phase is doing, for the run page.
PHASES = {
    "verify": (
        "Checking the new failures: re-running them at this commit and running them at the"
        " previous run's commit."
    ),
    "bisect": "Bisecting the commits between the two runs to the one that broke each test.",
    "report": "Writing the report.",
    "done": "",
}


# ---------------------------------------------------------------------- names and links


def shown_test(test: str) -> str:
    """A test id as a page prints it: whole up to `SHOWN_TEST_CHARS`, cut after."""
    return test if len(test) <= SHOWN_TEST_CHARS else test[: SHOWN_TEST_CHARS - 1] + "…"


def _repo_path(repo: str) -> str:
    owner, _, name = repo.partition("/")
    return "/".join(urllib.parse.quote(part, safe="") for part in (owner, name))


def history_url(repo: str, test: str) -> str | None:
    """The test's history page; None for an id too long for one (its query is refused)."""
    if not test or len(test) > MAX_TEST_CHARS:
        return None
    return f"/tests/{_repo_path(repo)}?" + urllib.parse.urlencode({"test": test})


def schedule_url(repo: str, name: str) -> str:
    return f"/schedules/{_repo_path(repo)}/{urllib.parse.quote(name, safe='')}"


def flaky_url(repo: str) -> str:
    return f"/flaky/{_repo_path(repo)}"


# ---------------------------------------------------------------------- counting changes


def bucket(status: str, verdict: str | None) -> str:
    """Which count a changed test adds to. A flaky failure is not news of the code; a
    pre-existing one fails at the previous run's commit too (that run did not run it, or it
    errored there), so it counts as still failing."""
    if verdict == "flaky":
        return "flaky"
    if status == "new" and verdict == "pre-existing":
        return "still failing"
    return status


def change_counts(by_kind: Mapping[tuple[str, str | None], int]) -> dict[str, int]:
    """A run's counts per bucket, from its rows counted by (status, verdict)."""
    counts = dict.fromkeys(BUCKETS, 0)
    for (status, verdict), n in by_kind.items():
        name = bucket(status, verdict)
        if name in counts:
            counts[name] += n
    return counts


# ---------------------------------------------------------------------- the pass rate chart


@dataclass(frozen=True)
class RunRate:
    run_id: int
    at: float
    passed: int
    #: tests that ran to an answer (passed, failed or errored): skipped ones are not counted
    ran: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.ran if self.ran else None


@dataclass(frozen=True)
class RatePoint:
    x: float
    y: float
    run_id: int
    title: str
    #: the dot's colour: every test passed, or not
    outcome: str


@dataclass(frozen=True)
class RateChart:
    width: float
    height: float
    plot_x: float
    plot_w: float
    points: tuple[RatePoint, ...]
    #: SVG polyline `points` attributes, one per stretch of runs that ran tests
    lines: tuple[str, ...]
    #: (y, label) of the horizontal lines at 0, 50 and 100 %
    grid: tuple[tuple[float, str], ...]
    #: the dates under the first and the last run
    first: str
    last: str

    @property
    def empty(self) -> bool:
        return not self.points


#: Layout, in SVG user units.
RATE_LABEL_W = 44
RATE_STEP = 18
RATE_MIN_W = 240
RATE_MAX_W = 900
RATE_PLOT_H = 120
RATE_PAD = 10


def _day(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def rate_chart(runs: Iterable[RunRate]) -> RateChart:
    """Pass rate over time, oldest run left: one dot per run (linked to it), joined by a line
    that breaks at a run that ran no test (it could not start; zero is not its rate)."""
    ordered = sorted(runs, key=lambda r: r.run_id)
    plot_x = RATE_LABEL_W + RATE_PAD
    plot_w = max(RATE_MIN_W, min(RATE_MAX_W, RATE_STEP * max(1, len(ordered) - 1)))
    top = RATE_PAD
    step = plot_w / (len(ordered) - 1) if len(ordered) > 1 else 0.0
    points: list[RatePoint] = []
    lines: list[str] = []
    stretch: list[str] = []
    for index, run in enumerate(ordered):
        rate = run.rate
        if rate is None:
            if len(stretch) > 1:
                lines.append(" ".join(stretch))
            stretch = []
            continue
        x = round(plot_x + (index * step if len(ordered) > 1 else plot_w / 2), 1)
        y = round(top + (1.0 - rate) * RATE_PLOT_H, 1)
        stretch.append(f"{x},{y}")
        points.append(
            RatePoint(
                x=x,
                y=y,
                run_id=run.run_id,
                title=(
                    f"run {run.run_id}, {_day(run.at)}: {100 * rate:.1f}% passed"
                    f" ({run.passed} of {run.ran})"
                ),
                outcome="passed" if run.passed == run.ran else "failed",
            )
        )
    if len(stretch) > 1:
        lines.append(" ".join(stretch))
    grid = tuple(
        (round(top + (1.0 - share) * RATE_PLOT_H, 1), f"{int(share * 100)}%")
        for share in (1.0, 0.5, 0.0)
    )
    return RateChart(
        width=plot_x + plot_w + RATE_PAD,
        height=top + RATE_PLOT_H + 28,
        plot_x=plot_x,
        plot_w=plot_w,
        points=tuple(points),
        lines=tuple(lines),
        grid=grid,
        first=_day(ordered[0].at) if ordered else "",
        last=_day(ordered[-1].at) if ordered else "",
    )


# ---------------------------------------------------------------------- a run's analysis


@dataclass(frozen=True)
class Answer:
    """What a test answered at a commit, and the check run that asked."""

    sha: str
    outcome: str
    check_run: int | None


@dataclass(frozen=True)
class Failure:
    """A changed test of a scheduled run, with the evidence its verdict rests on."""

    test: str
    shown: str
    history_url: str | None
    folder: str
    machine_type: str
    status: str
    #: None while the analysis has not decided
    verdict: str | None
    reason: str
    #: the first line of what went wrong in the run
    message: str
    first_bad: str | None
    reruns: tuple[Answer, ...]
    previous: Answer | None
    probes: tuple[Answer, ...]


@dataclass(frozen=True)
class Check:
    name: str
    run_id: int


@dataclass(frozen=True)
class RunAnalysis:
    """A scheduled run's comparison with the previous run of its schedule, and where the
    checks of its new failures stand."""

    #: "" before the analysis began; then verify, bisect, report, done
    phase: str
    #: a sentence on what is still going on; "" once done
    waiting: str
    previous_run: int | None
    previous_sha: str | None
    new: tuple[Failure, ...]
    still_failing: tuple[Failure, ...]
    fixed: tuple[Failure, ...]
    #: the first-parent commits after the previous run's up to this run's, when bisected
    commits_between: int | None
    checks: tuple[Check, ...]
    #: the changed tests per bucket, as the schedule's page counts them
    counts: dict[str, int]


def check_label(name: str) -> str:
    """A check run's name (`reruns`, `previous`, `probe:<sha>`) as the page says it."""
    if name == "reruns":
        return "re-runs at this run's commit"
    if name == "previous":
        return "the previous run's commit"
    if name.startswith("probe:"):
        return f"bisect probe at {name.removeprefix('probe:')[:12]}"
    return name


def _answers(
    evidence: Any, head: str, previous: str | None, checks: Mapping[str, int]
) -> tuple[tuple[Answer, ...], Answer | None, tuple[Answer, ...]]:
    """A verdict's evidence, in the order the analysis wrote it, split into the re-runs at the
    run's own commit, the run at the previous run's commit, and the bisect's probes after."""
    items = [
        (str(e.get("sha", "")), str(e.get("outcome", "")))
        for e in (evidence if isinstance(evidence, list) else [])
        if isinstance(e, dict)
    ]
    reruns: list[Answer] = []
    index = 0
    while index < len(items) and items[index][0] == head:
        reruns.append(Answer(*items[index], checks.get("reruns")))
        index += 1
    at_previous: Answer | None = None
    if previous is not None:
        if previous == head and reruns:
            # Both checks ran at one commit: the analysis wrote the previous run's answer last.
            last = reruns.pop()
            at_previous = Answer(last.sha, last.outcome, checks.get("previous"))
        elif index < len(items) and items[index][0] == previous:
            at_previous = Answer(*items[index], checks.get("previous"))
            index += 1
    probes = tuple(
        Answer(sha, outcome, checks.get(f"probe:{sha}")) for sha, outcome in items[index:]
    )
    return tuple(reruns), at_previous, probes


def run_analysis(
    run: RunRecord,
    verdicts: Sequence[TestVerdict],
    stored: Analysis | None,
) -> RunAnalysis:
    """The run page's section for a scheduled run, from its verdict rows and stored analysis."""
    state = stored.state if stored else {}
    previous = state.get("previous") if isinstance(state.get("previous"), dict) else None
    previous_sha = str(previous["sha"]) if previous and previous.get("sha") else None
    previous_run = previous.get("id") if previous and isinstance(previous.get("id"), int) else None
    checks = {
        str(name): run_id
        for name, run_id in (state.get("checks") or {}).items()
        if isinstance(run_id, int)
    }
    tests = state.get("tests") if isinstance(state.get("tests"), dict) else {}
    groups: dict[str, list[Failure]] = {"new": [], "still failing": [], "fixed": []}
    for row in verdicts:
        reruns, at_previous, probes = _answers(row.evidence, run.head_sha, previous_sha, checks)
        info = tests.get(row.test) if isinstance(tests.get(row.test), dict) else {}
        groups.setdefault(row.status, []).append(
            Failure(
                test=row.test,
                shown=shown_test(row.test),
                history_url=history_url(run.repo, row.test),
                folder=row.folder,
                machine_type=row.machine_type,
                status=row.status,
                verdict=row.verdict,
                reason=row.reason,
                message=str(info.get("message") or ""),
                first_bad=row.first_bad,
                reruns=reruns,
                previous=at_previous,
                probes=probes,
            )
        )
    bisect = state.get("bisect") if isinstance(state.get("bisect"), dict) else None
    commits = bisect.get("commits") if bisect else None
    if run.active:
        waiting = "The comparison with the previous run of this schedule comes when this run ends."
    elif stored is None:
        waiting = "The comparison with the previous run of this schedule has not begun yet."
    else:
        waiting = PHASES.get(stored.phase, f"Analysis phase: {stored.phase}.")
    return RunAnalysis(
        phase=stored.phase if stored else "",
        waiting=waiting,
        previous_run=previous_run,
        previous_sha=previous_sha,
        new=tuple(groups["new"]),
        still_failing=tuple(groups["still failing"]),
        fixed=tuple(groups["fixed"]),
        commits_between=len(commits) if isinstance(commits, list) else None,
        checks=tuple(
            Check(check_label(name), run_id)
            for name, run_id in sorted(checks.items(), key=lambda kv: kv[1])
        ),
        counts=change_counts(Counter((row.status, row.verdict) for row in verdicts)),
    )


# ---------------------------------------------------------------------- a test's history


@dataclass(frozen=True)
class HistoryEntry:
    """A test in one run: the outcome its cell shows, and what each machine type said."""

    run_id: int
    schedule: str
    head_sha: str
    at: float
    outcome: str
    #: "failed on single-gpu, passed on multi-gpu"
    detail: str
    verdicts: tuple[TestVerdict, ...]


@dataclass(frozen=True)
class Cell:
    x: float
    run_id: int
    outcome: str
    title: str

    @property
    def css(self) -> str:
        return self.outcome.replace(" ", "")


@dataclass(frozen=True)
class Strip:
    """One schedule's runs as a row of cells, oldest left, newest right."""

    schedule: str
    width: float
    height: float
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class TestHistory:
    __test__ = False  # not a pytest test class, whatever its name says

    strips: tuple[Strip, ...]
    #: newest first
    entries: tuple[HistoryEntry, ...]
    counts: dict[str, int]

    @property
    def changes(self) -> tuple[HistoryEntry, ...]:
        """The runs where the analysis said something of the test, newest first."""
        return tuple(entry for entry in self.entries if entry.verdicts)


CELL_W = 8
CELL_GAP = 2
CELL_H = 22


def cell_outcome(answers: Sequence[str], verdicts: Sequence[TestVerdict]) -> str:
    """One cell for a run, whatever machine types ran the test: flaky when the analysis found
    it so, failed when it failed on any, passed when it passed on one and failed on none, and
    otherwise not run (skipped, not collected, or its folder not in the run). Where the stored
    results were cut short, the comparison's record of the test decides."""
    if any(v.verdict == "flaky" for v in verdicts):
        return "flaky"
    if any(answer in FAILING for answer in answers):
        return "failed"
    if "passed" in answers:
        return "passed"
    if any(v.status in ("new", "still failing") for v in verdicts):
        return "failed"
    if any(v.status == "fixed" for v in verdicts):
        return "passed"
    return "not run"


def _detail(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return "its folder was not in this run"
    said = [
        f"{'not reported' if outcome == 'missing' else outcome}"
        + (f" on {machine}" if machine else "")
        for machine, outcome in pairs
    ]
    return ", ".join(said)


def history_of(rows: Sequence[TestInRun], test: str) -> TestHistory:
    """`test`'s history from its rows (newest first), one strip per schedule. Reads each
    covering job's results for that one test: run it off the event loop for a year of runs."""
    entries: list[HistoryEntry] = []
    for row in rows:
        pairs = [(job.machine_type, outcome_in(job.results, test)) for job in row.jobs]
        entries.append(
            HistoryEntry(
                run_id=row.run_id,
                schedule=row.schedule,
                head_sha=row.head_sha,
                at=row.requested_at,
                outcome=cell_outcome([o for _, o in pairs], row.verdicts),
                detail=_detail(pairs),
                verdicts=row.verdicts,
            )
        )
    by_schedule: dict[str, list[HistoryEntry]] = {}
    for entry in entries:
        by_schedule.setdefault(entry.schedule, []).append(entry)
    strips = []
    for schedule in sorted(by_schedule):
        oldest_first = sorted(by_schedule[schedule], key=lambda e: e.run_id)
        cells = tuple(
            Cell(
                x=index * (CELL_W + CELL_GAP),
                run_id=entry.run_id,
                outcome=entry.outcome,
                title=(
                    f"run {entry.run_id}, {_day(entry.at)}, {entry.head_sha[:12]}:"
                    f" {entry.outcome} ({entry.detail})"
                ),
            )
            for index, entry in enumerate(oldest_first)
        )
        strips.append(
            Strip(
                schedule=schedule,
                width=max(CELL_W, len(cells) * (CELL_W + CELL_GAP) - CELL_GAP),
                height=CELL_H,
                cells=cells,
            )
        )
    counts = dict.fromkeys(OUTCOMES, 0)
    for entry in entries:
        counts[entry.outcome] += 1
    return TestHistory(strips=tuple(strips), entries=tuple(entries), counts=counts)
