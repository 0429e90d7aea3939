"""Benchmarks: a repository's own benchmark command run at two commits and compared, metric by
metric, with the noise of its repeats taken into account."""

from gidgethub.routing import Router

from bot.kit.feature import EventNeed, Feature, PermissionNeed
from handlers.benchmarks.cli import register_cli
from handlers.benchmarks.config import BenchmarksConfig
from handlers.benchmarks.handler import HELP, KIND, register_jobs, router
from handlers.benchmarks.pulls import router as pull_router
from handlers.benchmarks.schedule import on_fire, schedules

FEATURE = Feature(
    name="benchmarks",
    title="benchmarks",
    router=Router(router, pull_router),
    help=HELP,
    config=BenchmarksConfig,
    permissions=(
        PermissionNeed("contents", "read", "the benchmarked commit's checkout"),
        PermissionNeed("pull_requests", "read", "the pull request of a regressing commit"),
        PermissionNeed("issues", "write", "a pull request's benchmarks comment"),
        PermissionNeed("checks", "write", "a pull request's benchmarks check run"),
    ),
    events=(
        EventNeed("push", "benchmarks of each push to the default branch"),
        EventNeed("pull_request", "the run-benchmark label and the pushes it covers"),
    ),
    cli=register_cli,
    jobs=register_jobs,
    job_kinds=(KIND,),
    schedules=schedules,
    on_fire=on_fire,
    enabled=lambda config: bool(config.benchmarks.command),
)

__all__ = ["FEATURE"]
