"""`@bot /style`: ruff's fixes for a pull request's Python files, committed and pushed by the bot.

The reference runs the PR's own Makefile with a token that can push; here nothing from the PR
runs. The comment is accepted here (who asked, which head, which files) and becomes a durable
job of kind `style` on the `style` runner (`handlers/style/runner.py`), pinned to the head and base
SHAs seen now; `report_run` renders the one reply from the job's rows after every change, so a
restart re-renders it and a redelivered comment finds the same run (its key is the comment).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI
from bot.config import StyleConfig
from bot.jobs.system import JobRecord, JobSystem, RunRecord
from bot.kit.commands import parse_commands
from bot.kit.comments import MARKER_PREFIX, marker
from bot.kit.context import Context, Services
from bot.kit.conversation import Conversation, PullInfo, at_least, job_refusal
from bot.kit.help import Help, HelpCommand
from handlers.style.plan import (
    CLOSED_REPLY,
    NO_FILES_REPLY,
    StyleResult,
    choose_files,
    not_authorised_reply,
    render_comment,
)
from handlers.style.runner import style_request

KIND = "style"
RUNNER = "style"

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


def _by_a_bot(data: dict[str, Any]) -> bool:
    sender = data.get("sender") or {}
    author = (data.get("comment") or {}).get("user") or {}
    return "Bot" in (sender.get("type"), author.get("type")) or str(
        sender.get("login", "")
    ).endswith("[bot]")


def wants_style(data: dict[str, Any], handle: str) -> bool:
    """A person's comment on a pull request that asks for `/style` outside quotes and code."""
    if "pull_request" not in data.get("issue", {}) or _by_a_bot(data):
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
    repo = ctx.repo
    reply_key = f"style:reply:{comment_id}"
    comments_url = f"/repos/{repo}/issues/{number}/comments"
    role, pull, files = await asyncio.gather(
        github.role(login), github.pull(number), github.changed_files(number)
    )
    if not at_least(role, config.min_permission):
        text = not_authorised_reply(login, config.min_permission)
        return await github.reply(comments_url, reply_key, text)
    if pull.state != "open":
        return await github.reply(comments_url, reply_key, CLOSED_REPLY)
    if not pull.head_clone_url:
        text = "The head repository of this pull request is gone: there is nothing to push to."
        return await github.reply(comments_url, reply_key, text)
    choice = choose_files(files, config.paths, config.max_files)
    if not choice.files:
        return await github.reply(comments_url, reply_key, NO_FILES_REPLY)
    hint = "`/style` runs in the bot's own process, so only where its server runs."
    if refusal := job_refusal(ctx.services.jobs, RUNNER, hint):
        return await github.reply(comments_url, reply_key, refusal)
    await github.react(comment_id, "eyes")
    run = await ctx.services.jobs.create_run(
        KIND,
        repo=repo,
        number=number,
        head_sha=pull.head_sha,
        base_ref=None,
        requested_by=login,
        requested_at=time.time(),
        key=f"style:{repo}#{number}:comment-{comment_id}",
        spec=_spec(ctx, pull, choice.files, choice.skipped, config, comment_id),
        jobs=[("style", {"runner": RUNNER})],
    )
    ctx.log.info("/style on #%s: run %s, %d files", number, run.id, len(choice.files))
    return f"run {run.id}: {len(choice.files)} files at {pull.head_sha}"


def _spec(
    ctx: Context,
    pull: PullInfo,
    files: tuple[str, ...],
    skipped: tuple[tuple[str, str], ...],
    config: StyleConfig,
    comment_id: int,
) -> dict[str, Any]:
    return {
        "installation_id": (ctx.event.data.get("installation") or {}).get("id"),
        "comments_url": pull.comments_url,
        "comment_id": comment_id,
        "head_repo": pull.head_repo,
        "skipped": [list(pair) for pair in skipped],
        "request": {
            "head_clone_url": pull.head_clone_url,
            "head_ref": pull.head_ref,
            "base_clone_url": pull.base_clone_url,
            "base_sha": pull.base_sha,
            "files": list(files),
            "push": pull.may_push,
            "commit_name": config.commit_name,
            "commit_email": config.commit_email,
        },
    }


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
    reply_id = run.spec.get("reply_id")
    if reply_id is None:
        reply_id = await github.comment(run.spec["comments_url"], key, body)
        await services.jobs.update_spec(run.id, {"reply_id": reply_id})
    else:
        await github.edit_comment(reply_id, body)
    if result is not None and not run.spec.get("reacted"):
        good = result.outcome in ("pushed", "nothing", "suggested")
        await github.react(run.spec["comment_id"], "rocket" if good else "confused")
        await services.jobs.update_spec(run.id, {"reacted": True})


def register_jobs(jobs: JobSystem, services: Services) -> None:
    """How the job system reports style runs, builds their requests and gets their token."""

    async def reporter(run: RunRecord, rows: list[JobRecord]) -> None:
        await report_run(services, run, rows)

    async def token(run: RunRecord) -> str | None:
        return await services.github.fetch_token(run.spec.get("installation_id"))

    jobs.register(KIND, reporter, token_provider=token, build_request=style_request)  # type: ignore[arg-type]
