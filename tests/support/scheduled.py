"""Firing a schedule and waiting for what follows, as the scheduled-run tests and the demo do."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def fire(
    harness: Any, repo: str, name: str, *, feature: str = "scheduled_ci", within: float = 120.0
) -> Any:
    """Fires the feature's schedule as the operator's button does; its fire row once it started
    a run (or said why it did not)."""
    runtime = harness.runtime
    fired = await runtime.scheduler.fire_now(repo, feature, name)
    assert fired is not None, f"no schedule {name!r} on {repo}"
    async with asyncio.timeout(within):
        while True:
            await runtime.scheduler.settle()
            for row in await runtime.services.records.fires_of(repo, feature, name):
                if row.id == fired.id and (row.run_id is not None or row.note):
                    return row
            await asyncio.sleep(0.02)


async def until_phase(runtime: Any, run_id: int, phase: str, *, within: float = 300.0) -> None:
    """Waits until the run's analysis reaches `phase` ("done": the report was queued)."""
    async with asyncio.timeout(within):
        while True:
            analysis = await runtime.services.records.analysis(run_id)
            if analysis is not None and analysis.phase == phase:
                return
            await asyncio.sleep(0.02)


async def posted(
    harness: Any,
    channel: str,
    count: int,
    *,
    within: float = 30.0,
    until: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:
    """The sandbox Slack's messages to `channel`, once there are at least `count` (and, with
    `until`, once it holds for them: the outbox sends a run's messages one after another)."""

    def found() -> list[Any]:
        return [m for m in harness.slack.messages if m["channel"] == channel]

    async with asyncio.timeout(within):
        while len(found()) < count or (until is not None and not until(found())):
            await asyncio.sleep(0.02)
    return found()
