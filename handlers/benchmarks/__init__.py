"""Benchmarks: a repository's own benchmark command run at two commits and compared, metric by
metric, with the noise of its repeats taken into account."""

from bot.kit.feature import EventNeed, Feature, PermissionNeed
from handlers.benchmarks.cli import register_cli
from handlers.benchmarks.config import BenchmarksConfig
from handlers.benchmarks.handler import KIND, register_jobs, router

FEATURE = Feature(
    name="benchmarks",
    title="benchmarks",
    router=router,
    config=BenchmarksConfig,
    permissions=(
        PermissionNeed("contents", "read", "the benchmarked commit's checkout"),
        PermissionNeed("pull_requests", "read", "the pull request of a regressing commit"),
    ),
    events=(EventNeed("push", "benchmarks of each push to the default branch"),),
    cli=register_cli,
    jobs=register_jobs,
    job_kinds=(KIND,),
    enabled=lambda config: bool(config.benchmarks.command),
)

__all__ = ["FEATURE"]
