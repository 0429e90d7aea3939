"""`run-slow`: a maintainer's comment runs the slow test suites of chosen models on the commit
they looked at, as durable jobs, with one self-updating comment and a commit status.

Approval is for a commit, not a branch: the bot must have seen the PR's head become that commit
before the comment was written (its stored deliveries, else GitHub's test merge; never the
commit's dates, which the author writes), or the comment names the commit. That head SHA is
pinned in the run, and the runner checks out exactly it (merged into the base branch) and
aborts if the PR moved before the checkout. With the label, a push runs only when every push
since an approved head was made by someone who may approve. Code from the pull request runs
only there, only after an authorised person asked. The decisions are `plan.py`'s (and
`checks.py`'s for the check run); this module reads GitHub through `SlowCiGitHub` and the
bot's store, hands the run to the job system, and renders what the job system reports back
(`report_run`), so a restart re-renders every run and no status stays pending.

Beside the comment and the status, each run has a check run (Checks API) with the result table,
the failing tests as annotations and, when something failed, a "Re-run failed" button: its
click is a `check_run` delivery that starts what `run-slow --failed` starts. Checks need an App
installation token; with a personal token GitHub refuses them, and the run goes on without.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import datetime
from typing import Any

import gidgethub
from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI
from bot.config import DEFAULT_RUNNER_LABELS, SlowCiConfig
from bot.jobs.runners.junit import TestResult
from bot.jobs.system import JobRecord, JobSystem, RunRecord
from bot.kit.comments import marker
from bot.kit.context import Context, Services
from bot.kit.conversation import at_least, job_refusal
from bot.kit.help import Help, HelpCommand
from bot.store import deliveries as deliveries_db
from bot.store import effects as effects_db
from handlers.slow_ci.checks import CHECK_NAME, RERUN_FAILED, CheckRunPlan, plan_check_run
from handlers.slow_ci.client import SlowCiGitHub
from handlers.slow_ci.plan import (
    PENDING_DESCRIPTION,
    Approval,
    DroppedName,
    Failure,
    JobResult,
    JobSpec,
    PushApproval,
    SelectedFolder,
    Selection,
    Trigger,
    cannot_tell_reply,
    check_name,
    comment_approval,
    error_description,
    estimate,
    models_added,
    not_authorised_reply,
    nothing_selectable_reply,
    overall_state,
    parse_commit_message_trigger,
    parse_trigger,
    plan_jobs,
    plan_reminder,
    push_approval,
    pushes_since_approval,
    render_comment,
    select_folders,
    slack_summary,
    stale_comment_reply,
    status_description,
    unapproved_push_reply,
    untraced_push_reply,
)

KIND = "slow_ci"
LABEL = "run-slow"
#: `check_run_id` in a run's spec when GitHub refused check runs (a personal token): the run
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


def _by_a_bot(data: dict[str, Any]) -> bool:
    sender = data.get("sender") or {}
    author = (data.get("comment") or {}).get("user") or {}
    return "Bot" in (sender.get("type"), author.get("type")) or str(
        sender.get("login", "")
    ).endswith("[bot]")


@router.register("issue_comment", action="created")
async def on_comment(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    data = event.data
    if "pull_request" not in data["issue"] or _by_a_bot(data):
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
    github = SlowCiGitHub(gh, ctx.repo)
    outcome = await start_run(
        github,
        ctx,
        config,
        number=data["issue"]["number"],
        login=comment["user"]["login"],
        trigger=trigger,
        approved_at=_parse_time(comment["created_at"]),
        source=f"comment-{comment['id']}",
    )
    await ctx.mark_done(key, outcome)


@router.register("pull_request", action="labeled")
async def on_label(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    """The label approves the head at the moment it is added, by whoever added it."""
    data = event.data
    if (data.get("label") or {}).get("name") != LABEL or _by_a_bot(data):
        return
    await _label_run(event, gh, ctx, approver=data["sender"]["login"])


@router.register("pull_request", action="synchronize")
async def on_push(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    """A push to a labelled PR runs only when its pusher may approve runs themselves."""
    data = event.data
    labels = {label.get("name") for label in data["pull_request"].get("labels") or ()}
    if LABEL in labels and not _by_a_bot(data):
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
    outcome = await start_run(
        github,
        ctx,
        config,
        number=pull["number"],
        login=approver,
        trigger=trigger,
        approved_at=None,
        source=f"label-{sha[:12]}",
        pinned_sha=sha,
    )
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
    reminder = plan_reminder(files, config.models_dir, draft=False, marker=marker(key) + "\n")
    if reminder is None:
        return
    comments_url = pull.get("comments_url") or pull["issue_url"] + "/comments"
    await github.comment(comments_url, key, reminder.body)
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
    if _by_a_bot(data):
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
    if not await _authorised(github, config, login):
        text = not_authorised_reply(login, config.allow, config.min_permission)
        comments_url = f"/repos/{ctx.repo}/issues/{run.number}/comments"
        await github.reply(comments_url, f"slow_ci:reply:check-{check['id']}-{login}", text)
        return
    outcome = await start_run(
        github,
        ctx,
        config,
        number=run.number,
        login=login,
        trigger=Trigger((), True),
        approved_at=None,
        source=f"check-{check['id']}",
        pinned_sha=check["head_sha"],
    )
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
    check_run_id = run.spec.get("check_run_id")
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


async def _authorised(github: SlowCiGitHub, config: SlowCiConfig, login: str) -> bool:
    if login.casefold() in {a.casefold() for a in config.allow}:
        return True
    return at_least(await github.role(login), config.min_permission)


def _approved_key(repo: str, number: int, sha: str) -> str:
    """Recorded when a maintainer approves a head (a comment, the label, a button, an approved
    push): the label's later pushes chain back to one of these."""
    return f"slow_ci:approved:{repo}#{number}:{sha}"


async def _push_records(ctx: Context, number: int) -> list[deliveries_db.PushRecord]:
    repo = ctx.repo
    return await ctx.store.call(
        lambda conn: deliveries_db.push_records(conn, repo, number), single=True
    )


async def _comment_approval(
    github: SlowCiGitHub,
    ctx: Context,
    number: int,
    head_sha: str,
    commented_at: datetime,
    named_sha: str | None,
) -> Approval:
    """The comment's verdict from the bot's record of pushes, and from GitHub's test merge
    only when the record cannot tell (it costs two requests)."""
    pushes = await _push_records(ctx, number)
    decide = functools.partial(
        comment_approval, head_sha=head_sha, commented_at=commented_at, pushes=pushes
    )
    approval = decide(named_sha=named_sha)
    if approval.verdict == "unknown" and named_sha is None:
        approval = decide(merge=await github.test_merge(number))
    ctx.log.info(
        "run-slow on #%s at %s: %s, %s", number, head_sha[:12], approval.verdict, approval.reason
    )
    return approval


async def _push_approval(
    github: SlowCiGitHub, ctx: Context, config: SlowCiConfig, number: int, head_sha: str
) -> PushApproval:
    """Whether a push to a labelled PR runs: who pushed since the last head a maintainer
    approved (recorded approvals and the PR's runs), each of whom must be allowed to approve."""
    repo = ctx.repo
    pushes = await _push_records(ctx, number)
    shas = {sha for push in pushes for sha in (push.sha, push.before) if sha}
    keys = {_approved_key(repo, number, sha): sha for sha in shas}
    done = await ctx.store.call(lambda conn: effects_db.effects_done(conn, keys), single=True)
    runs = await ctx.services.jobs.runs_of(repo, number, kind=KIND)
    approved = {keys[key] for key in done} | {run.head_sha for run in runs}
    chain = pushes_since_approval(head_sha, pushes, approved)
    senders = list(dict.fromkeys(push.sender for push in chain or ()))
    allowed = await asyncio.gather(*(_authorised(github, config, login) for login in senders))
    return push_approval(chain, [login for login, ok in zip(senders, allowed, strict=True) if ok])


async def start_run(
    github: SlowCiGitHub,
    ctx: Context,
    config: SlowCiConfig,
    *,
    number: int,
    login: str,
    trigger: Trigger,
    approved_at: datetime | None,
    source: str,
    pinned_sha: str | None = None,
) -> str:
    """Checks who asked and for which commit, selects the folders, and queues the run.

    Returns what happened, for the delivery's record.
    """
    repo = ctx.repo
    reply_key = f"slow_ci:reply:{source}"
    comments_url = f"/repos/{repo}/issues/{number}/comments"
    # Independent reads go out together: a person is waiting for the reply.
    authorised, pull, files = await asyncio.gather(
        _authorised(github, config, login), github.pull(number), github.changed_files(number)
    )
    if not authorised:
        text = not_authorised_reply(login, config.allow, config.min_permission)
        return await github.reply(comments_url, reply_key, text)
    if pull.state != "open":
        return await github.reply(
            pull.comments_url, reply_key, "This pull request is closed: nothing runs."
        )
    sha = pinned_sha or pull.head_sha
    if sha != pull.head_sha:
        return await github.reply(pull.comments_url, reply_key, stale_comment_reply(pull.head_sha))
    if approved_at is not None:
        approval = await _comment_approval(github, ctx, number, sha, approved_at, trigger.sha)
        if approval.verdict == "stale":
            # What was approved is not what would run.
            return await github.reply(pull.comments_url, reply_key, stale_comment_reply(sha))
        if not approval.approved:
            text = cannot_tell_reply(sha, trigger, approval.reason)
            return await github.reply(pull.comments_url, reply_key, text)
    await ctx.mark_done(_approved_key(repo, number, sha), f"approved by {login}")
    added = models_added(files, config.models_dir)
    names = [] if trigger.failed_only else list(dict.fromkeys((*added, *trigger.names)))
    found = await asyncio.gather(*(_test_folder(github, name, sha) for name in names))

    failed_tests: dict[str, list[str]] = {}
    if trigger.failed_only:
        previous = await ctx.services.jobs.last_run(KIND, repo, number)
        if previous is None:
            text = "No earlier slow run of this pull request is recorded here: nothing to re-run."
            return await github.reply(pull.comments_url, reply_key, text)
        jobs, failed_tests, selection = _previous_failures(previous)
        if not jobs:
            text = "Nothing failed in this pull request's previous slow run: nothing to re-run."
            return await github.reply(pull.comments_url, reply_key, text)
    else:
        existing = {path for path in found if path}
        selection = select_folders(added, trigger.names, existing, at=sha[:12])
        if selection.empty:
            return await github.reply(
                pull.comments_url, reply_key, nothing_selectable_reply(selection).strip()
            )
        jobs = plan_jobs(selection, config.machine_types)

    jobs_system = ctx.services.jobs
    hint = (
        "this repository's `.github/bot.toml` does not choose that"
        ' (`[slow_ci] runner = "github-actions"`).'
    )
    if refusal := job_refusal(jobs_system, config.runner, hint):
        return await github.reply(pull.comments_url, reply_key, refusal)
    timeout = float(config.job_timeout_seconds)
    run_key = f"{repo}#{number}:{source}"
    run = await jobs_system.create_run(
        KIND,
        repo=repo,
        number=number,
        head_sha=sha,
        base_ref=pull.base_ref,
        requested_by=login,
        requested_at=(approved_at.timestamp() if approved_at else time.time()),
        key=run_key,
        supersede=True,
        spec={
            "installation_id": (ctx.event.data.get("installation") or {}).get("id"),
            # For the run pages: what is not known to be public is shown as private.
            "private": bool((ctx.event.data.get("repository") or {}).get("private", True)),
            "comments_url": pull.comments_url,
            "title": pull.title,
            "html_url": pull.html_url,
            "failed_only": trigger.failed_only,
            "selection": _selection_json(selection),
            "channel": config.channel,
            "request": {
                "head_clone_url": pull.head_clone_url or pull.base_clone_url,  # a deleted fork
                "head_ref": pull.head_ref,
                "base_clone_url": pull.base_clone_url,
                "timeout_s": timeout,
                "network": config.network,
                "limits": config.limits.as_json(),
                "extras": None if config.extras is None else list(config.extras),
                "options": _runner_options(ctx, config, pull.base_ref, run_key),
            },
        },
        jobs=[
            (
                job.name,
                {
                    "runner": config.runner,
                    "folder": job.folder,
                    "machine_type": job.machine_type,
                    "tests": failed_tests.get(job.name, []),
                },
            )
            for job in jobs
        ],
    )
    ctx.log.info("run-slow on #%s: run %s, %d jobs at %s", number, run.id, len(jobs), sha[:12])
    return f"run {run.id}: {len(jobs)} jobs at {sha}"


def _runner_options(
    ctx: Context, config: SlowCiConfig, base_ref: str | None, run_key: str
) -> dict[str, Any]:
    """What the Actions runner needs besides the job: the workflow, on the default branch (the
    reviewed one, never the PR's), the labels per machine type, and the run's stable key."""
    if config.runner != "github-actions":
        return {}
    repository = ctx.event.data.get("repository") or {}
    return {
        "workflow": config.workflow,
        "ref": repository.get("default_branch") or base_ref or "main",
        "labels": {**DEFAULT_RUNNER_LABELS, **config.runner_labels},
        "run_key": run_key,
    }


async def _test_folder(github: SlowCiGitHub, name: str, sha: str) -> str | None:
    """The name's test folder at `sha`, in the planner's order of preference; None if none."""
    if check_name(name) is not None:
        return None  # never ask GitHub about a path made of an invalid name
    for path in (f"tests/models/{name}", f"tests/quantization/{name}", f"tests/{name}"):
        if await github.is_folder(path, sha):
            return path
    return None


def _previous_failures(
    last: tuple[RunRecord, list[JobRecord]],
) -> tuple[tuple[JobSpec, ...], dict[str, list[str]], Selection]:
    run, jobs = last
    failed = [job for job in jobs if job.done and not job.ok]
    specs = tuple(JobSpec(job.spec["folder"], job.spec["machine_type"]) for job in failed)
    tests = {job.name: list(job.failed_tests) for job in failed}
    return specs, tests, _selection_from(run.spec.get("selection") or {})


def _selection_json(selection: Selection) -> dict[str, Any]:
    return {
        "folders": [
            {"name": f.name, "folder": f.folder, "kind": f.kind, "reason": f.reason}
            for f in selection.folders
        ],
        "dropped": [{"name": d.name, "reason": d.reason} for d in selection.dropped],
    }


def _selection_from(data: dict[str, Any]) -> Selection:
    return Selection(
        tuple(SelectedFolder(**f) for f in data.get("folders", ())),
        tuple(DroppedName(**d) for d in data.get("dropped", ())),
    )


# ---------------------------------------------------------------------- reporting


def run_url(services: Services, run_id: int) -> str:
    base = services.settings.public_url
    return f"{base}/runs/{run_id}" if base else f"/runs/{run_id}"


def _result(job: JobRecord) -> JobResult:
    state = job.state if job.state != "running" else "running"
    return JobResult(
        JobSpec(job.spec["folder"], job.spec["machine_type"]),
        state=state,
        passed=job.passed,
        failed=job.failed,
        skipped=job.skipped,
        errors=job.errors,
        duration=job.duration_s or 0.0,
        failures=tuple(Failure(f.test, f.message) for f in job.failures),
        reason=job.reason or "",
    )


async def report_run(services: Services, run: RunRecord, jobs: list[JobRecord]) -> None:
    """Renders the run's comment and commit status from its rows; safe to call any time."""
    gh = await services.github.for_installation(run.spec.get("installation_id"))
    github = SlowCiGitHub(gh, run.repo)
    results = [_result(job) for job in jobs]
    specs = [result.job for result in results]
    selection = _selection_from(run.spec.get("selection") or {})
    key = f"slow_ci:run:{run.id}"
    url = run_url(services, run.id)
    phase, error = _phase(run, jobs)
    position = estimate_s = None
    if phase == "queued":
        position = await services.jobs.queue_position(run.id)
        past = await services.jobs.past_durations(KIND, [job.name for job in jobs])
        estimate_s = estimate(_by_folder(jobs, past), specs)
    body = render_comment(
        marker=marker(key),
        selection=selection,
        run_url=url,
        phase=phase,
        jobs=specs,
        results=results,
        sha=run.head_sha,
        failed_only=bool(run.spec.get("failed_only")),
        queue_position=position,
        estimate_seconds=estimate_s,
        superseded_by=run_url(services, run.superseded_by) if run.superseded_by else None,
        error=error,
    )
    status = _set_status(services, github, run, jobs, results, phase, error, url)
    check = plan_check_run(
        phase=phase,
        selection=selection,
        run_url=url,
        jobs=specs,
        results=results,
        tests=await _failing_tests(services, jobs) if phase == "finished" else None,
        sha=run.head_sha,
        failed_only=bool(run.spec.get("failed_only")),
        queue_position=position,
        superseded_by=run_url(services, run.superseded_by) if run.superseded_by else None,
        error=error,
    )
    comment_id = run.spec.get("comment_id")
    if comment_id is None:
        comment = github.upsert_comment(run.spec["comments_url"], key, body)
    else:
        comment = github.edit_comment(comment_id, body)
    # Each effect goes out whatever the others meet; then the first failure fails the report,
    # which the job system retries with the rows of then (each effect is idempotent).
    outcomes = await asyncio.gather(
        comment, status, _report_check(services, github, run, check, url), return_exceptions=True
    )
    if comment_id is None and not isinstance(outcomes[0], BaseException):
        await services.jobs.update_spec(run.id, {"comment_id": outcomes[0]})
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    if not run.active and phase == "finished" and run.spec.get("channel"):
        message = slack_summary(
            repo=run.repo,
            number=run.number or 0,
            title=run.spec.get("title", ""),
            pull_url=run.spec.get("html_url", ""),
            run_url=url,
            results=results,
            sha=run.head_sha,
        )
        await services.outbox.queue_slack(
            f"slow_ci:slack:{run.id}", {**message, "channel": run.spec["channel"]}
        )


async def _failing_tests(
    services: Services, jobs: list[JobRecord]
) -> dict[JobSpec, list[TestResult]]:
    """Per-test results of the jobs with failing tests: where the annotations point."""
    wanted = [job for job in jobs if job.done and (job.failed or job.errors)]
    found = await asyncio.gather(*(services.jobs.job_tests(job.id) for job in wanted))
    return {
        JobSpec(job.spec["folder"], job.spec["machine_type"]): tests
        for job, tests in zip(wanted, found, strict=True)
    }


def _checks_refused(exc: gidgethub.HTTPException) -> bool:
    """GitHub will not take check runs from this credential (a personal token: 403; no access:
    404), as opposed to a rate limit's 403, which passes."""
    if int(exc.status_code) not in (403, 404) or isinstance(exc, gidgethub.RateLimitExceeded):
        return False
    headers = {k.lower(): v for k, v in (getattr(exc, "headers", None) or {}).items()}
    return "retry-after" not in headers


async def _report_check(
    services: Services, github: SlowCiGitHub, run: RunRecord, plan: CheckRunPlan, url: str
) -> None:
    """Creates the run's check run or brings it up to date, annotations in batches.

    The spec is read again: an earlier report of this run may have created the check run after
    these rows were read. How many annotations went is kept in the spec, since GitHub adds each
    request's annotations to the ones before, so a retried report sends only the rest.
    """
    fresh = await services.jobs.get_run(run.id)
    spec = (fresh or run).spec
    check_run_id = spec.get("check_run_id")
    if check_run_id == NO_CHECK_RUN:
        return
    sent = int(spec.get("check_annotations_sent") or 0)
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
            await services.jobs.update_spec(run.id, {"check_run_id": check_run_id})
        else:
            if spec.get("check_run_id") is None:
                await services.jobs.update_spec(run.id, {"check_run_id": check_run_id})
            await github.update_check_run(check_run_id, plan.body(first))
        sent += len(first)
        if first:
            await services.jobs.update_spec(run.id, {"check_annotations_sent": sent})
        for batch in batches:
            await github.update_check_run(check_run_id, {"output": plan.output(batch)})
            sent += len(batch)
            await services.jobs.update_spec(run.id, {"check_annotations_sent": sent})
    except gidgethub.HTTPException as exc:
        if not _checks_refused(exc):
            raise
        log.warning(
            "GitHub refused the check run of run %s (%s %s); the run is reported without one"
            " (check runs need a GitHub App installation token with checks: write)",
            run.id,
            int(exc.status_code),
            exc,
        )
        await services.jobs.update_spec(run.id, {"check_run_id": NO_CHECK_RUN})


#: How the runner says the approved commit is no longer the PR's head: nothing was tested.
HEAD_MOVED = "head moved"


def _phase(run: RunRecord, jobs: list[JobRecord]) -> tuple[Any, str | None]:
    if run.state == "error":
        return "error", run.reason or "the run could not start"
    moved = next((j.reason for j in jobs if (j.reason or "").startswith(HEAD_MOVED)), None)
    if moved and run.state != "cancelled":
        return "error", moved
    if run.state == "cancelled":
        if run.superseded_by:
            return "superseded", None
        return "error", run.reason or "cancelled"
    if run.state == "finished":
        return "finished", None
    if any(job.state != "queued" for job in jobs):
        return "running", None
    return "queued", None


def _by_folder(jobs: list[JobRecord], past: dict[str, list[float]]) -> dict[str, list[float]]:
    return {job.spec["folder"]: past.get(job.name, []) for job in jobs}


async def _set_status(
    services: Services,
    github: SlowCiGitHub,
    run: RunRecord,
    jobs: list[JobRecord],
    results: list[JobResult],
    phase: str,
    error: str | None,
    url: str,
) -> None:
    if phase in ("queued", "running"):
        await github.set_status(run.head_sha, "pending", PENDING_DESCRIPTION, url)
    elif phase == "finished":
        state = overall_state(results)
        await github.set_status(run.head_sha, state, status_description(results), url)
    elif phase == "error":
        await github.set_status(run.head_sha, "error", error_description(error or ""), url)
    elif phase == "superseded" and run.superseded_by is not None:
        # On the same head the newer run's status replaces this one; on an older head nothing
        # would, so it ends rather than staying pending.
        newer = await services.jobs.get_run(run.superseded_by)
        if newer is None or newer.head_sha != run.head_sha:
            await github.set_status(run.head_sha, "error", "Superseded by a newer run-slow", url)


def register_jobs(jobs: JobSystem, services: Services) -> None:
    """How the job system reports this feature's runs, and where their fetch token comes from."""

    async def reporter(run: RunRecord, rows: list[JobRecord]) -> None:
        await report_run(services, run, rows)

    async def token(run: RunRecord) -> str | None:
        return await services.github.fetch_token(run.spec.get("installation_id"))

    jobs.register(KIND, reporter, token_provider=token)
