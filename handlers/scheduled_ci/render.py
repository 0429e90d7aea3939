"""What a scheduled run says in Slack: the summary, a threaded reply per failing model, the new
failures by the commit that broke them, and the message when a run could not start.

Pure functions of `plan.ScheduledReport`, each returning a message (`text` for notifications,
`blocks` in Block Kit); the caller adds `channel` (and `thread_ts` for replies). Test names and
error lines come from the tested code, so every value is escaped (`&`, `<`, `>`): a test named
`<!channel>` is text, and the only mentions are the ones the `mentions` map makes. Slack's
limits (50 blocks, 3,000 characters a section, 150 a header) are kept by cutting lists short
with "… N more" and a link to the run page, never by losing the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.clients.slack import escape_mrkdwn
from bot.kit.markdown import one_line
from handlers.scheduled_ci.plan import BreakingCommit, ResultRow, ScheduledReport

__all__ = [
    "could_not_start_message",
    "model_replies",
    "new_failures_message",
    "summary_message",
]

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
#: How long a test id or an error line may be in a message: enough to recognise it.
MAX_ITEM_CHARS = 300
MAX_TABLE_NAME = 40
#: A reply per model: at most this many sections of failing tests.
MAX_REPLY_SECTIONS = 5
MAX_TESTS_PER_COMMIT = 10
#: The characters the short lists (flaky, pre-existing) may take.
MAX_SHORT_LIST_CHARS = 1500
_MEMBER = re.compile(r"[UW][A-Z0-9]{2,20}")
_URL = re.compile(r"https?://[^\s<>|]+")


# --------------------------------------------------------------------------- the summary


def summary_message(report: ScheduledReport) -> dict[str, Any]:
    """The run's summary: which commit, how many failures out of how many tests, how long, a
    button to the run page, and the tables by machine type and by model."""
    counts = (
        f"{_count(report.failures)} failure{_s(report.failures)} out of"
        f" {_count(report.total_tests)} test{_s(report.total_tests)};"
        f" ran in {format_duration(report.duration_s)}"
    )
    commit = _link(report.commit_url, _code(report.sha[:12]))
    if report.pr_number is not None:
        commit += " · " + _link(report.pr_url, f"#{report.pr_number}")
    if report.author:
        commit += f" by {_escaped(report.author, 60)}"
    icon = "❌" if report.failures else "✅"
    blocks: list[dict[str, Any]] = [
        _header(f"{report.schedule} on {report.repo}"),
        _section(f"{commit}\n{icon} *{counts}*"),
    ]
    blocks += _button("Open the run page", report.run_url)
    if report.by_machine:
        blocks.append(_section(_table("machine type", report.by_machine, report.run_url)))
    if report.by_model:
        models = sorted(report.by_model, key=lambda row: (-row.failures, row.name))
        blocks.append(_section(_table("model", models, report.run_url)))
    text = f"{report.schedule} on {report.repo}: {counts}"
    return {"text": escape_mrkdwn(text), "blocks": blocks}


def _table(title: str, rows: Sequence[ResultRow], more_url: str) -> str:
    """A table in a code block, cut to one section with the count of rows left out."""
    width = max([len(title)] + [len(one_line(r.name, MAX_TABLE_NAME)) for r in rows])
    head = f"{title:<{width}}  passed  failed  errors  skipped"
    lines = [head]
    used = len(head) + 200  # the fences, and the line saying what was left out
    shown = 0
    for row in rows:
        name = one_line(row.name, MAX_TABLE_NAME).replace("`", "'")
        line = (
            f"{name:<{width}}  {row.passed:>6}  {row.failed:>6}  {row.errors:>6}  {row.skipped:>7}"
        )
        if used + len(escape_mrkdwn(line)) + 1 > MAX_SECTION_CHARS:
            break
        lines.append(line)
        used += len(escape_mrkdwn(line)) + 1
        shown += 1
    body = "```\n" + escape_mrkdwn("\n".join(lines)) + "\n```"
    if shown < len(rows):
        body += "\n" + _more(len(rows) - shown, "row", more_url)
    return body


# --------------------------------------------------------------------------- per model


def model_replies(report: ScheduledReport) -> list[dict[str, Any]]:
    """One reply per model with failures, for the summary's thread: its failing tests, each
    with the first line of what went wrong."""
    replies = []
    for model in report.failing:
        if not model.tests:
            continue
        n = len(model.tests)
        title = f"*{_escaped(model.folder, MAX_ITEM_CHARS)}*: {n} failing test{_s(n)}"
        items = []
        for test in model.tests:
            line = f"• {_code(test.test)}"
            if test.machine_type:
                line += f" ({_escaped(test.machine_type, 40)})"
            if test.first_line:
                line += f"\n      {_code(test.first_line)}"
            items.append(line)
        blocks = [_section(title), *_packed(items, MAX_REPLY_SECTIONS, "test", report.run_url)]
        text = f"{model.folder}: {n} failing test{_s(n)}"
        replies.append({"text": _escaped(text, MAX_ITEM_CHARS), "blocks": blocks})
    return replies


# --------------------------------------------------------------------------- new failures


def new_failures_message(
    report: ScheduledReport, mentions: Mapping[str, str]
) -> dict[str, Any] | None:
    """The failures that are news, by the commit that broke them: its PR, its author and who
    merged it, mentioned where `mentions` maps their login; then the new failures no commit
    was found for, and, shorter, the flaky and the pre-existing ones. None when there is
    nothing to say."""
    if not (report.new_failures or report.unresolved or report.flaky or report.pre_existing):
        return None
    folded = {login.lower(): member for login, member in mentions.items()}
    blocks: list[dict[str, Any]] = [_header(f"New failures: {report.schedule} on {report.repo}")]
    # Room for the header, the unresolved, the two short lists, a divider and the "more" line.
    room = MAX_BLOCKS - 6
    commits = sorted(report.new_failures, key=lambda c: (c.author.lower() or "~", c.sha))
    for commit in commits[:room]:
        blocks.append(_section(_commit_group(commit, folded, report.run_url)))
    if len(commits) > room:
        blocks.append(_section(_more(len(commits) - room, "breaking commit", report.run_url)))
    if report.unresolved:
        items = [
            f"• {_code(u.test)}: {_escaped(u.reason, MAX_ITEM_CHARS)}" for u in report.unresolved
        ]
        title = f"*New, no breaking commit found* ({len(items)})"
        blocks += _packed([title, *items], 1, "test", report.run_url)
    short = [
        ("Flaky (passed on a re-run, not counted as new)", report.flaky),
        ("Failing at the previous run's commit too", report.pre_existing),
    ]
    if any(tests for _, tests in short):
        blocks.append({"type": "divider"})
    for title, tests in short:
        if tests:
            blocks.append(_context(_short_list(title, tests, report.run_url)))
    new = sum(len(c.tests) for c in report.new_failures) + len(report.unresolved)
    text = (
        f"New failures in {report.schedule} on {report.repo}: {new} new"
        f" ({len(report.new_failures)} breaking commit{_s(len(report.new_failures))}),"
        f" {len(report.flaky)} flaky, {len(report.pre_existing)} pre-existing"
    )
    return {"text": escape_mrkdwn(text), "blocks": blocks}


def _commit_group(commit: BreakingCommit, mentions: Mapping[str, str], more_url: str) -> str:
    if commit.pr_number is not None:
        label = f"#{commit.pr_number}"
        if commit.pr_title:
            label += f" {_escaped(commit.pr_title, 120)}"
        who = _link(commit.pr_url, label)
    else:
        who = "a commit without a pull request"
    who += f" by {_person(commit.author, mentions)}"
    if commit.merger and commit.merger.lower() != commit.author.lower():
        who += f", merged by {_person(commit.merger, mentions)}"
    n = len(commit.tests)
    lines = [who, f"{_link(commit.url, _code(commit.sha[:12]))} broke {n} test{_s(n)}:"]
    shown = [f"• {_code(test)}" for test in commit.tests[:MAX_TESTS_PER_COMMIT]]
    # Keep the group inside one section whatever the test names' lengths.
    while shown and len("\n".join(lines + shown)) > MAX_SECTION_CHARS - 200:
        shown.pop()
    lines += shown
    if len(shown) < n:
        lines.append(_more(n - len(shown), "test", more_url))
    return "\n".join(lines)


def _person(login: str, mentions: Mapping[str, str]) -> str:
    """A mention where the login maps to a Slack member id, else the login as text."""
    if not login:
        return "someone unknown"
    member = mentions.get(login.lower(), "")
    if _MEMBER.fullmatch(member):
        return f"<@{member}>"
    return _escaped(login, 60)


def _short_list(title: str, tests: Sequence[str], more_url: str) -> str:
    text = f"*{title}* ({len(tests)}):"
    shown = 0
    for test in tests:
        item = f" {_code(test)}"
        if len(text) + len(item) > MAX_SHORT_LIST_CHARS:
            break
        text += item
        shown += 1
    if shown < len(tests):
        text += " " + _more(len(tests) - shown, "test", more_url)
    return text


# --------------------------------------------------------------------------- no run


def could_not_start_message(schedule: str, repo: str, reason: str, page_url: str) -> dict[str, Any]:
    """Said instead of a report of zeros, when there was nothing to run or nowhere to run it."""
    line = f"{schedule} on {repo} did not run"
    blocks: list[dict[str, Any]] = [
        _header(f"⚠️ {line}"),
        _section(_escaped(reason, MAX_SECTION_CHARS)),
    ]
    blocks += _button("Open the schedule's page", page_url)
    return {"text": _escaped(f"{line}: {reason}", 500), "blocks": blocks}


# --------------------------------------------------------------------------- pieces


def format_duration(seconds: float) -> str:
    """`3h 12m`, `12m 5s`, `42s`: how long a run took, as people say it."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _escaped(text: str, limit: int) -> str:
    """`text` on one line and escaped, at most `limit` characters once escaped: cut between
    characters, never inside an `&amp;`, with `…` saying it was cut."""
    flat = one_line(text)
    whole = escape_mrkdwn(flat)
    if len(whole) <= limit:
        return whole
    pieces: list[str] = []
    used = 0
    for char in flat:
        piece = _ESCAPES.get(char, char)
        if used + len(piece) > limit - 1:
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces) + "…"


def _code(text: str) -> str:
    """A value as an inline code span, on one line: Slack formats nothing inside one, and as
    a span cannot hold a backtick, each becomes a quote."""
    return "`" + _escaped(text.replace("`", "'"), MAX_ITEM_CHARS) + "`"


def _link(url: str, label: str) -> str:
    """`label` (already mrkdwn) linked to `url`; only an http(s) URL with nothing in it that
    would end the link becomes one, anything else leaves the label alone."""
    if not _URL.fullmatch(url or ""):
        return label
    return f"<{url.replace('&', '&amp;')}|{label}>"


def _more(count: int, what: str, url: str) -> str:
    return "… " + _link(url, f"{_count(count)} more {what}{_s(count)}")


def _header(text: str) -> dict[str, Any]:
    text = _escaped(text, MAX_HEADER_CHARS)
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    if len(text) > MAX_SECTION_CHARS:
        text = text[: MAX_SECTION_CHARS - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _button(label: str, url: str) -> list[dict[str, Any]]:
    if not _URL.fullmatch(url or "") or len(url) > MAX_SECTION_CHARS:
        return []
    button = {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
    return [{"type": "actions", "elements": [button]}]


def _packed(items: Iterable[str], max_sections: int, what: str, more_url: str) -> list[dict]:
    """`items` (mrkdwn lines) in as few sections as fit, at most `max_sections`; what does not
    fit is counted on a last line with a link to the rest."""
    pending = list(items)
    sections: list[list[str]] = []
    reserve = 200  # the "… N more" line
    used = 0
    while pending and len(sections) <= max_sections:
        item = pending[0]
        if len(item) > MAX_SECTION_CHARS - reserve:
            item = pending[0] = item[: MAX_SECTION_CHARS - reserve - 1] + "…"
        if sections and used + len(item) + 1 <= MAX_SECTION_CHARS - reserve:
            sections[-1].append(item)
            used += len(item) + 1
        elif len(sections) < max_sections:
            sections.append([item])
            used = len(item)
        else:
            break
        pending.pop(0)
    if pending:
        if not sections:
            sections.append([])
        sections[-1].append(_more(len(pending), what, more_url))
    return [_section("\n".join(lines)) for lines in sections]


def _count(n: int) -> str:
    return f"{n:,}"


def _s(n: int) -> str:
    return "" if n == 1 else "s"
