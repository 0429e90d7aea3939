"""A finished scheduled run's report: the facts gathered into one `ScheduledReport`, sent once.

The summary goes to the schedule's channel; each model with failures gets a threaded reply under
it; the new failures, by breaking commit, are a message of their own. Every message goes through
the outbox under a key of the run, so a step taken twice sends nothing twice, and Slack being
down only delays them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from bot.kit.comments import post_once
from bot.kit.context import JobRecord, RunRecord, Services
from bot.kit.markdown import code_span, short_sha
from handlers.scheduled_ci.client import CommitPull
from handlers.scheduled_ci.config import Schedule
from handlers.scheduled_ci.plan import (
    BreakingCommit,
    FailingTest,
    ModelFailures,
    ResultRow,
    ScheduledReport,
    Unresolved,
)
from handlers.scheduled_ci.render import model_replies, new_failures_message, summary_message


def build_report(
    schedule: Schedule,
    run: RunRecord,
    rows: Sequence[JobRecord],
    tests: Mapping[str, Mapping[str, Any]],
    failing: Mapping[str, Sequence[FailingTest]],
    head: CommitPull,
    culprits: Mapping[str, CommitPull],
    run_url: str,
) -> ScheduledReport:
    """Pure: the report of a run from its jobs, the analysis's tests (node id -> status, verdict,
    first_bad, reason), its failing tests per model folder and the commits' pull requests."""
    machines: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    models: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        counts = (row.passed, row.failed, row.errors, row.skipped)
        for table, name in (
            (machines, str(row.spec.get("machine_type", ""))),
            (models, str(row.spec.get("folder", ""))),
        ):
            table[name] = [a + b for a, b in zip(table[name], counts, strict=True)]

    def table(found: Mapping[str, list[int]]) -> tuple[ResultRow, ...]:
        made = [ResultRow(name, *counts) for name, counts in found.items()]
        return tuple(sorted(made, key=lambda r: (-r.failures, r.name)))

    broken: dict[str, list[str]] = defaultdict(list)
    unresolved, flaky, pre_existing = [], [], []
    for test, info in sorted(tests.items()):
        if info.get("status") != "new":
            continue
        verdict = info.get("verdict")
        if verdict == "flaky":
            flaky.append(test)
        elif verdict == "pre-existing":
            pre_existing.append(test)
        elif info.get("first_bad"):
            broken[str(info["first_bad"])].append(test)
        else:
            reason = info.get("reason") or "not bisected"
            unresolved.append(Unresolved(test, str(reason)))
    new_failures = tuple(
        BreakingCommit(
            sha=sha,
            url=(culprits[sha].url if sha in culprits else ""),
            tests=tuple(found),
            pr_number=culprits[sha].number if sha in culprits else None,
            pr_url=culprits[sha].pull_url if sha in culprits else "",
            pr_title=culprits[sha].title if sha in culprits else "",
            author=culprits[sha].author if sha in culprits else "",
            merger=culprits[sha].merged_by if sha in culprits else "",
        )
        for sha, found in sorted(broken.items())
    )
    started = run.started_at or run.created_at
    ended = run.finished_at or started
    total = sum(r.passed + r.failed + r.errors + r.skipped for r in rows)
    return ScheduledReport(
        schedule=schedule.name,
        repo=run.repo,
        sha=run.head_sha,
        commit_url=head.url,
        run_url=run_url,
        total_tests=total,
        failures=sum(r.failed + r.errors for r in rows),
        duration_s=max(0.0, ended - started),
        by_machine=table(machines),
        by_model=table(models),
        failing=tuple(
            ModelFailures(folder, tuple(found)) for folder, found in sorted(failing.items())
        ),
        pr_number=head.number,
        pr_url=head.pull_url,
        author=head.author,
        new_failures=new_failures,
        unresolved=tuple(unresolved),
        flaky=tuple(flaky),
        pre_existing=tuple(pre_existing),
    )


async def send_report(
    services: Services,
    schedule: Schedule,
    run: RunRecord,
    rows: Sequence[JobRecord],
    tests: Mapping[str, Mapping[str, Any]],
    head: CommitPull,
    culprits: Mapping[str, CommitPull],
) -> ScheduledReport:
    failing: dict[str, list[FailingTest]] = defaultdict(list)
    for row in rows:
        folder, machine = str(row.spec.get("folder", "")), str(row.spec.get("machine_type", ""))
        for result in await services.jobs.job_tests(row.id):
            if result.outcome in ("failed", "error"):
                failing[folder].append(FailingTest(result.node_id, result.headline, machine))
    report = build_report(
        schedule,
        run,
        rows,
        tests,
        failing,
        head,
        culprits,
        services.page_url(f"/runs/{run.id}"),
    )
    if not schedule.channel:
        return report
    channel = {"channel": schedule.channel}
    summary_key = f"scheduled_ci:{run.id}:summary"
    await services.outbox.queue_slack(summary_key, {**summary_message(report), **channel})
    for number, reply in enumerate(model_replies(report)):
        await services.outbox.queue_slack(
            f"scheduled_ci:{run.id}:model:{number}", {**reply, **channel}, thread_of=summary_key
        )
    news = new_failures_message(report, schedule.mentions)
    if news is not None:
        await services.outbox.queue_slack(f"scheduled_ci:{run.id}:new", {**news, **channel})
    return report


def breaking_comment(schedule: str, commit: BreakingCommit, run_url: str) -> str:
    """What the breaking pull request is told: which tests its merge broke, and where the
    evidence is. Test names come from a report the tests wrote: each is a code span."""
    shown = commit.tests[:MAX_NAMED_TESTS]
    lines = [
        f"The scheduled run **{schedule}** found that {len(commit.tests)} test"
        f"{'' if len(commit.tests) == 1 else 's'} first fail at this pull request's merge"
        f" ({short_sha(commit.sha)}):",
        "",
        *(f"- {code_span(test)}" for test in shown),
    ]
    if len(commit.tests) > len(shown):
        lines.append(f"- … and {len(commit.tests) - len(shown)} more")
    lines += ["", f"The re-runs and each commit the bisect tested: {run_url}"]
    return "\n".join(lines)


#: Tests named in a breaking pull request's comment; the run page lists them all.
MAX_NAMED_TESTS = 20


async def notify_pulls(services: Services, gh: Any, report: ScheduledReport, run_id: int) -> int:
    """One comment on each breaking pull request (`notify_pr = true`), once per run and pull
    request even when the report step is taken twice; returns how many were posted."""
    posted = 0
    for commit in report.new_failures:
        if commit.pr_number is None:
            continue
        url = f"/repos/{report.repo}/issues/{commit.pr_number}/comments"
        key = f"scheduled_ci:{run_id}:pr:{commit.pr_number}"
        body = breaking_comment(report.schedule, commit, report.run_url)
        posted += await post_once(gh, url, key, body)
    return posted
