"""Which commit broke a test: a bisect over first-parent history, as data that outlives the bot.

The state is plain JSON (`to_json`/`from_json`), so each step can be stored as a small job and a
restart resumes from the steps already answered. Pure: the caller runs the probes.

Each test keeps its own range: `lo`, the last commit known to pass (-1 is the good commit the
range starts after), and `hi`, the first known to fail (at first the bad commit, which the
caller has seen fail). Tests whose next probe falls on the same commit are run there together,
so tests that broke together cost one run per step, not one each. A probe that answers neither
passed nor the test's failure (an error while collecting, no report: the commit could not be
built or checked out) skips that commit for that test; a test whose remaining commits were all
skipped ends `unknown`, naming them, and a commit is never blamed unless it was seen failing
right after one seen passing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Bisect", "BisectResult"]

STATE_VERSION = 1


@dataclass(frozen=True)
class BisectResult:
    """One test's answer: the first bad commit (`verdict` "new"), or why there is none."""

    verdict: Literal["new", "unknown"]
    first_bad: str | None
    reason: str
    #: every probe of this test, in order: {"sha", "outcome"}
    evidence: list[dict[str, str]] = field(default_factory=list)
    #: with "unknown": the commits the break is among (the untested ones and the first failing)
    suspects: tuple[str, ...] = ()

    @property
    def runs(self) -> int:
        return len(self.evidence)


@dataclass
class _Range:
    lo: int
    hi: int
    #: the outcome that counts as the failure (what the test did at the bad commit)
    symptom: str = "failed"
    skipped: list[int] = field(default_factory=list)
    evidence: list[dict[str, str]] = field(default_factory=list)

    def candidates(self) -> list[int]:
        return [i for i in range(self.lo + 1, self.hi) if i not in self.skipped]

    def next_index(self) -> int | None:
        """The commit to probe next: the untested one nearest the middle of the range."""
        options = self.candidates()
        if not options:
            return None
        middle = (self.lo + self.hi) // 2
        return min(options, key=lambda i: (abs(i - middle), i))


class Bisect:
    """A bisect of several tests over one range of commits."""

    def __init__(
        self,
        commits: tuple[str, ...],
        ranges: dict[str, _Range],
        steps: list[dict[str, Any]],
        good: str = "",
    ) -> None:
        self.commits = commits
        self.good = good
        self._ranges = ranges
        self._steps = steps
        self._index = {sha: i for i, sha in enumerate(commits)}

    @classmethod
    def start(
        cls,
        commits: Sequence[str],
        tests: Sequence[str],
        *,
        good: str = "",
        symptoms: Mapping[str, str] | None = None,
    ) -> Bisect:
        """`commits`: the first-parent chain after the good commit up to the bad one (included),
        oldest first. `symptoms`: a test's outcome at the bad commit when it is not "failed"
        (a test that errors there is probed for that error)."""
        chain = tuple(commits)
        if not chain:
            raise ValueError("no commits to bisect: the bad commit must follow the good one")
        if len(set(chain)) != len(chain):
            raise ValueError("the commits to bisect hold one commit twice")
        symptoms = symptoms or {}
        ranges = {
            test: _Range(lo=-1, hi=len(chain) - 1, symptom=symptoms.get(test, "failed"))
            for test in dict.fromkeys(tests)
        }
        return cls(chain, ranges, [], good)

    # ----------------------------------------------------------------------- stepping

    def next_probes(self) -> list[tuple[str, tuple[str, ...]]]:
        """(commit, the tests to run there), oldest commit first: one pytest run each."""
        groups: dict[int, list[str]] = {}
        for test, state in self._ranges.items():
            index = state.next_index()
            if index is not None:
                groups.setdefault(index, []).append(test)
        return [(self.commits[i], tuple(groups[i])) for i in sorted(groups)]

    def record(self, sha: str, results: Mapping[str, str]) -> None:
        """The outcomes of the probe at `sha` (passed, failed, error, missing); a test of that
        probe absent from `results` is missing. Recording a step again changes nothing, so a
        caller that stored its results and crashed may record them twice."""
        index = self._index.get(sha)
        if index is None:
            raise ValueError(f"{sha} is not one of the commits being bisected")
        probed = [t for t, state in self._ranges.items() if state.next_index() == index]
        if not probed:
            answered = all(
                any(e["sha"] == sha for e in self._ranges[t].evidence)
                for t in results
                if t in self._ranges
            )
            if answered:
                return
            raise ValueError(f"no test is waiting for a probe at {sha}")
        for test in probed:
            state = self._ranges[test]
            outcome = results.get(test, "missing")
            state.evidence.append({"sha": sha, "outcome": outcome})
            if outcome == "passed":
                state.lo = index
            elif outcome == state.symptom:
                state.hi = index
            else:
                state.skipped.append(index)
        self._steps.append({"sha": sha, "tests": probed})

    @property
    def done(self) -> bool:
        return all(state.next_index() is None for state in self._ranges.values())

    @property
    def steps(self) -> list[tuple[str, tuple[str, ...]]]:
        """The probes recorded so far: their number is the test runs the bisect cost."""
        return [(step["sha"], tuple(step["tests"])) for step in self._steps]

    @property
    def tests(self) -> tuple[str, ...]:
        return tuple(self._ranges)

    # ----------------------------------------------------------------------- answers

    def results(self) -> dict[str, BisectResult]:
        """The tests whose bisect has ended, each with its answer (all of them once `done`)."""
        return {
            test: self._result(state)
            for test, state in self._ranges.items()
            if state.next_index() is None
        }

    def _result(self, state: _Range) -> BisectResult:
        evidence = [dict(e) for e in state.evidence]
        bad = self.commits[state.hi]
        passing = self._name(state.lo)
        if state.hi == state.lo + 1:
            reason = f"{_short(bad)} {_symptom(state.symptom)}; {passing} passes"
            return BisectResult("new", bad, reason, evidence)
        untested = self.commits[state.lo + 1 : state.hi]
        within = range(state.lo + 1, state.hi)
        answers = sorted(
            {e["outcome"] for e in state.evidence if self._index.get(e["sha"], -2) in within}
        )
        count = f"{len(untested)} commit{'s' if len(untested) != 1 else ''}"
        reason = (
            f"{count} between {passing} (passes) and {_short(bad)} ({_symptom(state.symptom)})"
            f" could not be tested ({', '.join(answers) or 'no answer'}):"
            " the break is one of them or the one after"
        )
        return BisectResult("unknown", None, reason, evidence, (*untested, bad))

    def _name(self, index: int) -> str:
        if index >= 0:
            return _short(self.commits[index])
        return _short(self.good) if self.good else "the good commit"

    # ----------------------------------------------------------------------- storage

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "commits": list(self.commits),
            "good": self.good,
            "tests": {
                test: {
                    "lo": state.lo,
                    "hi": state.hi,
                    "symptom": state.symptom,
                    "skipped": list(state.skipped),
                    "evidence": [dict(e) for e in state.evidence],
                }
                for test, state in self._ranges.items()
            },
            "steps": [{"sha": s["sha"], "tests": list(s["tests"])} for s in self._steps],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Bisect:
        """A stored bisect, checked: a state that does not fit its commits is refused rather
        than resumed into a wrong answer."""
        if data.get("version", STATE_VERSION) != STATE_VERSION:
            raise ValueError(f"a bisect state of version {data.get('version')!r}")
        commits = tuple(str(sha) for sha in data.get("commits", ()))
        ranges: dict[str, _Range] = {}
        for test, raw in dict(data.get("tests", {})).items():
            state = _Range(
                lo=int(raw["lo"]),
                hi=int(raw["hi"]),
                symptom=str(raw.get("symptom", "failed")),
                skipped=[int(i) for i in raw.get("skipped", ())],
                evidence=[
                    {"sha": str(e["sha"]), "outcome": str(e["outcome"])}
                    for e in raw.get("evidence", ())
                ],
            )
            inside = -1 <= state.lo < state.hi < len(commits)
            if not inside or not all(0 <= i < len(commits) for i in state.skipped):
                raise ValueError(f"the stored bisect of {test} does not fit its commits")
            ranges[str(test)] = state
        steps = [
            {"sha": str(s["sha"]), "tests": [str(t) for t in s["tests"]]}
            for s in data.get("steps", ())
        ]
        return cls(commits, ranges, steps, str(data.get("good", "")))


def _short(sha: str) -> str:
    return sha[:12]


def _symptom(outcome: str) -> str:
    return "fails" if outcome == "failed" else f"answers {outcome}"
