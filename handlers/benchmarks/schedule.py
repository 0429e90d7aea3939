"""The daily benchmark: a `[[scheduled_ci]]` entry with `benchmarks = true` also measures the
default branch's head at each of its fires.

The schedule is the entry's own (its name and cron) but this feature's, on the one scheduler
every feature shares: the scheduled slow run and the benchmark run are started by two fires of
the same time, each recorded and resumable on its own, so either can fail or be fired by hand
without the other. The run is a branch run like a push's: recorded on the default branch,
compared with its previous result there, and a regression told to Slack once.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.kit.context import Services
from bot.kit.conversation import job_refusal
from bot.kit.feature import Fire, FireResult, ScheduleSpec
from handlers.benchmarks.handler import start_branch_run
from handlers.benchmarks.start import KIND, runner_refusal
from handlers.scheduled_ci.client import ScheduledCiGitHub

__all__ = ["on_fire", "schedules"]

log = logging.getLogger(__name__)


def schedules(config: Any) -> list[ScheduleSpec]:
    """The scheduled-CI entries that ask for benchmarks, by their own names and times."""
    return [ScheduleSpec(s.name, s.cron) for s in config.scheduled_ci if s.benchmarks]


async def on_fire(services: Services, fire: Fire) -> FireResult:
    """Starts the benchmark run of the default branch's head, or says why none started."""
    gh = await services.github.for_installation(fire.installation_id)
    github = ScheduledCiGitHub(gh, fire.repo)
    repository = await github.repository()
    config = await services.configs.get(gh, fire.repo, repository.default_branch)
    entry = next((s for s in config.scheduled_ci if s.name == fire.name), None)
    if entry is None or not entry.benchmarks:
        return FireResult(None, f"the schedule {fire.name!r} no longer asks for benchmarks")
    if not config.benchmarks.command:
        return FireResult(None, "bot.toml names no [benchmarks] command: nothing to measure")
    slow = config.slow_ci
    reason = runner_refusal(slow) or job_refusal(
        services.jobs, slow.runner, "the [slow_ci] runner setting"
    )
    if reason is not None:
        log.warning("benchmarks of schedule %s of %s not run: %s", fire.name, fire.repo, reason)
        return FireResult(None, reason)
    sha = await github.branch_head(repository.default_branch)
    run = await start_branch_run(
        services,
        repo=fire.repo,
        sha=sha,
        branch=repository.default_branch,
        clone_url=repository.clone_url,
        private=repository.private,
        installation_id=fire.installation_id,
        config=config,
        trigger="schedule",
        key=f"{KIND}:schedule:{fire.id}",
        requested_at=fire.fired_at,
        channel=entry.channel,
    )
    return FireResult(run.id)
