"""The records a feature keeps beyond its runs: test verdicts, the flaky registry, an analysis's
stored steps, the fires of its schedules, and benchmark results.

Features do not import the store; they reach these through `services.records`, whose methods
each run one store operation in the group commit. The record types are the store's, re-exported
here for the features' annotations.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from bot.store import benchmarks, schedules, verdicts
from bot.store.benchmarks import BenchmarkResult
from bot.store.engine import Store
from bot.store.schedules import FireRow, Schedule
from bot.store.verdicts import Analysis, FlakyTest, Status, TestVerdict, Verdict

__all__ = [
    "Analysis",
    "BenchmarkResult",
    "FireRow",
    "FlakyTest",
    "Records",
    "Schedule",
    "Status",
    "TestVerdict",
    "Verdict",
]


class Records:
    def __init__(self, store: Store) -> None:
        self._store = store

    # ------------------------------------------------------------------ verdicts

    async def save_verdicts(self, rows: Sequence[TestVerdict]) -> None:
        """Writes each (run, test, machine type)'s row, replacing what was there."""
        wanted = list(rows)
        await self._store.call(lambda conn: verdicts.upsert_verdicts(conn, wanted))

    async def set_verdict(
        self,
        run_id: int,
        test: str,
        verdict: Verdict,
        *,
        machine_type: str = "",
        reason: str = "",
        first_bad: str | None = None,
        evidence: Any = (),
    ) -> bool:
        """The analysis's answer for a test the run lists; False when it lists no such test."""
        return await self._store.call(
            lambda conn: verdicts.set_verdict(
                conn,
                run_id,
                test,
                verdict,
                machine_type=machine_type,
                reason=reason,
                first_bad=first_bad,
                evidence=evidence,
            ),
            single=True,
        )

    async def verdicts_of(self, run_id: int) -> list[TestVerdict]:
        return await self._store.call(lambda conn: verdicts.verdicts_of(conn, run_id), single=True)

    async def verdict_history(self, repo: str, test: str, limit: int = 50) -> list[TestVerdict]:
        """A test's rows across `repo`'s runs, newest first."""
        return await self._store.call(
            lambda conn: verdicts.verdict_history(conn, repo, test, limit), single=True
        )

    # ------------------------------------------------------------------ the flaky registry

    async def record_flaky(self, repo: str, test: str, *, run_id: int | None = None) -> FlakyTest:
        """Counts one more time `test` passed on a re-run."""
        return await self._store.call(
            lambda conn: verdicts.record_flaky(conn, repo, test, run_id=run_id), single=True
        )

    async def list_flaky(self, repo: str) -> list[FlakyTest]:
        return await self._store.call(lambda conn: verdicts.list_flaky(conn, repo), single=True)

    # ------------------------------------------------------------------ an analysis's steps

    async def analysis(self, run_id: int) -> Analysis | None:
        return await self._store.call(lambda conn: verdicts.get_analysis(conn, run_id), single=True)

    async def swap_analysis(
        self, run_id: int, expected_version: int, phase: str, state: Mapping[str, Any]
    ) -> bool:
        """Stores the next step if the analysis is still at `expected_version` (0: not begun);
        False when another writer moved it first (read it again and go on from there)."""
        wanted = dict(state)
        return await self._store.call(
            lambda conn: verdicts.swap_analysis(conn, run_id, expected_version, phase, wanted),
            single=True,
        )

    async def open_analyses(self, finished: Collection[str]) -> list[Analysis]:
        """Analyses whose phase is not one of `finished`: what to resume after a restart."""
        done = list(finished)
        return await self._store.call(lambda conn: verdicts.open_analyses(conn, done), single=True)

    # ------------------------------------------------------------------ schedules

    async def schedule(self, repo: str, feature: str, name: str) -> Schedule | None:
        return await self._store.call(
            lambda conn: schedules.get_schedule(conn, repo, feature, name), single=True
        )

    async def fires_of(self, repo: str, feature: str, name: str, limit: int = 20) -> list[FireRow]:
        """A schedule's fires, newest first, each with the run it started or why none."""
        return await self._store.call(
            lambda conn: schedules.fires_of(conn, repo, feature, name, limit), single=True
        )

    # ------------------------------------------------------------------ benchmark results

    async def record_benchmarks(self, rows: Sequence[BenchmarkResult]) -> None:
        """Writes each (run, commit, machine type, metric)'s repeats, replacing a row the same
        run recorded before (a report repeated after a restart)."""
        wanted = list(rows)
        await self._store.call(lambda conn: benchmarks.record_results(conn, wanted))

    async def benchmarks_of(self, run_id: int) -> list[BenchmarkResult]:
        """What one run recorded: tells a repeated report that its results are already in."""
        return await self._store.call(lambda conn: benchmarks.results_of(conn, run_id), single=True)

    async def previous_benchmarks(
        self, repo: str, branch: str, machine_type: str, before_run_id: int
    ) -> list[BenchmarkResult]:
        """The newest earlier push's results on `branch` and `machine_type`; [] for none."""
        return await self._store.call(
            lambda conn: benchmarks.latest_before(conn, repo, branch, machine_type, before_run_id),
            single=True,
        )
