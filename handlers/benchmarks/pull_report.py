"""What a pull request is told of its benchmark run: one comment and one check run, planned
from the run's rows alone. Pure.

A run of a pull request measures its head and its base on each machine type, as two jobs. Each
machine type gets its own table once both have been read; a side that could not be measured
says why in its own words (the first lines the command printed, as the runner kept them) and is
never shown as zeros. The check run's conclusion is the one place the verdicts add up:

- the run was cancelled, or a newer push superseded it: `cancelled`;
- the head could not be measured: `failure` (the pull request's code broke its benchmark);
- a metric got slower: `neutral` with the table, `failure` where the repository asks for it
  (`fail_on_regression`);
- only the base could not be measured: `neutral` (nothing to compare with, not the pull
  request's fault);
- else `success`.

Metric names, units and error lines come from the benchmarked code: they reach Markdown only
through `bot.kit.markdown`, as inert text, in cells and code blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.kit.context import JobRecord, RunRecord
from bot.kit.markdown import code_fence, code_span, escape_text, one_line, short_sha
from handlers.benchmarks.compare import Comparison, Series, compare
from handlers.benchmarks.render import markdown_table
from handlers.benchmarks.series import measured_series

__all__ = [
    "CHECK_NAME",
    "MachineResult",
    "PullReport",
    "machine_results",
    "plan_pull_report",
]

#: The check run's name on the pull request's head commit.
CHECK_NAME = "benchmarks"
#: GitHub refuses a check run's `output.text` or `summary` longer than this.
OUTPUT_CHARS = 65535
#: A comment is at most 65,536 characters; the tables are cut well before.
COMMENT_CHARS = 60_000
#: Lines of a side's error shown: enough to see what the command said first.
ERROR_LINES = 12
HEAD, BASE = "head", "base"


@dataclass(frozen=True, slots=True)
class MachineResult:
    """One machine type's comparison, or why there is none: ``problems`` names each side that
    could not be measured (`head`, `base`) with what it said; ``waiting`` while a side runs."""

    machine_type: str
    rows: tuple[Comparison, ...] = ()
    problems: tuple[tuple[str, str], ...] = ()
    waiting: bool = False

    @property
    def regressed(self) -> tuple[Comparison, ...]:
        return tuple(row for row in self.rows if row.regressed)


@dataclass(frozen=True, slots=True)
class PullReport:
    """The comment's body and the check run's fields (without the commit and ids it is created
    with), and the metrics that got slower, per machine type, for the record."""

    comment: str
    check: dict[str, Any]
    conclusion: str | None
    regressed: frozenset[tuple[str, str]]


def _side_jobs(rows: Sequence[JobRecord]) -> dict[str, dict[str, JobRecord]]:
    by_machine: dict[str, dict[str, JobRecord]] = {}
    for job in rows:
        machine = str(job.spec.get("machine_type", ""))
        by_machine.setdefault(machine, {})[str(job.spec.get("side", HEAD))] = job
    return by_machine


def machine_results(rows: Sequence[JobRecord], threshold: float) -> list[MachineResult]:
    """Per machine type, in the run's order: the comparison of the two sides once both are
    done, what stands in its way otherwise."""
    results = []
    for machine, sides in _side_jobs(rows).items():
        if any(not job.done for job in sides.values()):
            results.append(MachineResult(machine, waiting=True))
            continue
        measured: dict[str, dict[str, Series]] = {}
        problems = []
        for name in (BASE, HEAD):
            job = sides.get(name)
            found = measured_series(job) if job is not None else "no job measured it"
            if isinstance(found, str):
                problems.append((name, found))
            else:
                measured[name] = found
        if problems:
            results.append(MachineResult(machine, problems=tuple(problems)))
        else:
            rows_compared = compare(measured[BASE], measured[HEAD], threshold)
            results.append(MachineResult(machine, rows=tuple(rows_compared)))
    return results


def plan_pull_report(
    run: RunRecord,
    rows: Sequence[JobRecord],
    *,
    run_url: str,
    newer_url: str | None = None,
) -> PullReport:
    """The comment and the check run of a pull request's benchmark run, in whatever state it
    is; `newer_url` is the run that superseded it."""
    threshold = float(run.spec.get("threshold", 0.05))
    results = machine_results(rows, threshold)
    head, base = run.head_sha, str(run.spec.get("base_sha") or "")
    base_ref = str(run.spec.get("base_ref") or "")
    what = f"{code_span(short_sha(head))} against its base {code_span(short_sha(base))}"
    if base_ref:
        what += f" ({code_span(one_line(base_ref, 100))})"
    link = f"[run {run.id}]({run_url})" if run_url.startswith(("http://", "https://")) else ""
    link = link or f"run {run.id}"
    repeats = (run.spec.get("request") or {}).get("repeats")
    regressed = frozenset(
        (result.machine_type, row.metric) for result in results for row in result.regressed
    )

    if run.state == "cancelled" or newer_url is not None:
        why = "superseded by a newer push's run" if newer_url else (run.reason or "cancelled")
        headline = f"Benchmarks of {what}: not measured ({escape_text(one_line(why, 200))})."
        conclusion: str | None = "cancelled"
        title = "Cancelled"
    elif run.active:
        done = sum(1 for job in rows if job.done)
        headline = f"Benchmarking {what}, {repeats} repeats each: {done} of {len(rows)} jobs done."
        conclusion, title = None, f"{done} of {len(rows)} jobs done"
    else:
        conclusion, title = _conclusion(results, bool(run.spec.get("fail_on_regression")))
        percent = f"{threshold:.0%}"
        headline = (
            f"Benchmarks of {what}, {repeats} repeats each: {title}"
            f" (a change counts beyond {percent} and beyond the repeats' spread)."
        )

    sections = [_section(result, run.state == "cancelled") for result in results]
    body = "\n\n".join([f"### Benchmarks\n\n{headline} {link}", *sections]).rstrip()
    comment = _cut(body, COMMENT_CHARS, link)
    check: dict[str, Any] = {
        "name": CHECK_NAME,
        "status": "completed" if conclusion else "in_progress",
        "output": {
            "title": title[:200],
            "summary": _cut(headline, OUTPUT_CHARS, link),
            "text": _cut("\n\n".join(sections), OUTPUT_CHARS, link),
        },
    }
    if conclusion:
        check["conclusion"] = conclusion
    return PullReport(comment, check, conclusion, regressed)


def _conclusion(results: Sequence[MachineResult], fail_on_regression: bool) -> tuple[str, str]:
    head_broken = [r for r in results if any(side == HEAD for side, _ in r.problems)]
    slower = sum(len(r.regressed) for r in results)
    base_broken = [r for r in results if r.problems and r not in head_broken]
    if head_broken:
        return "failure", "the head could not be measured"
    if slower:
        what = f"{slower} metric{'s' if slower != 1 else ''} slower"
        return ("failure" if fail_on_regression else "neutral"), what
    if base_broken:
        return "neutral", "the base could not be measured"
    faster = sum(1 for r in results for row in r.rows if row.verdict == "faster")
    return "success", f"no metric slower{f', {faster} faster' if faster else ''}"


def _section(result: MachineResult, cancelled: bool) -> str:
    title = f"#### {escape_text(one_line(result.machine_type or 'default', 100))}"
    if result.waiting:
        return f"{title}\n\n{'Not measured.' if cancelled else 'Measuring…'}"
    if result.problems:
        lines = [title]
        for side, problem in result.problems:
            shown = "\n".join(problem.splitlines()[:ERROR_LINES])
            fence = code_fence(shown)
            lines.append(f"The {side} could not be measured:\n\n{fence}\n{shown}\n{fence}")
        return "\n\n".join(lines)
    return f"{title}\n\n{markdown_table(result.rows)}"


def _cut(text: str, limit: int, link: str) -> str:
    """`text` within `limit` characters, cut at a line with a pointer to the run's page."""
    if len(text) <= limit:
        return text
    tail = f"\n\n… cut here; every metric is on {link}."
    kept = text[: limit - len(tail)]
    return kept[: kept.rfind("\n") if "\n" in kept else len(kept)] + tail
