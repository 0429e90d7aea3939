"""Slow tests on GitHub Actions: the dispatched workflow runs followed through their webhooks."""

from bot.kit.feature import EventNeed, Feature, PermissionNeed
from handlers.actions_follow.handler import HELP, router

FEATURE = Feature(
    name="actions_follow",
    title="slow tests on GitHub Actions",
    router=router,
    help=HELP,
    permissions=(
        PermissionNeed("actions", "write", "dispatch slow-tests.yml, follow and cancel its runs"),
    ),
    events=(
        EventNeed("workflow_run", "the run's progress"),
        EventNeed("workflow_job", "the job's progress"),
    ),
    enabled=lambda config: config.slow_ci.enabled and config.slow_ci.runner == "github-actions",
)

__all__ = ["FEATURE"]
