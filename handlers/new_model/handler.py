"""Tell Slack when a push to the default branch adds a model to the library.

The decision is `plan.plan_new_models` (pure); this module reads the push through
`NewModelGitHub` and queues the messages. At most one alert per (repository, model) is ever
queued; the outbox retries it until Slack takes it.
"""

from __future__ import annotations

from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI
from bot.kit.context import Context
from bot.kit.help import Help
from handlers.new_model.client import NewModelGitHub
from handlers.new_model.plan import (
    NULL_SHA,
    FileChange,
    attribution,
    build_message,
    is_default_branch_push,
    net_changes,
    plan_new_models,
)

router = Router()

HELP = Help(
    name="new-model alerts",
    summary="Posts a Slack alert when a merge adds a model to the library.",
    trigger="a push to the default branch that adds `<models_dir>/<name>/modeling_<name>.py`",
    who="automatic",
)


@router.register("push")
async def on_push(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    await announce_new_models(event.data, NewModelGitHub(gh, ctx.repo), ctx)


async def announce_new_models(
    payload: dict[str, Any], github: NewModelGitHub, ctx: Context
) -> None:
    """Reads what the push changed, plans, and queues one alert per new model, ever."""
    if not is_default_branch_push(payload):
        return
    config = (await ctx.repo_config()).new_model
    if not config.enabled:
        ctx.log.info("new-model alerts are turned off for %s", ctx.repo)
        return
    before, after = payload.get("before") or NULL_SHA, payload["after"]
    added_in = attribution(payload.get("commits") or ())
    if before == NULL_SHA:
        # The branch was created by this push: no base to compare with, the payload is all.
        changes = [FileChange(path, "added") for path in added_in]
    else:
        changes, merge_base = await push_changes(github, before, after, log=ctx.log)
        if payload.get("forced"):
            base = merge_base or before
            ctx.log.info("forced push: compared against the merge base %s", base)
    plan = plan_new_models(changes, config, added_in=added_in, head=after)
    for rename in plan.renamed:
        ctx.log.info("model %s was renamed to %s: not a new model", rename.old, rename.new)
    repo_url = payload["repository"].get("html_url") or f"https://github.com/{ctx.repo}"
    for model in plan.added:
        pull = await github.pull_for_commit(model.commit)
        message = build_message(
            model=model,
            repo_url=repo_url,
            channel=config.channel,
            mention=config.mention,
            pull=pull,
        )
        queued = await ctx.queue_slack(f"new-model:{ctx.repo}:{model.name}", message)
        ctx.log.info(
            "new model %s %s", model.name, "alert queued" if queued else "was announced before"
        )


async def push_changes(
    github: NewModelGitHub, before: str, after: str, *, log: Any
) -> tuple[list[FileChange], str | None]:
    """The files changed between the endpoints, and the endpoints' merge base."""
    comparison = await github.compare(before, after)
    if comparison.complete:
        return comparison.files, comparison.merge_base
    # Too many files for one compare answer: list every commit's files and fold them.
    shas = await github.commits_between(before, after)
    per_commit = [await github.commit_files(sha) for sha in shas]
    log.info("push lists %d+ files; folded %d commits instead", len(comparison.files), len(shas))
    return net_changes(per_commit), comparison.merge_base
