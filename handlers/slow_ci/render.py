"""What a `run-slow` says, in Markdown and in Slack's mrkdwn: its comment, its commit status, the
result table its comment and check run share, its Slack summary, and every reply.

Pure functions of `plan.py`'s data. Everything that came from a person or a test (names, test
ids, messages, reasons) is quoted so that it stays text: as code where it is an identifier, as
escaped text where it is prose, inside one code block where it is a list of failures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.clients.slack import escape_mrkdwn
from bot.kit.markdown import (
    clip,
    code_fence,
    code_span,
    escape_text,
    format_duration,
    link_destination,
    one_line,
    short_sha,
    table_cell,
)
from handlers.slow_ci.plan import (
    FAILED_FLAG,
    MAX_FOLDERS,
    MIN_SHA_LENGTH,
    SHA_FLAG,
    SHOWN_NAME_LIMIT,
    DroppedName,
    JobResult,
    JobSpec,
    Phase,
    Reminder,
    Selection,
    Trigger,
    check_name,
    overall_state,
    result_rows,
)
from handlers.slow_ci.verdicts import DONE, LABELS, MAX_CHECKED, Verification

__all__ = [
    "FAILURE_LINE_LIMIT",
    "MAX_DROPPED_SHOWN",
    "MAX_FAILURES_SHOWN",
    "PENDING_DESCRIPTION",
    "RUN_STARTED_SENTENCE",
    "STATE_LABEL",
    "approval_line",
    "cannot_tell_reply",
    "dropped_lines",
    "error_description",
    "failure_lines",
    "folder_list",
    "job_tally",
    "not_authorised_reply",
    "nothing_selectable_reply",
    "phase_line",
    "reminder_comment",
    "render_comment",
    "result_table",
    "scope_line",
    "selection_lines",
    "slack_summary",
    "stale_comment_reply",
    "status_description",
    "unapproved_push_reply",
    "untraced_push_reply",
    "verification_lines",
    "verification_title",
]

#: The commit status's description while the run is pending, and the start of every other.
PENDING_DESCRIPTION = "Slow CI job"
#: GitHub refuses a commit status description longer than this.
STATUS_DESCRIPTION_LIMIT = 140
RUN_STARTED_SENTENCE = "This comment contains run-slow, running the specified jobs:"
MAX_FAILURES_SHOWN = 10
FAILURE_LINE_LIMIT = 200
MAX_DROPPED_SHOWN = 20
#: The order a tally of jobs names their results in.
_STATE_ORDER = ("passed", "failed", "error", "timed_out", "cancelled", "skipped")
#: A job state as the comment's and the check run's tables show it.
STATE_LABEL = {
    "queued": "⏳ queued",
    "running": "🔄 running",
    "passed": "✅ passed",
    "failed": "❌ failed",
    "error": "⚠️ error",
    "skipped": "⏭️ skipped",
    "cancelled": "🚫 cancelled",
    "timed_out": "⏱️ timed out",
}

CLOSED_REPLY = "This pull request is closed: nothing runs."
NO_PREVIOUS_RUN_REPLY = (
    "No earlier slow run of this pull request is recorded here: nothing to re-run."
)
NOTHING_FAILED_REPLY = "Nothing failed in this pull request's previous slow run: nothing to re-run."


# --------------------------------------------------------------------------- the commit status


def status_description(results: Sequence[JobResult]) -> str:
    """The commit status description: SPEC's `Slow CI job`, then job counts by result."""
    if overall_state(results) == "pending":
        return PENDING_DESCRIPTION
    return clip(f"{PENDING_DESCRIPTION}: {job_tally(results)}", STATUS_DESCRIPTION_LIMIT)


def error_description(reason: str) -> str:
    """The description of an `error` status, when the run could not start."""
    return clip(
        f"{PENDING_DESCRIPTION}: could not run: {one_line(reason)}", STATUS_DESCRIPTION_LIMIT
    )


def job_tally(results: Sequence[JobResult]) -> str:
    """Jobs per result, `4 passed, 1 failed`: the jobs, not the tests, as the table's rows."""
    counts = {state: sum(r.state == state for r in results) for state in _STATE_ORDER}
    parts = [f"{n} {state.replace('_', ' ')}" for state, n in counts.items() if n]
    return ", ".join(parts) if parts else "no jobs"


# --------------------------------------------------------------------------- the run's comment


def render_comment(
    *,
    marker: str,
    selection: Selection,
    run_url: str,
    phase: Phase,
    jobs: Sequence[JobSpec] = (),
    results: Sequence[JobResult] = (),
    sha: str | None = None,
    failed_only: bool = False,
    queue_position: int | None = None,
    estimate_seconds: float | None = None,
    superseded_by: str | None = None,
    error: str | None = None,
    verification: Verification | None = None,
    check_urls: Mapping[int, str] | None = None,
) -> str:
    """The one comment of a run, whole, for its current phase; edited in place as it moves.

    It always starts with ``marker`` (so the bot finds it again after a crash) and the
    reference's sentence, and always lists the dropped names. ``results`` win over ``jobs``
    for the table: a job with no result yet shows as queued. Everything that came from a
    person or a test (names, test ids, messages) is shown as code, so `<script>`, `|`,
    backticks and `@mentions` stay inert text. A finished run's ``verification`` (its failures
    being checked, or checked) follows its failures, its check runs linked from ``check_urls``.
    """
    if phase == "error" and not error:
        raise ValueError("an error comment needs the reason")
    out = [_with_marker(marker, RUN_STARTED_SENTENCE), "", *selection_lines(selection), ""]
    out += [scope_line(sha, failed_only, run_url), ""]
    out += [phase_line(phase, results, queue_position, estimate_seconds, superseded_by, error)]
    table_rows = result_rows(jobs, results)
    if table_rows and phase != "error":
        out += ["", *result_table(table_rows)]
    if phase in ("finished", "superseded"):
        out += failure_lines(table_rows)
    if phase == "finished" and verification is not None:
        out += ["", *verification_lines(verification, check_urls or {})]
    out += dropped_lines(selection.dropped)
    return "\n".join(out).rstrip() + "\n"


def selection_lines(selection: Selection) -> list[str]:
    """The folders a run tests, by kind, as a list; shared by the comment and the check run."""
    out = [f"- models: {folder_list(selection.models)}"]
    out.append(f"- quantizations: {folder_list(selection.quantizations)}")
    if selection.suites:
        out.append(f"- other test folders: {folder_list(selection.suites)}")
    return out


def scope_line(sha: str | None, failed_only: bool, run_url: str) -> str:
    """Which commit, which jobs, and where the logs are; shared by the comment and the check."""
    where = f"on `{short_sha(sha)}`" if sha else "on the approved commit"
    scope = "; only the jobs that failed in the previous run" if failed_only else ""
    page = link_destination(run_url)
    return f"Slow tests {where}{scope}. Logs and reports: [the run's page]({page})."


def phase_line(
    phase: Phase,
    results: Sequence[JobResult],
    queue_position: int | None,
    estimate_seconds: float | None,
    superseded_by: str | None,
    error: str | None,
) -> str:
    """The one line that says where the run stands, shared by the comment and the check run."""
    took = ""
    if estimate_seconds:
        took = f" Past runs of these folders took {_about(estimate_seconds)}."
    if phase == "started":
        return f"**Starting.**{took}"
    if phase == "queued":
        position = f", position {queue_position}" if queue_position else ""
        return f"**Queued**{position}: the jobs start when the runs before them end.{took}"
    if phase == "running":
        done = sum(r.done for r in results)
        return f"**Running**: {done} of {len(results)} jobs done."
    if phase == "finished":
        state = overall_state(results)
        word = {"success": "passed", "failure": "failed", "pending": "ended"}[state]
        return f"**Finished, {word}**: {job_tally(results)}."
    if phase == "superseded":
        newer = f": [the newer run]({link_destination(superseded_by)})" if superseded_by else ""
        return (
            f"**Superseded** by a newer `run-slow` on this pull request{newer}."
            " Its jobs were stopped."
        )
    return f"**Could not run**: {escape_text(one_line(error or ''))}. Nothing was tested."


def result_table(rows: Sequence[JobResult]) -> list[str]:
    """The run's result table, the same in its comment and its check run.

    A row per job: its folder, machine type, result (with the reason when there is one), its
    tests by outcome where its report counted some (`JobResult.counted`, else `–`) and its
    duration once it ended; then, for more than one job, the totals of the same (`–` while
    nothing is counted). Errors have a column of their own: a test that errored (a fixture, a
    collection) is not a test that failed.
    """
    lines = [
        "| folder | machine | result | passed | failed | errors | skipped | duration |",
        "|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        result = STATE_LABEL[r.state]
        if r.reason:
            result += f": {escape_text(one_line(r.reason, FAILURE_LINE_LIMIT))}"
        counts = [str(n) for n in _counts(r)] if r.counted else ["–"] * 4
        took = format_duration(r.duration) if r.duration is not None and r.done else "–"
        cells = [code_span(r.job.folder), code_span(r.job.machine_type), result, *counts, took]
        lines.append("| " + " | ".join(table_cell(c) for c in cells) + " |")
    if len(rows) > 1:
        counted = [_counts(r) for r in rows if r.counted]
        totals = [str(sum(row[i] for row in counted)) if counted else "–" for i in range(4)]
        ended = [r.duration or 0.0 for r in rows if r.done]
        took = format_duration(sum(ended)) if ended else "–"
        lines.append("| **total** | | | " + " | ".join(totals) + f" | {took} |")
    return lines


def _counts(row: JobResult) -> tuple[int, int, int, int]:
    return row.passed, row.failed, row.errors, row.skipped


def failure_lines(rows: Sequence[JobResult]) -> list[str]:
    """The first failures as one code block: nothing inside it is markdown or HTML."""
    every = [(r.job.machine_type, f) for r in rows for f in r.failures]
    if not every:
        return []
    shown = every[:MAX_FAILURES_SHOWN]
    lines = []
    for machine, failure in shown:
        lines.append(f"{one_line(failure.test, FAILURE_LINE_LIMIT)} [{machine}]")
        first = failure.message.strip().splitlines()[0] if failure.message.strip() else ""
        if first:
            lines.append(f"    {one_line(first, FAILURE_LINE_LIMIT)}")
    text = "\n".join(lines)
    fence = code_fence(text)
    title = "Failures"
    if len(every) > len(shown):
        title = f"First {len(shown)} of {len(every)} failures"
    return ["", f"{title} (all of them on the run's page):", "", fence, text, fence]


def dropped_lines(dropped: Sequence[DroppedName]) -> list[str]:
    """The `Not run:` list: each dropped name as code, with its reason; capped."""
    if not dropped:
        return []
    lines = ["", "Not run:"]
    for d in dropped[:MAX_DROPPED_SHOWN]:
        # The reasons are select_folders' own words about validated names: markdown as is.
        lines.append(f"- {code_span(one_line(d.name, SHOWN_NAME_LIMIT))}: {d.reason}")
    if len(dropped) > MAX_DROPPED_SHOWN:
        lines.append(f"- and {len(dropped) - MAX_DROPPED_SHOWN} more")
    return lines


def folder_list(folders: Sequence[str]) -> str:
    """Folders as code, comma-separated, or `none`: they passed check_name, so no escaping."""
    return ", ".join(f"`{f}`" for f in folders) if folders else "none"


# --------------------------------------------------------------------------- the checked failures


def verification_lines(verification: Verification, check_urls: Mapping[int, str]) -> list[str]:
    """What the checks of a run's failures say, shared by the comment and the check run: while
    they run, what is being checked and where; once they end, each test's label beside it with
    its reason and its evidence (the check runs' pages) one click away.

    The commit status and the check run's conclusion are the run's own and stay so: a failure
    that turned out flaky still failed, which the text says rather than a green status.
    """
    v = verification
    if v.error:
        return [f"**The failures were not checked**: {escape_text(one_line(v.error))}."]
    base = f"`{short_sha(v.base.sha)}` on {code_span(v.base.ref)}" if v.base and v.base.sha else ""
    rerun_link = _link("the re-runs", v.rerun_run, check_urls)
    base_link = _link("the run on the base", v.base_run, check_urls)
    links = " · ".join(link for link in (rerun_link, base_link) if link)
    if v.state != DONE:
        what = _tests(len(v.suspects))
        if v.left_out:
            what = f"the first {len(v.suspects)} of {v.failing} failing tests"
        times = "once" if v.reruns == 1 else f"{v.reruns} times"
        where = f" and running them at {base}" if base and v.base_run is not None else ""
        if not where:
            where = f" ({_no_base(v)})"
        line = f"**Checking the failures**: re-running {what} {times} on this commit{where}."
        line += " Each one's label follows when they end"
        return [line + (f": {links}." if links else "."), *_not_checked(v)]
    counts = ", ".join(f"{n} {LABELS[verdict]}" for verdict, n in v.counts().items())
    evidence = f"{v.reruns} re-run{'s' if v.reruns != 1 else ''} of each on this commit"
    evidence += f", one run at {base}" if base and v.base_run is not None else f" ({_no_base(v)})"
    out = [f"**The failures, checked** ({evidence}): {counts or 'none checked'}."]
    if v.results:
        out += ["", "| test | machine | verdict | why | evidence |", "|---|---|---|---|---|"]
        for result in v.results:
            cells = [
                code_span(one_line(result.suspect.test, FAILURE_LINE_LIMIT)),
                code_span(result.suspect.machine_type),
                f"**{result.label}**" if result.verdict == "new" else result.label,
                escape_text(one_line(result.reason, FAILURE_LINE_LIMIT)),
                _evidence(result.at_base, rerun_link, base_link),
            ]
            out.append("| " + " | ".join(table_cell(c) for c in cells) + " |")
    out += _not_checked(v)
    flaky = v.counts().get("flaky", 0)
    if flaky and flaky == len(v.results) and not v.left_out and not v.unrunnable:
        out += [
            "",
            "Every failure passed on a re-run, so they look flaky; the run still failed, and its"
            " status and check run stay failed. `run-slow --failed` runs them again.",
        ]
    elif flaky:
        out += ["", "A flaky failure still failed: the status and the check run stay as they are."]
    return out


def verification_title(verification: Verification | None) -> str:
    """What a check run's title adds about the checks: `checking the failures`, or the labels
    counted; nothing when there are none."""
    if verification is None or verification.error:
        return ""
    if verification.state != DONE:
        return "checking the failures"
    return ", ".join(f"{n} {LABELS[v]}" for v, n in verification.counts().items())


def _tests(n: int) -> str:
    return f"{n} failing test" if n == 1 else f"{n} failing tests"


def _link(text: str, run_id: int | None, check_urls: Mapping[int, str]) -> str:
    """A link to a check run's page, or nothing where there is no such run."""
    url = check_urls.get(run_id) if run_id is not None else None
    return f"[{text}]({link_destination(url)})" if url else ""


def _evidence(at_base: str | None, rerun_link: str, base_link: str) -> str:
    """Where one test's answers are: the re-runs, and the base run when it was run there."""
    links = [rerun_link]
    if at_base != "absent":
        links.append(base_link)
    return " · ".join(link for link in links if link) or "–"


def _no_base(v: Verification) -> str:
    if v.base is None or v.base.sha is None:
        return "no base commit to run them at"
    return "none of their files is on the base"


def _not_checked(v: Verification) -> list[str]:
    """The failures the checks left out: past the cap, or not nameable as a test."""
    out = []
    if v.left_out:
        out.append(
            f"{v.left_out} more failing tests are not checked: this bot checks the first"
            f" {MAX_CHECKED} failing tests of a run."
        )
    if v.unrunnable:
        tests = "test's" if v.unrunnable == 1 else "tests'"
        out.append(
            f"{v.unrunnable} failing {tests} node ids cannot be given to a job: not checked."
        )
    return ["", *out] if out else []


# --------------------------------------------------------------------------- Slack


def slack_summary(
    *,
    repo: str,
    number: int,
    title: str,
    pull_url: str,
    run_url: str,
    results: Sequence[JobResult],
    sha: str | None = None,
) -> dict[str, Any]:
    """A short message when a run ends: the outcome, the PR, the jobs that did not pass."""
    state = overall_state(results)
    word = {"success": "passed", "failure": "failed", "pending": "ended"}[state]
    icon = {"success": "✅", "failure": "❌", "pending": "⏳"}[state]
    fallback = f"run-slow {word} on {repo}#{number}: {job_tally(results)}"
    lines = [
        f"{icon} *run-slow {word}* on <{pull_url}|{escape_mrkdwn(repo)}#{number}"
        f" {escape_mrkdwn(one_line(title, 150))}>",
        f"{job_tally(results)}"
        + (f" on `{short_sha(sha)}`" if sha else "")
        + f" · <{run_url}|run page>",
    ]
    bad = [r for r in results if r.state not in ("passed", "skipped")]
    lines += [_slack_job_line(r) for r in bad[:5]]
    if len(bad) > 5:
        lines.append(f"• and {len(bad) - 5} more")
    return {
        "text": fallback,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
    }


def _slack_job_line(result: JobResult) -> str:
    """A job that did not pass, with its first failure's headline: the test author's message
    is what says, without opening the run page, whether the failure is the reader's to fix."""
    line = f"• `{result.job.name}`: {result.state.replace('_', ' ')}"
    if result.failures:
        first = result.failures[0]
        headline = first.message.strip().splitlines()[0] if first.message.strip() else ""
        line += f" · {_slack_code(one_line(first.test, 150))}"
        if headline:
            line += f": {_slack_code(one_line(headline, FAILURE_LINE_LIMIT))}"
    return line


def _slack_code(text: str) -> str:
    """Text from a test as an inline code span: Slack formats nothing inside one, and as a
    span cannot hold a backtick, each becomes a quote."""
    return "`" + escape_mrkdwn(text.replace("`", "'")) + "`"


# --------------------------------------------------------------------------- the reminder


def reminder_comment(reminder: Reminder, *, marker: str = "") -> str:
    """The reminder's comment: the models the pull request touches and the line to paste."""
    models = reminder.models
    extra = ""
    if reminder.more:
        extra = f" (and {reminder.more} more; the line names the first {len(models)})"
    body = (
        "This pull request changes the code or tests of"
        f" {_join(f'`{m}`' for m in models)}{extra}. Their slow (GPU) tests do not run on every"
        " push: once a maintainer has reviewed the latest commit, they can run them on it by"
        f" commenting:\n\n```\n{reminder.line}\n```\n"
    )
    return _with_marker(marker, body)


# --------------------------------------------------------------------------- refusals


def not_authorised_reply(
    login: str, allow_list: Sequence[str], min_permission: str = "write"
) -> str:
    """Why nothing ran for ``login``. Allowed people are named as code: no ping for each."""
    names = [code_span(one_line(n.lstrip("@"), SHOWN_NAME_LIMIT)) for n in allow_list[:10]]
    if len(allow_list) > 10:
        names.append(f"{len(allow_list) - 10} more")
    listed = ""
    if names:
        listed = f"the maintainers listed in the bot's configuration ({_join(names)}) or "
    return (
        f"@{login}: slow tests run only for {listed}people with `{min_permission}` permission"
        " or higher on this repository; nothing ran."
    )


def stale_comment_reply(head_sha: str) -> str:
    """Approval is for the commit the maintainer saw; a newer one needs its own `run-slow`."""
    return (
        f"This `run-slow` is older than the pull request's latest commit `{short_sha(head_sha)}`,"
        " so nothing ran. Review that commit, then comment `run-slow` again to test it."
    )


def nothing_selectable_reply(selection: Selection, *, marker: str = "") -> str:
    """No folder to run: say why for every name, and how to write one that runs."""
    lines = [
        "Nothing to run: this `run-slow` names no model with a test folder, and the"
        " pull request adds no model. Write the names on the same line: `run-slow: bert, gpt2`."
    ]
    lines += dropped_lines(selection.dropped)
    return _with_marker(marker, "\n".join(lines) + "\n")


def unapproved_push_reply(sha: str, pusher: str, refused: Sequence[str] = ()) -> str:
    """The label approved an earlier head; a push by someone not allowed runs nothing, nor does
    a push on top of theirs (``refused``: who may not approve, when not just ``pusher``)."""
    others = [login for login in refused if login.casefold() != pusher.casefold()]
    who = f"was pushed by @{pusher}, who cannot run slow tests"
    if others:
        names = _join(f"@{login}" for login in others)
        cannot = "; none of them can" if len(others) < len(refused) else ", who cannot"
        who = f"was pushed by @{pusher} on top of pushes by {names}{cannot} run slow tests"
    return (
        f"The `run-slow` label approved an earlier commit. `{short_sha(sha)}` {who}, so nothing"
        " ran. A maintainer can approve this commit by commenting `run-slow` (or by removing and"
        " adding the label again)."
    )


def untraced_push_reply(sha: str) -> str:
    """The bot's records do not show every push since the label's approval: nothing runs."""
    return (
        "The `run-slow` label approved an earlier commit, but the bot has no record of every"
        f" push since then, so `{short_sha(sha)}` did not run. A maintainer can approve this"
        " commit by commenting `run-slow` (or by removing and adding the label again)."
    )


def approval_line(trigger: Trigger, sha: str) -> str:
    """The `run-slow` line that asks for the same run and names the commit it approves."""
    if trigger.failed_only:
        return f"run-slow {FAILED_FLAG} {SHA_FLAG}{sha}"
    names = [name for name in trigger.names if check_name(name) is None][:MAX_FOLDERS]
    if not names:
        return f"run-slow {SHA_FLAG}{sha}"
    return f"run-slow: {', '.join(names)} {SHA_FLAG}{sha}"


def cannot_tell_reply(head_sha: str, trigger: Trigger, reason: str) -> str:
    """Nothing says whether the comment came after the head: the maintainer names the commit
    they reviewed, and only that commit runs."""
    short = short_sha(head_sha)
    return (
        f"Nothing ran: the bot cannot tell whether `{short}` was this pull request's head when"
        f" this `run-slow` was written ({reason}). If `{short}` is the commit you reviewed,"
        " comment again naming it with `sha=` on the same line (its full SHA, or at least its"
        f" first {MIN_SHA_LENGTH} characters):\n\n```\n{approval_line(trigger, head_sha)}\n```"
    )


# --------------------------------------------------------------------------- text helpers


def _with_marker(marker: str, text: str) -> str:
    """The marker on a line of its own: text after `-->` on its line would be raw HTML."""
    return f"{marker}\n{text}" if marker else text


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _about(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"about {minutes} min"
    return f"about {round(seconds / 3600)} h"
