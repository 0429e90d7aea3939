"""`run-slow`: a maintainer's comment runs the slow test suites of chosen models on the commit
they looked at, as durable jobs, with one self-updating comment and a commit status.

Approval is for a commit, not a branch: the bot must have seen the PR's head become that commit
before the comment was written (its stored deliveries, else GitHub's test merge; never the
commit's dates, which the author writes), or the comment names the commit. That head SHA is
pinned in the run, and the runner checks out exactly it (merged into the base branch) and
aborts if the PR moved before the checkout. With the label, a push runs only when every push
since an approved head was made by someone who may approve. Code from the pull request runs
only there, only after an authorised person asked.

This module only reads and acts. Starting a run reads the facts (`SlowCiGitHub`, the bot's
records through the context), asks `decide.py` for a reply or a run, and carries it out with the
steps every command shares (`bot.kit.command_job`). Reporting reads a run's rows and performs
`report.py`'s plan (comment, commit status, check run, Slack), so a restart re-renders every run
and no status stays pending.

Beside the comment and the status, each run has a check run (Checks API) with the result table,
the failing tests as annotations and, when something failed, a "Re-run failed" button: its
click is a `check_run` delivery that starts what `run-slow --failed` starts. Checks need an App
installation token; with a personal token GitHub refuses them, and the run goes on without.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

import gidgethub
from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI, checks_refused
from bot.kit.approval import label_push_approval
from bot.kit.command_job import Command, NewRun, Refusal, carry_out, may_ask, read_command
from bot.kit.comments import marker
from bot.kit.context import (
    Context,
    JobRecord,
    JobSystem,
    ReportState,
    RunLocks,
    RunRecord,
    Services,
)
from bot.kit.conversation import by_a_bot
from bot.kit.help import Help, HelpCommand
from handlers.slow_ci import verdicts, verify
from handlers.slow_ci.checks import CHECK_NAME, RERUN_FAILED, CheckRunPlan, ReportedTest
from handlers.slow_ci.client import SlowCiGitHub
from handlers.slow_ci.config import SlowCiConfig
from handlers.slow_ci.decide import (
    KIND,
    Ask,
    Facts,
    PreviousRun,
    Repository,
    approval,
    approval_refusal,
    approved_head,
    decide,
    names_to_find,
    needs_test_merge,
    request_refusal,
)
from handlers.slow_ci.plan import (
    JobSpec,
    PushApproval,
    Selection,
    Trigger,
    folder_candidates,
    parse_commit_message_trigger,
    parse_trigger,
    plan_reminder,
)
from handlers.slow_ci.render import (
    not_authorised_reply,
    reminder_comment,
    unapproved_push_reply,
    untraced_push_reply,
)
from handlers.slow_ci.report import (
    CommitStatus,
    Newer,
    ReportFacts,
    comment_key,
    job_spec,
    phase_of,
    plan_report,
)

LABEL = "run-slow"
#: A run's remembered `check_run_id` when GitHub refused check runs (a personal token): the run
#: is reported without one, and not asked again at every report.
NO_CHECK_RUN = 0

log = logging.getLogger(__name__)
router = Router()

HELP = Help(
    name="slow tests",
    summary=(
        "Runs the slow (GPU) test suites of the named models on exactly the commit approved,"
        " with a `pytest/custom-tests` status, one result comment and a `slow tests` check run"
        " whose Re-run failed button re-runs what failed."
    ),
    trigger="a pull-request comment starting with `run-slow`, or the `run-slow` label",
    who="maintainers: the repository's allow-list, or write permission and above",
    commands=(
        HelpCommand("run-slow: bert, gpt2", "run those models' slow tests (plus new models)"),
        HelpCommand("run-slow --failed", "re-run only what failed in the previous run"),
        HelpCommand(
            "run-slow: bert, gpt2 sha=<sha>",
            "approve exactly that commit (its full SHA, or at least its first 12 characters),"
            " where the bot cannot tell whether the comment came after the latest push",
        ),
    ),
)


# ---------------------------------------------------------------------- triggers


@router.register("issue_comment", action="created")
async def on_comment(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    data = event.data
    if "pull_request" not in data["issue"] or by_a_bot(data):
        return
    trigger = parse_trigger(data["comment"]["body"])
    if trigger is None:
        return
    config = (await ctx.repo_config()).slow_ci
    if not config.enabled:
        return
    comment = data["comment"]
    key = f"slow_ci:comment:{ctx.repo}:{comment['id']}"
    if await ctx.already_done(key):
        ctx.log.info("run-slow comment %s was handled before", comment["id"])
        return
    ask = Ask(
        number=data["issue"]["number"],
        login=comment["user"]["login"],
        trigger=trigger,
        source=f"comment-{comment['id']}",
        approved_at=_parse_time(comment["created_at"]),
    )
    outcome = await start_run(SlowCiGitHub(gh, ctx.repo), ctx, config, ask)
    await ctx.mark_done(key, outcome)


@router.register("pull_request", action="labeled")
async def on_label(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    """The label approves the head at the moment it is added, by whoever added it."""
    data = event.data
    if (data.get("label") or {}).get("name") != LABEL or by_a_bot(data):
        return
    await _label_run(event, gh, ctx, approver=data["sender"]["login"])


@router.register("pull_request", action="synchronize")
async def on_push(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    """A push to a labelled PR runs only when its pusher may approve runs themselves."""
    data = event.data
    labels = {label.get("name") for label in data["pull_request"].get("labels") or ()}
    if LABEL in labels and not by_a_bot(data):
        await _label_run(event, gh, ctx, approver=data["sender"]["login"], push=True)


async def _label_run(
    event: Event, gh: GitHubAPI, ctx: Context, *, approver: str, push: bool = False
) -> None:
    config = (await ctx.repo_config()).slow_ci
    if not config.enabled:
        return
    pull = event.data["pull_request"]
    sha = pull["head"]["sha"]
    # A push and a label are keyed apart: after a refused push, adding the label again approves.
    key = f"slow_ci:{'push' if push else 'label'}:{ctx.repo}#{pull['number']}:{sha}"
    if await ctx.already_done(key):
        return
    github = SlowCiGitHub(gh, ctx.repo)
    if push:
        approval = await _push_approval(github, ctx, config, pull["number"], sha)
        if approval.verdict != "approved":
            text = (
                unapproved_push_reply(sha, approver, approval.refused)
                if approval.verdict == "refused"
                else untraced_push_reply(sha)
            )
            comments_url = pull.get("comments_url") or pull["issue_url"] + "/comments"
            await github.reply(comments_url, f"slow_ci:unapproved:{sha}", text)
            await ctx.mark_done(key, f"push by {approver} not approved: {approval.verdict}")
            return
    message = await github.commit_message(sha)
    trigger = parse_commit_message_trigger(message) or Trigger((), False)
    ask = Ask(pull["number"], approver, trigger, f"label-{sha[:12]}", pinned_sha=sha)
    outcome = await start_run(github, ctx, config, ask)
    await ctx.mark_done(key, outcome)


@router.register("pull_request", action="opened")
@router.register("pull_request", action="ready_for_review")
@router.register("pull_request", action="synchronize")
async def remind(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    """One comment per PR, ever, naming the models it touches and the line to paste."""
    pull = event.data["pull_request"]
    if pull.get("draft") or pull.get("state") != "open":
        return
    config = (await ctx.repo_config()).slow_ci
    if not (config.enabled and config.reminder):
        return
    key = f"slow_ci:reminder:{ctx.repo}#{pull['number']}"
    if await ctx.already_done(key):
        return
    github = SlowCiGitHub(gh, ctx.repo)
    files = await github.changed_files(pull["number"])
    reminder = plan_reminder(files, config.models_dir, draft=False)
    if reminder is None:
        return
    comments_url = pull.get("comments_url") or pull["issue_url"] + "/comments"
    body = reminder_comment(reminder, marker=marker(key) + "\n")
    await github.comment(comments_url, key, body)
    await ctx.mark_done(key, reminder.line)


@router.register("check_run", action="requested_action")
async def on_check_action(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    """The Re-run failed button: `run-slow --failed` by whoever clicked, on the check's commit.

    One re-run per check run, however often it is clicked or the click redelivered; a click by
    someone who may not run slow tests gets the same answer as their comment would, and leaves
    the button to a maintainer.
    """
    data = event.data
    check = data["check_run"]
    if (data.get("requested_action") or {}).get("identifier") != RERUN_FAILED:
        return
    if by_a_bot(data):
        return
    run = await _run_of_check(ctx, check)
    if run is None or run.number is None:
        ctx.log.info("check run %s is not one of this bot's slow runs; ignored", check["id"])
        return
    config = (await ctx.repo_config()).slow_ci
    if not config.enabled:
        return
    key = f"slow_ci:check:{ctx.repo}:{check['id']}"
    if await ctx.already_done(key):
        ctx.log.info("the Re-run failed of check run %s was handled before", check["id"])
        return
    github = SlowCiGitHub(gh, ctx.repo)
    login = data["sender"]["login"]
    if not await may_ask(github, login, min_permission=config.min_permission, allow=config.allow):
        text = not_authorised_reply(login, config.allow, config.min_permission)
        comments_url = f"/repos/{ctx.repo}/issues/{run.number}/comments"
        await github.reply(comments_url, f"slow_ci:reply:check-{check['id']}-{login}", text)
        return
    trigger = Trigger((), failed_only=True)
    ask = Ask(run.number, login, trigger, f"check-{check['id']}", pinned_sha=check["head_sha"])
    outcome = await start_run(github, ctx, config, ask)
    await ctx.mark_done(key, outcome)


async def _run_of_check(ctx: Context, check: dict[str, Any]) -> RunRecord | None:
    """The run whose check run this is, or None for anyone else's check run.

    The check run names its run (`external_id`) and the run names its check run: both must
    agree, and in App mode the check run must be this App's, so another App's check run that
    happens to carry a number is never taken for a run of ours.
    """
    external = check.get("external_id")
    if not isinstance(external, str) or not (external.isascii() and external.isdigit()):
        return None
    run = await ctx.services.jobs.get_run(int(external))
    if run is None or run.kind != KIND or run.repo.casefold() != ctx.repo.casefold():
        return None
    check_run_id = (await ctx.services.jobs.report_state(run.id)).check_run_id
    if not check_run_id or check_run_id != check.get("id"):
        return None
    if run.head_sha != check.get("head_sha"):
        return None
    app_id = ctx.settings.github_app_id
    if app_id and str((check.get("app") or {}).get("id")) != str(app_id):
        return None
    return run


# ---------------------------------------------------------------------- starting a run


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _approved_key(repo: str, number: int, sha: str) -> str:
    """Recorded when a maintainer approves a head (a comment, the label, a button, an approved
    push): the label's later pushes chain back to one of these."""
    return f"slow_ci:approved:{repo}#{number}:{sha}"


async def _push_approval(
    github: SlowCiGitHub, ctx: Context, config: SlowCiConfig, number: int, head_sha: str
) -> PushApproval:
    """Whether a push to a labelled PR runs: who pushed since the last head a maintainer
    approved (recorded approvals and the PR's runs), each of whom must be allowed to approve."""
    runs = await ctx.services.jobs.runs_of(ctx.repo, number, kind=KIND)

    def may_approve(login: str) -> Awaitable[bool]:
        return may_ask(github, login, min_permission=config.min_permission, allow=config.allow)

    return await label_push_approval(
        ctx,
        number=number,
        head_sha=head_sha,
        approved_key=lambda sha: _approved_key(ctx.repo, number, sha),
        run_heads=[run.head_sha for run in runs],
        may_approve=may_approve,
    )


async def start_run(github: SlowCiGitHub, ctx: Context, config: SlowCiConfig, ask: Ask) -> str:
    """Reads what the decision needs, records the approval it gives, and replies or queues the
    run it decides.

    Returns what happened, for the delivery's record.
    """
    command = Command(ctx.repo, ask.number, ask.login, ask.reply_key)
    facts = await _read_facts(github, ctx, config, ask, command)
    if (approved := approved_head(facts)) is not None:
        await ctx.mark_done(
            _approved_key(ctx.repo, ask.number, approved), f"approved by {ask.login}"
        )
    outcome = decide(facts)
    job: Refusal | NewRun = outcome if isinstance(outcome, Refusal) else outcome.run
    return await carry_out(github, ctx.services.jobs, command, job, logger=ctx.log)


#: Where a one-shot `bot handle` cannot run the configured runner: what would make it work.
RUNNER_HINT = (
    "this repository's `.github/bot.toml` does not choose that"
    ' (`[slow_ci] runner = "github-actions"`).'
)


async def _read_facts(
    github: SlowCiGitHub, ctx: Context, config: SlowCiConfig, ask: Ask, command: Command
) -> Facts:
    """The facts `decide` reads, each read only once the decision has got as far as needing it
    (the decision's own functions say when)."""
    first = await read_command(
        github,
        ctx.services.jobs,
        command,
        runner=config.runner,
        hint=RUNNER_HINT,
        min_permission=config.min_permission,
        allow=config.allow,
    )
    data = ctx.event.data
    repository = data.get("repository") or {}
    facts = Facts(
        repo=ctx.repo,
        ask=ask,
        config=config,
        command=first,
        now=time.time(),
        repository=Repository(
            installation_id=(data.get("installation") or {}).get("id"),
            private=bool(repository.get("private", True)),
            default_branch=repository.get("default_branch"),
        ),
    )
    if request_refusal(facts) is not None:
        return facts
    if ask.approved_at is not None:
        facts = dataclasses.replace(facts, pushes=tuple(await ctx.push_records(ask.number)))
        if needs_test_merge(facts):
            facts = dataclasses.replace(facts, merge=await github.test_merge(ask.number))
        if (verdict := approval(facts)) is not None:
            ctx.log.info(
                "run-slow on #%s at %s: %s, %s",
                ask.number,
                facts.sha[:12],
                verdict.verdict,
                verdict.reason,
            )
        if approval_refusal(facts) is not None:
            return facts
    if ask.trigger.failed_only:
        last = await ctx.services.jobs.last_run(KIND, ctx.repo, ask.number)
        return dataclasses.replace(facts, previous=_previous_run(last))
    names = names_to_find(facts)
    found = await asyncio.gather(*(_test_folder(github, name, facts.sha) for name in names))
    return dataclasses.replace(facts, test_folders=frozenset(path for path in found if path))


async def _test_folder(github: SlowCiGitHub, name: str, sha: str) -> str | None:
    """The name's test folder at `sha`, in the planner's order of preference; None if none."""
    for folder, _ in folder_candidates(name):
        if await github.is_folder(f"tests/{folder}", sha):
            return f"tests/{folder}"
    return None


def _previous_run(last: tuple[RunRecord, list[JobRecord]] | None) -> PreviousRun | None:
    """What `--failed` re-runs of the last finished run: its jobs that did not pass."""
    if last is None:
        return None
    run, jobs = last
    failed = tuple(
        (job_spec(job), tuple(job.failed_tests)) for job in jobs if job.done and not job.ok
    )
    return PreviousRun(Selection.from_json(run.spec.get("selection") or {}), failed)


# ---------------------------------------------------------------------- reporting


async def report_run(services: Services, run: RunRecord, jobs: list[JobRecord]) -> None:
    """Performs the report `plan_report` makes of the run's rows; safe to call any time.

    Each effect goes out whatever the others meet; then the first failure fails the report,
    which the job system retries with the rows of then (each effect is idempotent). Starting
    the checks of a finished run's failures is one of those effects: where it fails, the run's
    end is reported without them and the retry starts them.
    """
    gh = await services.github.for_installation(run.spec.get("installation_id"))
    github = SlowCiGitHub(gh, run.repo)
    facts, checks_failed = await _report_facts(services, github, run, jobs)
    plan = plan_report(facts)
    url = services.page_url(f"/runs/{run.id}")
    comment_id = (await services.jobs.report_state(run.id)).comment_id
    if comment_id is None:
        key = comment_key(run.id)
        comment = github.upsert_comment(run.spec["comments_url"], key, plan.comment)
    else:
        comment = github.edit_comment(comment_id, plan.comment)
    outcomes = await asyncio.gather(
        comment,
        _set_status(github, run.head_sha, plan.status, url),
        _report_check(services, github, run, plan.check, url),
        return_exceptions=True,
    )
    if comment_id is None and isinstance(outcomes[0], int):
        await _remember(services, run.id, comment_id=outcomes[0])
    for outcome in [*outcomes, checks_failed]:
        if isinstance(outcome, BaseException):
            raise outcome
    if plan.slack is not None:
        await services.outbox.queue_slack(f"slow_ci:slack:{run.id}", plan.slack)


async def _report_facts(
    services: Services, github: SlowCiGitHub, run: RunRecord, jobs: list[JobRecord]
) -> tuple[ReportFacts, Exception | None]:
    """The rows, and the reads the run's phase calls for; with what starting the checks of its
    failures met, when it failed."""
    phase, _ = phase_of(run, jobs)
    facts = ReportFacts(run, jobs, services.page_url(f"/runs/{run.id}"))
    failed: Exception | None = None
    if phase == "queued":
        position = await services.jobs.queue_position(run.id)
        past = await services.jobs.past_durations(KIND, [job.name for job in jobs], repo=run.repo)
        facts = dataclasses.replace(facts, queue_position=position, past_durations=past)
    elif phase == "finished":
        facts = dataclasses.replace(facts, tests=await _failing_tests(services, jobs))
        try:
            verification = await verify.start(services, github, run, jobs)
            if verification is not None and verification.state != verdicts.DONE:
                verification = await verify.advance(services, run.id) or verification
        except Exception as exc:  # reported after the run's own effects
            log.warning("could not start the checks of run %s: %s", run.id, exc)
            verification, failed = None, exc
        if verification is not None:
            ids = (verification.rerun_run, verification.base_run)
            urls = {i: services.page_url(f"/runs/{i}") for i in ids if i is not None}
            facts = dataclasses.replace(facts, verification=verification, check_urls=urls)
    if run.superseded_by is not None:
        newer = await services.jobs.get_run(run.superseded_by)
        url = services.page_url(f"/runs/{run.superseded_by}")
        facts = dataclasses.replace(facts, newer=Newer(url, newer.head_sha if newer else None))
    return facts, failed


async def _failing_tests(
    services: Services, jobs: list[JobRecord]
) -> dict[JobSpec, list[ReportedTest]]:
    """Per-test results of the jobs with failing tests: where the annotations point."""
    wanted = [job for job in jobs if job.done and (job.failed or job.errors)]
    found = await asyncio.gather(*(services.jobs.job_tests(job.id) for job in wanted))
    return {job_spec(job): list(tests) for job, tests in zip(wanted, found, strict=True)}


async def _set_status(
    github: SlowCiGitHub, sha: str, status: CommitStatus | None, url: str
) -> None:
    if status is not None:
        await github.set_status(sha, status.state, status.description, url)


async def _remember(services: Services, run_id: int, **changes: int) -> ReportState:
    """Writes what a report left on GitHub into the run's memory, field by field (compare and
    set), so the comment's write and the check run's never undo each other."""
    return await services.jobs.edit_report_state(
        run_id, lambda state: dataclasses.replace(state, **changes)
    )


async def _report_check(
    services: Services, github: SlowCiGitHub, run: RunRecord, plan: CheckRunPlan, url: str
) -> None:
    """Creates the run's check run or brings it up to date, annotations in batches.

    The run's memory is read now: an earlier report of this run may have created the check run
    after these rows were read. How many annotations went is remembered, since GitHub adds each
    request's annotations to the ones before, so a retried report sends only the rest.
    """
    memory = await services.jobs.report_state(run.id)
    check_run_id = memory.check_run_id
    if check_run_id == NO_CHECK_RUN:
        return
    sent = memory.annotations_sent
    batches = plan.batches(sent)
    first = batches.pop(0) if batches else ()
    try:
        if check_run_id is None:
            check_run_id = await github.find_check_run(run.head_sha, CHECK_NAME, str(run.id))
        if check_run_id is None:
            body = plan.create_body(
                head_sha=run.head_sha, external_id=str(run.id), details_url=url, annotations=first
            )
            check_run_id = await github.create_check_run(body)
            await _remember(services, run.id, check_run_id=check_run_id)
        else:
            if memory.check_run_id is None:
                await _remember(services, run.id, check_run_id=check_run_id)
            await github.update_check_run(check_run_id, plan.body(first))
        sent += len(first)
        if first:
            await _remember(services, run.id, annotations_sent=sent)
        for batch in batches:
            await github.update_check_run(check_run_id, {"output": plan.output(batch)})
            sent += len(batch)
            await _remember(services, run.id, annotations_sent=sent)
    except gidgethub.HTTPException as exc:
        if not checks_refused(exc):
            raise
        log.warning(
            "GitHub refused the check run of run %s (%s %s); the run is reported without one"
            " (check runs need a GitHub App installation token with checks: write)",
            run.id,
            int(exc.status_code),
            exc,
        )
        await _remember(services, run.id, check_run_id=NO_CHECK_RUN)


def register_jobs(jobs: JobSystem, services: Services) -> None:
    """How the job system reports this feature's runs and the checks of their failures, and
    where their fetch token comes from.

    A run is reported by the job system after each change, and again when one of its checks
    ends: one report of a run at a time, so a report that read the checks earlier never lands
    after one that read them done.
    """
    lock = RunLocks()

    async def reporter(run: RunRecord, rows: list[JobRecord]) -> None:
        async with lock(run.id):
            await report_run(services, run, rows)

    async def check_reporter(check: RunRecord, rows: list[JobRecord]) -> None:
        parent = check.spec.get("parent")
        if check.active or not isinstance(parent, int):
            return
        verification = await verify.advance(services, parent)
        if verification is None or verification.state != verdicts.DONE:
            return  # the other check run's end concludes it and reports the run
        async with lock(parent):
            run = await services.jobs.get_run(parent)
            if run is not None:
                await report_run(services, run, await services.jobs.jobs_of(parent))

    async def token(run: RunRecord) -> str | None:
        return await services.github.fetch_token(run.spec.get("installation_id"))

    jobs.register(KIND, reporter, token_provider=token)
    jobs.register(verify.CHECK_KIND, check_reporter, token_provider=token)
