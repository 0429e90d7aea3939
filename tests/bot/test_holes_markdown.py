"""Names, test ids and messages from a pull request, quoted by the bot, stay text: no mention, no
image, no link, no raw HTML, no broken table row, in the run's comment, its check run and its
Slack messages."""

from __future__ import annotations

import re

import pytest

from bot.kit.markdown import code_span, escape_text, one_line, table_cell
from handlers.new_model.plan import MergedPull, NewModel, build_message
from handlers.slow_ci.checks import plan_check_run
from handlers.slow_ci.plan import Failure, JobResult, JobSpec, select_folders
from handlers.slow_ci.render import render_comment, slack_summary

HOSTILE = (
    "test_x[@octocat]",
    "![x](https://evil/p.png).py",
    "`@octocat` and `` ` ``",
    "<img src=https://evil/p.png> <!-- <script>",
    "line\n@octocat\r\n# heading\u2028@octocat",
    "``` @octocat",
    "x`` @octocat ``y",
    "\\`@octocat\\",
    "a|b\\|c @octocat",
    "[click](https://evil) <https://evil> &#64;octocat",
    "    @octocat indented",
)
JOB = JobSpec("models/toy", "single-gpu")


def _outside_code(markdown: str) -> str:
    """The markdown with its fenced code blocks and code spans removed: what GitHub renders as
    markdown. As CommonMark pairs them: a backtick run closes only with a run of the same
    length, and a backslash outside a code span makes the next character literal."""
    kept, fence = [], ""
    for line in markdown.split("\n"):
        if fence:
            if line.strip() == fence:
                fence = ""
            continue
        opening = re.fullmatch(r" {0,3}(`{3,})[^`]*", line)
        if opening:
            fence = opening.group(1)
            continue
        kept.append(line)
    text = "\n".join(kept)
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        if text[i] != "`":
            out.append(text[i])
            i += 1
            continue
        run = re.match(r"`+", text[i:]).group()  # type: ignore[union-attr]
        close = next(
            (m for m in re.finditer(r"`+", text[i + len(run) :]) if len(m.group()) == len(run)),
            None,
        )
        if close is None:
            out.append(run)
            i += len(run)
        else:
            i += len(run) + close.end()
    return "".join(out)


def _assert_inert(markdown: str) -> None:
    rest = _outside_code(markdown)
    assert "@octocat" not in rest, rest  # a mention: `@` then the login, nothing between
    assert "![" not in rest, rest  # an image
    assert not re.search(r"(?<!\\)\]\(https://evil", rest), rest  # a link
    assert "<img" not in rest and "<script" not in rest and "<https" not in rest, rest
    assert "&#64;" not in rest.replace("&amp;#64;", ""), rest
    for line in rest.split("\n"):
        assert not line.startswith("#"), line  # no heading of the author's
    header_cells = None
    for line in markdown.split("\n"):
        if line.startswith("| ") and "---" not in line:
            cells = len(re.findall(r"(?<!\\)\|", line))
            header_cells = header_cells or cells
            assert cells == header_cells, line  # no row broken open by a `|` or a line break


def _results() -> list[JobResult]:
    failures = tuple(Failure(text, text) for text in HOSTILE)
    return [JobResult(JOB, "failed", failed=len(HOSTILE), failures=failures, reason=HOSTILE[4])]


@pytest.mark.parametrize("text", HOSTILE)
def test_the_shared_escaping_leaves_nothing_live(text):
    _assert_inert(escape_text(text))
    _assert_inert(f"| {table_cell(code_span(text))} | {table_cell(escape_text(text))} |")
    _assert_inert(f"- {code_span(text)}: {escape_text(text)}")
    assert "\n" not in escape_text(text) and "\r" not in escape_text(text)
    assert "\n" not in code_span(text)


def test_the_run_comment_quotes_hostile_names_tests_and_messages_as_text():
    selection = select_folders([], [*HOSTILE, "toy"], {"tests/models/toy"})
    for phase, error in (("finished", None), ("superseded", None), ("error", " ".join(HOSTILE))):
        body = render_comment(
            marker="<!-- maintainer-bot:slow_ci:run:1 -->",
            selection=selection,
            run_url="https://bot.example.org/runs/1",
            phase=phase,  # type: ignore[arg-type]
            jobs=[JOB],
            results=_results(),
            sha="a" * 40,
            error=error,
            superseded_by="https://bot.example.org/runs/2" if phase == "superseded" else None,
        )
        _assert_inert(body.replace("<!-- maintainer-bot:slow_ci:run:1 -->", ""))


def test_the_check_run_quotes_them_as_text_too():
    selection = select_folders([], [*HOSTILE, "toy"], {"tests/models/toy"})
    for phase, error in (("finished", None), ("error", "\n".join(HOSTILE))):
        plan = plan_check_run(
            phase=phase,  # type: ignore[arg-type]
            selection=selection,
            run_url="https://bot.example.org/runs/1",
            jobs=[JOB],
            results=_results(),
            sha="a" * 40,
            error=error,
        )
        _assert_inert(plan.summary)
        _assert_inert(plan.text)
        assert "\n" not in plan.title


SLACK_HOSTILE = "<!channel> <!here|here> <@U123> <#C123> <http://evil|click> & &lt;"


def _slack_live(text: str) -> list[str]:
    """What Slack would turn into a mention or a link: an unescaped `<...>`."""
    return re.findall(r"<[^>]*>", text)


def test_the_slack_summary_of_a_run_mentions_nobody_a_title_names():
    message = slack_summary(
        repo="acme/models",
        number=7,
        title=SLACK_HOSTILE,
        pull_url="https://github.com/acme/models/pull/7",
        run_url="https://bot.example.org/runs/1",
        results=_results(),
        sha="a" * 40,
    )
    section = message["blocks"][0]["text"]["text"]
    assert _slack_live(section) == [
        "<https://github.com/acme/models/pull/7|acme/models#7 &lt;!channel&gt; &lt;!here|here&gt;"
        " &lt;@U123&gt; &lt;#C123&gt; &lt;http://evil|click&gt; &amp; &amp;lt;>",
        "<https://bot.example.org/runs/1|run page>",
    ]
    assert _slack_live(message["text"]) == []


def test_the_new_model_message_mentions_only_the_configured_people():
    message = build_message(
        model=NewModel("toy", "model_lib/models/toy/modeling_toy.py", "b" * 40),
        repo_url="https://github.com/acme/models",
        channel="new-models",
        mention=["U024BE7LH"],
        pull=MergedPull(7, SLACK_HOSTILE, "carol", "https://github.com/acme/models/pull/7"),
    )
    section = message["blocks"][1]["text"]["text"]
    live = _slack_live(section)
    assert live[0] == f"<https://github.com/acme/models/commit/{'b' * 40}|New model: toy>"
    assert live[1].startswith("<https://github.com/acme/models/pull/7|#7 &lt;!channel&gt;")
    assert live[2:] == ["<@U024BE7LH>"]
    # The fallback is what notifications show: no mention from the title there either.
    assert _slack_live(message["text"]) == []
    assert "&lt;!channel&gt;" in message["text"]


def test_one_line_flattens_every_line_break():
    assert one_line("a\r\nb\u2028c\u2029d\x85e\x0bf\x0cg") == "a b c d e f g"
