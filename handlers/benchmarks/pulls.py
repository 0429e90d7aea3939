"""`run-benchmark` on a pull request: a maintainer's label measures the head and the base, and
the pull request gets one self-updating comment and a `benchmarks` check run with the table.

The approval rules are `run-slow`'s, word for word, because the same thing is at stake (the pull
request's code runs on the bot's machines): the label approves the head it was added on, by whoever
added it, who must be allowed to run slow tests (`[slow_ci] allow` / `min_permission`); a later
push re-runs while the label stays only when every push since an approved head was made by
someone who may approve (`bot.kit.approval`). The approved SHA is pinned in the run: the head
job checks out exactly it, and refuses to start once the branch has moved on. The base is the
commit GitHub names as the pull request's base, fetched from the base repository, as it is.

A newer run of the pull request supersedes the older one; the comment is the pull request's,
so each run edits the same one, and a superseded run leaves it to the newer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable
from typing import Any

import gidgethub
from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI, checks_refused
from bot.kit.approval import label_push_approval
from bot.kit.command_job import Command, NewRun, Refusal, carry_out, may_ask
from bot.kit.comments import marker
from bot.kit.context import Context, JobRecord, RunLocks, RunRecord, Services
from bot.kit.conversation import by_a_bot, job_refusal
from bot.kit.markdown import code_span, short_sha
from bot.kit.records import BenchmarkResult
from handlers.benchmarks.config import BenchmarksConfig
from handlers.benchmarks.pull_report import BASE, CHECK_NAME, HEAD, plan_pull_report
from handlers.benchmarks.series import measured_series
from handlers.benchmarks.start import KIND, Side, job_rows, request_spec, runner_refusal
from handlers.slow_ci.client import SlowCiGitHub
from handlers.slow_ci.config import SlowCiConfig

__all__ = ["LABEL", "report_pull", "router", "start_pull_run"]

log = logging.getLogger(__name__)

#: The label that asks for a pull request's benchmarks, as the reference names it.
LABEL = "run-benchmark"
#: A check run GitHub refused (a personal token cannot write them): not asked for again.
NO_CHECK_RUN = 0

router = Router()


# ---------------------------------------------------------------------- triggers


@router.register("pull_request", action="labeled")
async def on_label(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    """The label approves the head at the moment it is added, by whoever added it."""
    data = event.data
    if (data.get("label") or {}).get("name") != LABEL or by_a_bot(data):
        return
    await start_pull_run(data, gh, ctx, push=False)


@router.register("pull_request", action="synchronize")
async def on_push(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    """A push to a pull request that carries the label runs when the push is approved."""
    data = event.data
    labels = {label.get("name") for label in data["pull_request"].get("labels") or ()}
    if LABEL in labels and not by_a_bot(data):
        await start_pull_run(data, gh, ctx, push=True)


def _approved_key(repo: str, number: int, sha: str) -> str:
    return f"{KIND}:approved:{repo}#{number}:{sha}"


async def start_pull_run(
    data: dict[str, Any], gh: GitHubAPI, ctx: Context, *, push: bool
) -> str | None:
    """Replies once or queues the run of a labelled pull request's head and base; returns what
    happened (None where the repository measures nothing), for the delivery's record."""
    config = await ctx.repo_config()
    bench: BenchmarksConfig = config.benchmarks
    slow: SlowCiConfig = config.slow_ci
    if push and not bench.command:
        return None  # a label left on a repository that measures nothing: no reply per push
    pull = data["pull_request"]
    number, sha = int(pull["number"]), str(pull["head"]["sha"])
    login = str(data["sender"]["login"])
    key = f"{KIND}:{'push' if push else 'label'}:{ctx.repo}#{number}:{sha}"
    if await ctx.already_done(key):
        return None
    github = SlowCiGitHub(gh, ctx.repo)
    command = Command(ctx.repo, number, login, f"{KIND}:reply:{'push' if push else 'label'}-{sha}")
    outcome = await _decide(github, ctx, bench, slow, command, sha, push=push)
    if outcome is None:
        return None
    if isinstance(outcome, NewRun):
        await ctx.mark_done(_approved_key(ctx.repo, number, sha), f"approved by {login}")
    done = await carry_out(github, ctx.services.jobs, command, outcome, logger=ctx.log)
    await ctx.mark_done(key, done)
    return done


async def _decide(
    github: SlowCiGitHub,
    ctx: Context,
    bench: BenchmarksConfig,
    slow: SlowCiConfig,
    command: Command,
    sha: str,
    *,
    push: bool,
) -> Refusal | NewRun | None:
    """The reply or the run, in `run-slow`'s order: who asked (for a push: everyone who pushed
    since the approval), the pull request's state and head, what the repository measures, and
    whether its runner can take the run."""

    def may_approve(login: str) -> Awaitable[bool]:
        return may_ask(github, login, min_permission=slow.min_permission, allow=slow.allow)

    if push:
        runs = await ctx.services.jobs.runs_of(ctx.repo, command.number, kind=KIND)
        approval = await label_push_approval(
            ctx,
            number=command.number,
            head_sha=sha,
            approved_key=lambda head: _approved_key(ctx.repo, command.number, head),
            run_heads=[run.head_sha for run in runs],
            may_approve=may_approve,
        )
        if approval.verdict == "refused":
            return Refusal(unapproved_push_reply(sha, command.login, approval.refused))
        if approval.verdict == "unknown":
            return Refusal(untraced_push_reply(sha))
    elif not await may_approve(command.login):
        return Refusal(not_authorised_reply(command.login, slow))
    pull = await github.pull(command.number)
    if pull.state != "open":
        return Refusal("This pull request is closed, so no benchmark ran.")
    if pull.head_sha != sha:
        return Refusal(
            f"`{LABEL}` was for {code_span(short_sha(sha))}, but the pull request's head is now"
            f" {code_span(short_sha(pull.head_sha))}, so nothing ran. Remove and add the label"
            " again to measure the new head."
        )
    if not bench.command:
        return Refusal(
            f"`{LABEL}`: this repository's `.github/bot.toml` names no benchmark"
            " (`[benchmarks] command`), so nothing ran."
        )
    refusal = runner_refusal(slow) or job_refusal(
        ctx.services.jobs, slow.runner, "the [slow_ci] runner setting"
    )
    if refusal is not None:
        return Refusal(f"`{LABEL}`: nothing ran: {refusal}")
    if not pull.base_sha:
        return Refusal(f"`{LABEL}`: GitHub did not say which commit is the base; nothing ran.")
    head = Side(HEAD, sha, pull.head_clone_url or pull.base_clone_url, pull.head_ref)
    base = Side(BASE, pull.base_sha, pull.base_clone_url)
    repository = ctx.event.data["repository"]
    installation = ctx.event.data.get("installation")
    key = f"{KIND}:{ctx.repo}#{command.number}:{sha}"
    return NewRun(
        kind=KIND,
        head_sha=sha,
        key=key,
        jobs=tuple(job_rows([head, base], bench.machine_types)),
        spec={
            "trigger": "pull",
            "installation_id": installation.get("id") if isinstance(installation, dict) else None,
            "comments_url": pull.comments_url,
            "html_url": pull.html_url,
            "title": pull.title,
            "branch": pull.head_ref,
            "base_ref": pull.base_ref,
            "base_sha": pull.base_sha,
            "threshold": bench.threshold,
            "fail_on_regression": bench.fail_on_regression,
            "request": request_spec(bench, slow, default_branch=ctx.default_branch, run_key=key),
        },
        runner=slow.runner,
        private=repository.get("private") is not False,
        requested_at=time.time(),
        summary=f"{len(bench.machine_types) * 2} benchmark jobs",
        base_ref=pull.base_ref,
        supersede=True,
    )


def not_authorised_reply(login: str, slow: SlowCiConfig) -> str:
    """The label is a request to run the pull request's code: the people who may ask are
    those who may run its slow tests."""
    return (
        f"@{login}: `{LABEL}` runs the pull request's code, so only people who may run its slow"
        f" tests (the maintainers listed in the bot's configuration, or `{slow.min_permission}`"
        " permission or higher) can ask for it; nothing ran."
    )


def unapproved_push_reply(sha: str, pusher: str, refused: tuple[str, ...]) -> str:
    names = ", ".join(f"@{login}" for login in dict.fromkeys((pusher, *refused)))
    return (
        f"The `{LABEL}` label approved an earlier commit. {code_span(short_sha(sha))} came with"
        f" pushes by {names}, who cannot run benchmarks, so nothing ran. A maintainer can"
        " approve this commit by removing and adding the label again."
    )


def untraced_push_reply(sha: str) -> str:
    return (
        f"The `{LABEL}` label approved an earlier commit, but the bot has no record of every"
        f" push since then, so {code_span(short_sha(sha))} was not measured. A maintainer can"
        " approve it by removing and adding the label again."
    )


# ---------------------------------------------------------------------- the report


def comment_key(repo: str, number: int) -> str:
    """The pull request's one benchmarks comment: every run of it edits the same one."""
    return f"{KIND}:comment:{repo}#{number}"


async def report_pull(services: Services, run: RunRecord, rows: list[JobRecord]) -> None:
    """Brings the comment and the check run up to date with the run's rows and, once it has
    ended, records what both sides measured. Safe to call any time, and again: the comment
    and the check run are found again, the rows are replaced by run."""
    gh = await services.github.for_installation(run.spec.get("installation_id"))
    github = SlowCiGitHub(gh, run.repo)
    url = services.page_url(f"/runs/{run.id}")
    newer_url = (
        None if run.superseded_by is None else services.page_url(f"/runs/{run.superseded_by}")
    )
    plan = plan_pull_report(run, rows, run_url=url, newer_url=newer_url)
    effects: list[Awaitable[Any]] = [_report_check(services, github, run, plan.check, url)]
    if newer_url is None:
        effects.append(_report_comment(services, github, run, plan.comment))
    outcomes = await asyncio.gather(*effects, return_exceptions=True)
    if not run.active and run.state == "finished":
        await services.records.record_benchmarks(
            pull_results(run, rows, {metric for _, metric in plan.regressed})
        )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def pull_results(run: RunRecord, rows: list[JobRecord], slower: set[str]) -> list[BenchmarkResult]:
    """What each side measured, as results of the pull request: the head's on its branch (a
    slower metric flagged), the base's on the base branch at the base commit."""
    results = []
    for job in rows:
        measured = measured_series(job)
        if isinstance(measured, str):
            continue
        side = str(job.spec.get("side", HEAD))
        is_head = side == HEAD
        results += [
            BenchmarkResult(
                repo=run.repo,
                sha=str(job.spec.get("head_sha") or run.head_sha),
                branch=str(run.spec.get("branch" if is_head else "base_ref") or ""),
                machine_type=str(job.spec.get("machine_type", "")),
                metric=metric,
                unit=series.unit,
                values=series.values,
                run_id=run.id,
                pull_number=run.number,
                regression=is_head and metric in slower,
            )
            for metric, series in measured.items()
        ]
    return results


async def _report_comment(
    services: Services, github: SlowCiGitHub, run: RunRecord, body: str
) -> None:
    assert run.number is not None
    key = comment_key(run.repo, run.number)
    text = f"{body}\n\n{marker(key)}"
    comment_id = (await services.jobs.report_state(run.id)).comment_id
    if comment_id is None:
        comment_id = await github.upsert_comment(str(run.spec["comments_url"]), key, text)
        await _remember(services, run.id, comment_id=comment_id)
    else:
        await github.edit_comment(comment_id, text)


async def _report_check(
    services: Services, github: SlowCiGitHub, run: RunRecord, check: dict[str, Any], url: str
) -> None:
    """Creates the run's check run or brings it up to date; with a credential GitHub will not
    take check runs from, the run goes on without one, said once in the log."""
    check_run_id = (await services.jobs.report_state(run.id)).check_run_id
    if check_run_id == NO_CHECK_RUN:
        return
    try:
        if check_run_id is None:
            check_run_id = await github.find_check_run(run.head_sha, CHECK_NAME, str(run.id))
        if check_run_id is None:
            body = {**check, "head_sha": run.head_sha, "external_id": str(run.id)}
            if url.startswith(("http://", "https://")):
                body["details_url"] = url
            check_run_id = await github.create_check_run(body)
        else:
            await github.update_check_run(check_run_id, check)
        await _remember(services, run.id, check_run_id=check_run_id)
    except gidgethub.HTTPException as exc:
        if not checks_refused(exc):
            raise
        log.warning(
            "GitHub refused the check run of benchmark run %s (%s); the run is reported without"
            " one (check runs need a GitHub App installation token with checks: write)",
            run.id,
            int(exc.status_code),
        )
        await _remember(services, run.id, check_run_id=NO_CHECK_RUN)


async def _remember(services: Services, run_id: int, **changes: int) -> None:
    await services.jobs.edit_report_state(
        run_id, lambda state: dataclasses.replace(state, **changes)
    )


#: One report of a pull request's run at a time.
report_lock = RunLocks()
