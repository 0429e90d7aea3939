"""Follows the slow-test jobs running on GitHub Actions through their webhooks.

With `[slow_ci] runner = "github-actions"` a job is a workflow run that GitHub schedules; its
`workflow_run` and `workflow_job` webhooks say when it is picked up and when it ends, so the
result comes as soon as it exists (the runner still polls, in case a delivery is lost). The job
system hands the event to whichever runner follows that workflow run; any other run is ignored.
"""

from __future__ import annotations

from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI
from bot.kit.context import Context
from bot.kit.help import Help

router = Router()

HELP = Help(
    name="slow tests on GitHub Actions",
    summary=(
        "Follows the slow-test jobs it dispatched to the repository's GitHub Actions runners,"
        " so each result reaches the pull request as soon as its workflow run ends."
    ),
    trigger='the workflow runs it dispatched, with `[slow_ci] runner = "github-actions"`',
    who="automatic",
)


@router.register("workflow_run")
@router.register("workflow_job")
async def on_workflow_event(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    """Moves the followed job along; an event about any other workflow run is ignored."""
    if ctx.services.jobs.observe(event.event, event.data):
        ctx.log.info("%s %s for a followed workflow run", event.event, event.data.get("action"))
