"""`@bot /style`: ruff's fixes for a pull request's Python files, committed and pushed by the bot.

The reference runs the PR's own Makefile with a token that can push; here nothing from the PR
runs. The comment is accepted here (who asked, which head, which files) and becomes a durable
job of kind `style` on the `style` runner (`handlers/style/runner.py`), pinned to the head and base
SHAs seen now; `report_run` renders the one reply from the job's rows after every change, so a
restart re-renders it and a redelivered comment finds the same run (its key is the comment).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI
from bot.kit.command_job import Command, NewRun, carry_out, read_command
from bot.kit.commands import parse_commands
from bot.kit.comments import MARKER_PREFIX, marker
from bot.kit.context import Context, JobRecord, JobSystem, RunRecord, Services
from bot.kit.conversation import Conversation, by_a_bot
from bot.kit.help import Help, HelpCommand
from handlers.style.config import StyleConfig
from handlers.style.plan import KIND, RUNNER, StyleFacts, StyleResult, plan_run, render_comment
from handlers.style.runner import style_request

router = Router()

HELP = Help(
    name="style",
    summary=(
        "Runs `ruff check --fix` and `ruff format` on the Python files the pull request changed,"
        " with the base branch's ruff configuration, and pushes one `Apply style fixes` commit"
        " (a suggested diff for forks that do not allow maintainer edits). No code from the"
        " pull request runs."
    ),
    trigger="a pull-request comment with `@bot /style`",
    who="people with admin permission (configurable: `[style] min_permission`)",
    commands=(HelpCommand("@bot /style", "fix the changed Python files and push the fixes"),),
)


def wants_style(data: dict[str, Any], handle: str) -> bool:
    """A person's comment on a pull request that asks for `/style` outside quotes and code."""
    if "pull_request" not in data.get("issue", {}) or by_a_bot(data):
        return False
    body = (data.get("comment") or {}).get("body") or ""
    if MARKER_PREFIX in body:
        return False  # the bot's own reply (the `/help` table names the command) in token mode
    return any(command.name == "style" for command in parse_commands(body, handle))


@router.register("issue_comment", action="created")
async def on_comment(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    data = event.data
    if not wants_style(data, ctx.settings.handle):
        return
    config = (await ctx.repo_config()).style
    if not config.enabled:
        return
    comment = data["comment"]
    key = f"style:comment:{ctx.repo}:{comment['id']}"
    if await ctx.already_done(key):
        ctx.log.info("/style comment %s was handled before", comment["id"])
        return
    outcome = await accept(
        Conversation(gh, ctx.repo),
        ctx,
        config,
        number=data["issue"]["number"],
        login=comment["user"]["login"],
        comment_id=int(comment["id"]),
    )
    await ctx.mark_done(key, outcome)


async def accept(
    github: Conversation,
    ctx: Context,
    config: StyleConfig,
    *,
    number: int,
    login: str,
    comment_id: int,
) -> str:
    """Checks who asked, pins the head and base, chooses the files and queues the job.

    Returns what happened, for the delivery's record.
    """
    command = Command(ctx.repo, number, login, reply_key=f"style:reply:{comment_id}")
    hint = "`/style` runs in the bot's own process, so only where its server runs."
    first = await read_command(
        github,
        ctx.services.jobs,
        command,
        runner=RUNNER,
        hint=hint,
        min_permission=config.min_permission,
    )
    facts = StyleFacts(
        repo=ctx.repo,
        number=number,
        login=login,
        comment_id=comment_id,
        config=config,
        command=first,
        installation_id=(ctx.event.data.get("installation") or {}).get("id"),
        now=time.time(),
    )
    outcome = plan_run(facts)
    if isinstance(outcome, NewRun):
        await github.react(comment_id, "eyes")
    return await carry_out(github, ctx.services.jobs, command, outcome, logger=ctx.log)


# ---------------------------------------------------------------------- reporting


def commit_url(services: Services, repo: str, sha: str) -> str:
    return f"{services.settings.github_web_url}/{repo}/commit/{sha}"


def _phase_and_result(run: RunRecord, jobs: list[JobRecord]) -> tuple[str, StyleResult | None]:
    job = jobs[0] if jobs else None
    if job is not None and job.result:
        result = StyleResult.from_json(job.result)
        if run.spec.get("skipped") and not result.skipped:
            pairs = tuple(tuple(p) for p in run.spec["skipped"])
            result = StyleResult.from_json({**result.to_json(), "skipped": pairs})
        return "finished", result
    if run.active:
        return ("running" if job is not None and job.state != "queued" else "queued"), None
    reason = (job.reason if job is not None else None) or run.reason or "the job did not run"
    return "finished", StyleResult("error", reason=reason)


async def report_run(services: Services, run: RunRecord, jobs: list[JobRecord]) -> None:
    """Renders the run's one reply from its rows (and the final reaction); safe to repeat."""
    gh = await services.github.for_installation(run.spec.get("installation_id"))
    github = Conversation(gh, run.repo)
    phase, result = _phase_and_result(run, jobs)
    key = f"style:run:{run.id}"
    url = None
    if result is not None and result.commit_sha:
        url = commit_url(services, run.spec.get("head_repo") or run.repo, result.commit_sha)
    body = render_comment(marker=marker(key), phase=phase, result=result, commit_url=url)
    memory = await services.jobs.report_state(run.id)
    if memory.comment_id is None:
        posted = await github.comment(run.spec["comments_url"], key, body)
        await services.jobs.edit_report_state(
            run.id, lambda state: dataclasses.replace(state, comment_id=posted)
        )
    else:
        await github.edit_comment(memory.comment_id, body)
    if result is not None and not memory.reacted:
        good = result.outcome in ("pushed", "nothing", "suggested")
        await github.react(run.spec["comment_id"], "rocket" if good else "confused")
        await services.jobs.edit_report_state(
            run.id, lambda state: dataclasses.replace(state, reacted=True)
        )


def register_jobs(jobs: JobSystem, services: Services) -> None:
    """How the job system reports style runs, builds their requests and gets their token."""

    async def reporter(run: RunRecord, rows: list[JobRecord]) -> None:
        await report_run(services, run, rows)

    async def token(run: RunRecord) -> str | None:
        return await services.github.fetch_token(run.spec.get("installation_id"))

    jobs.register(KIND, reporter, token_provider=token, build_request=style_request)  # type: ignore[arg-type]
