"""Benchmarks of the default branch: every push runs the repository's benchmark command on its new
head, records every repeat, compares it with the previous push, and tells Slack of a regression.

A push to the default branch of a repository whose `[benchmarks] command` is set becomes one run
on the job system (one job per machine type), keyed by the delivery so a delivery handled twice
starts one run. The runner (the local one, confined; or the repository's GitHub Actions
runners, through `benchmarks.yml`) runs the command `repeats` times and hands back each repeat's
metrics file as text; it knows no format. When the run ends, its reporter reads the
files with `read_metrics` (the runner already refused, with the job's error, a file that
`read_metrics` refuses), records them, compares each machine type with the newest earlier push
that recorded anything, and queues one Slack message for the run when a metric got slower. The
reporter is called again for a run whose report was lost with the process; everything it does is
keyed by the run (rows replaced, the message queued once), so doing it twice does it once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI
from bot.clients.slack import escape_mrkdwn
from bot.config import RepoConfig
from bot.jobs.runners.base import BenchmarkRequest, TokenProvider
from bot.jobs.system import build_request
from bot.kit.context import Context, JobRecord, RunRecord, Services
from bot.kit.conversation import job_refusal
from bot.kit.help import Help
from bot.kit.markdown import one_line
from bot.kit.records import BenchmarkResult
from handlers.benchmarks.compare import Comparison, Series, compare
from handlers.benchmarks.config import BenchmarksConfig
from handlers.benchmarks.metrics import read_metrics
from handlers.benchmarks.pulls import LABEL, report_lock, report_pull
from handlers.benchmarks.render import text_table
from handlers.benchmarks.series import measured_series
from handlers.benchmarks.start import KIND, Side, job_rows, request_spec, runner_refusal
from handlers.new_model.plan import is_default_branch_push
from handlers.scheduled_ci.client import CommitPull, ScheduledCiGitHub

log = logging.getLogger(__name__)

#: Slack's limit for one section's text; the table of regressions is cut to fit it.
MAX_SECTION_CHARS = 3000

router = Router()

HELP = Help(
    name="benchmarks",
    summary=(
        "Measures the repository's benchmark command (`[benchmarks]` in `.github/bot.toml`) on"
        " the pull request's head and base, with one comment and a `benchmarks` check run that"
        " compare every metric; pushes to the default branch are measured too."
    ),
    trigger=f"the `{LABEL}` label (later pushes are measured while it stays)",
    who="maintainers: the same people who may run slow tests",
    commands=(),
)


# ---------------------------------------------------------------------- the push


@router.register("push")
async def on_push(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    await benchmark_push(event.data, ctx)


async def benchmark_push(payload: Mapping[str, Any], ctx: Context) -> RunRecord | None:
    """Starts the benchmark run of a push to the default branch; None when there is none to
    start (another branch, no command, no runner that can take it), with the reason in the log."""
    if not is_default_branch_push(payload):
        return None
    config = await ctx.repo_config()
    bench: BenchmarksConfig = config.benchmarks
    if not bench.command:
        return None
    slow = config.slow_ci
    refusal = runner_refusal(slow) or job_refusal(
        ctx.services.jobs, slow.runner, "the [slow_ci] runner setting"
    )
    if refusal is not None:
        ctx.log.warning("benchmarks of %s not run: %s", ctx.repo, refusal)
        return None
    repository = payload["repository"]
    installation = payload.get("installation")
    return await start_branch_run(
        ctx.services,
        repo=ctx.repo,
        sha=str(payload["after"]),
        branch=ctx.default_branch,
        clone_url=repository["clone_url"],
        private=repository.get("private") is not False,
        installation_id=installation.get("id") if isinstance(installation, dict) else None,
        config=config,
        trigger="push",
        key=f"{KIND}:push:{ctx.delivery_id}",
        requested_by=(payload.get("sender") or {}).get("login"),
    )


async def start_branch_run(
    services: Services,
    *,
    repo: str,
    sha: str,
    branch: str,
    clone_url: str,
    private: bool,
    installation_id: int | None,
    config: RepoConfig,
    trigger: str,
    key: str,
    requested_by: str | None = None,
    requested_at: float | None = None,
    channel: str = "",
) -> RunRecord:
    """The benchmark run of a commit of a branch (a push, a schedule): one job per machine type,
    keyed so that the same push or fire starts one run however often it is handled; compared,
    once it ends, with the branch's previous result."""
    bench: BenchmarksConfig = config.benchmarks
    slow = config.slow_ci
    head = Side("head", sha, clone_url)
    run = await services.jobs.create_run(
        KIND,
        repo=repo,
        number=None,
        head_sha=sha,
        private=private,
        runner=slow.runner,
        jobs=job_rows([head], bench.machine_types),
        requested_by=requested_by,
        requested_at=requested_at,
        key=key,
        spec={
            "trigger": trigger,
            "branch": branch,
            "installation_id": installation_id,
            "threshold": bench.threshold,
            "channel": bench.channel or channel,
            "request": request_spec(bench, slow, default_branch=branch, run_key=key),
        },
    )
    log.info(
        "benchmark run %s of %s at %s (%s): %s",
        run.id,
        repo,
        sha[:12],
        trigger,
        ", ".join(bench.machine_types),
    )
    return run


def benchmark_request(
    run: RunRecord, job: JobRecord, token: TokenProvider | None
) -> BenchmarkRequest:
    """The job system's request builder for benchmark runs: the run's spec, and this feature's
    reader as the judge of each metrics file, so a file in no known format ends the job in
    `error` with what is wrong."""
    request = build_request(run, job, token, shape=BenchmarkRequest)
    return dataclasses.replace(request, check_metrics=read_metrics)


# ---------------------------------------------------------------------- the report


@dataclasses.dataclass(frozen=True)
class Regressions:
    """One machine type's metrics that got slower than the previous push's."""

    machine_type: str
    previous_sha: str
    rows: tuple[Comparison, ...]


async def report_benchmarks(services: Services, run: RunRecord, rows: list[JobRecord]) -> None:
    """Once the run has ended: records what each job measured, compares it with the previous
    push on the branch, and queues the Slack message of the regressions."""
    if run.active:
        return
    if run.state != "finished":
        log.info("benchmark run %s ended %s: %s; nothing recorded", run.id, run.state, run.reason)
        return
    branch = str(run.spec.get("branch") or "main")
    threshold = float(run.spec.get("threshold", 0.05))
    results: list[BenchmarkResult] = []
    regressions: list[Regressions] = []
    broken: list[tuple[str, str]] = []
    for job in rows:
        measured = measured_series(job)
        machine = str(job.spec.get("machine_type", ""))
        if isinstance(measured, str):
            log.warning("benchmark run %s, %s: %s; nothing recorded", run.id, job.name, measured)
            broken.append((machine, measured))
            continue
        previous = await services.records.previous_benchmarks(run.repo, branch, machine, run.id)
        base = {r.metric: Series(r.unit, r.values) for r in previous}
        rows_compared = compare(base, measured, threshold) if previous else []
        slower = tuple(row for row in rows_compared if row.regressed)
        if slower:
            regressions.append(Regressions(machine, previous[0].sha, slower))
        regressed = {row.metric for row in slower}
        results += [
            BenchmarkResult(
                repo=run.repo,
                sha=run.head_sha,
                branch=branch,
                machine_type=machine,
                metric=metric,
                unit=series.unit,
                values=series.values,
                run_id=run.id,
                pull_number=None,
                regression=metric in regressed,
            )
            for metric, series in measured.items()
        ]
    if results:
        await services.records.record_benchmarks(results)
    log.info(
        "benchmark run %s of %s at %s: %s results recorded, %s machine type(s) regressed",
        run.id,
        run.repo,
        run.head_sha[:12],
        len(results),
        len(regressions),
    )
    channel = str(run.spec.get("channel") or "")
    if not (regressions or broken) or not channel:
        return
    gh = await services.github.for_installation(run.spec.get("installation_id"))
    commit = await ScheduledCiGitHub(gh, run.repo).commit_pull(run.head_sha)
    run_url = services.page_url(f"/runs/{run.id}")
    if regressions:
        message = regression_message(run.repo, branch, commit, regressions, run_url)
        await services.outbox.queue_slack(
            f"{KIND}:{run.id}:regression", {**message, "channel": channel}
        )
    if broken:
        message = broken_message(run.repo, branch, commit, broken, run_url)
        await services.outbox.queue_slack(
            f"{KIND}:{run.id}:broken", {**message, "channel": channel}
        )


def regression_message(
    repo: str,
    branch: str,
    commit: CommitPull,
    regressions: Sequence[Regressions],
    run_url: str,
) -> dict[str, Any]:
    """Pure: the Slack message of a push's regressions: the commit, its pull request and author,
    and per machine type the table of the metrics that got slower. Metric names come from the
    benchmarked code, so every value is escaped and tables sit in code blocks."""
    count = sum(len(r.rows) for r in regressions)
    what = f"{count} metric{'s' if count != 1 else ''} slower"
    blocks: list[dict[str, Any]] = [
        _section(
            f":warning: *Benchmark regression on {escape_mrkdwn(repo)}*"
            f" ({escape_mrkdwn(branch)}): {what}"
        ),
        _section(_where(commit)),
    ]
    for found in regressions[:20]:
        machine = escape_mrkdwn(found.machine_type or "default")
        title = f"*{machine}*, against `{found.previous_sha[:12]}`"
        blocks.append(_section(title + "\n" + _table(found.rows, run_url)))
    if run_url.startswith(("http://", "https://")):
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open the run"}}
        blocks.append({"type": "actions", "elements": [{**button, "url": run_url}]})
    pull = f" (#{commit.number} by {commit.author})" if commit.number is not None else ""
    text = f"Benchmark regression on {repo}: {what} at {commit.sha[:12]}{pull}"
    return {"text": escape_mrkdwn(text), "blocks": blocks}


def broken_message(
    repo: str,
    branch: str,
    commit: CommitPull,
    broken: Sequence[tuple[str, str]],
    run_url: str,
) -> dict[str, Any]:
    """Pure: the Slack message of a branch's benchmark that could not be measured (the command
    failed, or wrote what no reader takes): a merge that broke the benchmark is a regression of
    its own, which a chart with a missing point would hide. The reasons quote the benchmarked
    code's output, so they sit escaped in code blocks."""
    blocks: list[dict[str, Any]] = [
        _section(
            f":x: *Benchmark of {escape_mrkdwn(repo)} ({escape_mrkdwn(branch)}) could not be"
            " measured*"
        ),
        _section(_where(commit)),
    ]
    for machine, reason in broken[:20]:
        lines = "\n".join(reason.replace("`", "'").splitlines()[:12])
        blocks.append(
            _section(f"*{escape_mrkdwn(machine or 'default')}*\n```\n{escape_mrkdwn(lines)}\n```")
        )
    if run_url.startswith(("http://", "https://")):
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open the run"}}
        blocks.append({"type": "actions", "elements": [{**button, "url": run_url}]})
    pull = f" (#{commit.number} by {commit.author})" if commit.number is not None else ""
    text = f"Benchmark of {repo} could not be measured at {commit.sha[:12]}{pull}"
    return {"text": escape_mrkdwn(text), "blocks": blocks}


def _where(commit: CommitPull) -> str:
    """The commit, linked, with its pull request and author: what a reader acts on."""
    where = _link(commit.url, f"`{commit.sha[:12]}`")
    if commit.number is not None:
        where += " · " + _link(commit.pull_url, f"#{commit.number}")
        if commit.title:
            where += f" {escape_mrkdwn(one_line(commit.title, 120))}"
    if commit.author:
        where += f" by {escape_mrkdwn(one_line(commit.author, 60))}"
    return where


def _table(rows: Sequence[Comparison], more_url: str) -> str:
    """The comparison's text table in a code block, cut to one section's length."""
    lines = text_table(rows).replace("`", "'").splitlines()
    kept: list[str] = []
    used = 200  # the fences and the line saying what was left out
    for line in lines:
        escaped = escape_mrkdwn(line)
        if used + len(escaped) + 1 > MAX_SECTION_CHARS - 200:
            break
        kept.append(escaped)
        used += len(escaped) + 1
    body = "```\n" + "\n".join(kept) + "\n```"
    left = len(lines) - len(kept)
    if left:
        body += f"\n… {_link(more_url, f'{left} more')}"
    return body


def _link(url: str, label: str) -> str:
    if not url.startswith(("http://", "https://")) or any(c in url for c in " <>|"):
        return label
    return f"<{url.replace('&', '&amp;')}|{label}>"


def _section(text: str) -> dict[str, Any]:
    if len(text) > MAX_SECTION_CHARS:
        text = text[: MAX_SECTION_CHARS - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# ---------------------------------------------------------------------- wiring


def register_jobs(jobs: Any, services: Services) -> None:
    """Benchmark runs of a branch report to `report_benchmarks`, a pull request's to
    `report_pull`; their fetch token is the installation's,
    as `run-slow`'s, and their jobs are `BenchmarkRequest`s."""

    async def token(run: RunRecord) -> str | None:
        return await services.github.fetch_token(run.spec.get("installation_id"))

    async def reporter(run: RunRecord, rows: list[JobRecord]) -> None:
        if run.number is None:
            await report_benchmarks(services, run, rows)
            return
        async with report_lock(run.id):
            await report_pull(services, run, rows)

    jobs.register(KIND, reporter, token_provider=token, build_request=benchmark_request)
