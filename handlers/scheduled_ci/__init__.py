"""Scheduled slow runs of the default branch: what broke since the last run, which commit broke
it, and who to tell."""

from gidgethub.routing import Router

from bot.kit.feature import EventNeed, Feature, PermissionNeed
from handlers.scheduled_ci.cli import register_cli
from handlers.scheduled_ci.config import Schedule
from handlers.scheduled_ci.handler import CHECK_KIND, KIND, on_fire, register_jobs, schedules

FEATURE = Feature(
    name="scheduled_ci",
    title="scheduled slow runs",
    # Nothing on a pull request: it acts on the scheduler's fires and on its runs' ends.
    router=Router(),
    config=Schedule,
    config_array=True,
    permissions=(
        PermissionNeed("contents", "read", "the default branch's head, tests and history"),
        PermissionNeed("pull_requests", "read", "the pull request of a breaking commit"),
    ),
    events=(EventNeed("push", "a changed bot.toml's schedules"),),
    enabled=lambda config: bool(config.scheduled_ci),
    cli=register_cli,
    jobs=register_jobs,
    job_kinds=(KIND, CHECK_KIND),
    schedules=schedules,
    on_fire=on_fire,
)

__all__ = ["FEATURE"]
