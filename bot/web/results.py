"""Which of a run's test results a page shows: failures first, then skips, then passes, cut
into pages so a run with 50,000 results stays a page a browser opens at once.

Pure: results in, the page's slice out.
"""

from __future__ import annotations

import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from bot.jobs.runners.junit import TestResult

PAGE_SIZE = 500
OUTCOMES = ("all", "failed", "skipped", "passed")
#: The order a page lists results in: what needs looking at first.
BUCKETS = ("failed", "skipped", "passed")


@dataclass(frozen=True)
class Shown:
    """A test result as the page prints it, with the job (folder) it came from."""

    job: str
    node_id: str
    outcome: str
    message: str
    assertion: str
    location: str
    traceback: str
    time_s: float
    #: the line the failure leads with, the author's message first (`TestResult.headline`)
    headline: str = ""
    #: the headline, the rest of the message and the failing line, one a line
    summary: str = ""


@dataclass(frozen=True)
class ResultsView:
    q: str
    outcome: str
    page: int
    pages: int
    total: int
    matched: int
    failed_total: int
    skipped_total: int
    passed_total: int
    failed: tuple[Shown, ...]
    skipped: tuple[Shown, ...]
    passed: tuple[Shown, ...]
    base_query: tuple[tuple[str, str], ...]

    def link(self, page: int) -> str:
        query = [*self.base_query, ("page", str(page))]
        return "?" + urllib.parse.urlencode(query) + "#tests"


def _bucket(outcome: str) -> str:
    return "failed" if outcome in ("failed", "error") else outcome


#: A job's results by bucket, each as (job name, result): how pages hold and cache them.
Bucketed = dict[str, list[tuple[str, TestResult]]]


def bucketed(results: Iterable[tuple[str, TestResult]]) -> Bucketed:
    """Groups results by what a page lists them under; an unknown outcome is not listed."""
    out: Bucketed = {bucket: [] for bucket in BUCKETS}
    for pair in results:
        found = out.get(_bucket(pair[1].outcome))
        if found is not None:
            found.append(pair)
    return out


def select(
    jobs: Iterable[Bucketed],
    *,
    q: str = "",
    outcome: str = "all",
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> ResultsView:
    """The page of results to show, from each job's bucketed results, in job order within a
    bucket; an unknown outcome filter means all of them. Without a filter nothing is
    looked at one by one, so 50,000 results cost what the 500 shown do."""
    outcome = outcome if outcome in OUTCOMES else "all"
    needle = q.strip().casefold()
    groups = list(jobs)
    total = sum(len(found) for job in groups for found in job.values())
    wanted = BUCKETS if outcome == "all" else (outcome,)
    counts = {"failed": 0, "skipped": 0, "passed": 0}
    matched: list[tuple[str, TestResult]] = []
    for bucket in wanted:
        before = len(matched)
        for job in groups:
            found = job[bucket]
            if needle:
                found = [
                    pair
                    for pair in found
                    if needle in pair[1].node_id.casefold()
                    or needle in pair[1].message.casefold()
                    or needle in pair[1].summary.casefold()
                ]
            matched.extend(found)
        counts[bucket] = len(matched) - before
    pages = max(1, -(-len(matched) // page_size))
    page = min(max(1, page), pages)
    window = matched[(page - 1) * page_size : page * page_size]
    shown: dict[str, list[Shown]] = {"failed": [], "skipped": [], "passed": []}
    for job, t in window:
        bucket = _bucket(t.outcome)
        if bucket in shown:
            shown[bucket].append(
                Shown(
                    job,
                    t.node_id,
                    t.outcome,
                    t.message,
                    t.assertion,
                    t.location,
                    t.traceback,
                    t.time_s,
                    t.headline,
                    "\n".join(t.summary_lines),
                )
            )
    base: list[tuple[str, str]] = []
    if needle:
        base.append(("q", q.strip()))
    if outcome != "all":
        base.append(("outcome", outcome))
    return ResultsView(
        q=q.strip(),
        outcome=outcome,
        page=page,
        pages=pages,
        total=total,
        matched=len(matched),
        failed_total=counts["failed"],
        skipped_total=counts["skipped"],
        passed_total=counts["passed"],
        failed=tuple(shown["failed"]),
        skipped=tuple(shown["skipped"]),
        passed=tuple(shown["passed"]),
        base_query=tuple(base),
    )


def page_number(text: str | None) -> int:
    try:
        return max(1, int(text or "1"))
    except ValueError:
        return 1


class ResultsCache:
    """Parsed results of ended jobs, which never change: a run page refreshed every ten
    seconds, or paged through, reads and parses a 50,000-result run once.

    Bounded by the number of results held; the least recently shown job goes first.
    """

    def __init__(self, max_results: int = 250_000) -> None:
        self.max_results = max_results
        self._jobs: OrderedDict[int, tuple[Bucketed, int]] = OrderedDict()
        self._held = 0

    def get(self, job_id: int) -> Bucketed | None:
        found = self._jobs.get(job_id)
        if found is None:
            return None
        self._jobs.move_to_end(job_id)
        return found[0]

    def put(self, job_id: int, results: Bucketed) -> None:
        size = sum(len(found) for found in results.values())
        if job_id in self._jobs or size > self.max_results:
            return
        self._jobs[job_id] = (results, size)
        self._held += size
        while self._held > self.max_results:
            _, (_, dropped) = self._jobs.popitem(last=False)
            self._held -= dropped
