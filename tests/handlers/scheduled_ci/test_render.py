"""The Slack messages of a scheduled run: what they say, that they stay inside Slack's limits,
and that nothing a test or a pull request wrote becomes a mention, a link or formatting."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from handlers.scheduled_ci.plan import (
    BreakingCommit,
    FailingTest,
    ModelFailures,
    ResultRow,
    ScheduledReport,
    Unresolved,
)
from handlers.scheduled_ci.render import (
    MAX_BLOCKS,
    MAX_HEADER_CHARS,
    MAX_SECTION_CHARS,
    could_not_start_message,
    format_duration,
    model_replies,
    new_failures_message,
    summary_message,
)

SHA = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0"
BREAKER = "0123456789abcdef0123456789abcdef01234567"
RUN = "https://bot.example/runs/42"

REPORT = ScheduledReport(
    schedule="nightly",
    repo="acme/models",
    sha=SHA,
    commit_url=f"https://github.com/acme/models/commit/{SHA}",
    run_url=RUN,
    total_tests=1234,
    failures=3,
    duration_s=3 * 3600 + 12 * 60 + 5,
    by_machine=(
        ResultRow("single-gpu", passed=600, failed=2, skipped=10),
        ResultRow("multi-gpu", passed=620, errors=1, skipped=1),
    ),
    by_model=(
        ResultRow("models/albert", passed=100),
        ResultRow("models/bert", passed=300, failed=2),
        ResultRow("models/gpt2", passed=200, errors=1),
    ),
    failing=(
        ModelFailures(
            "models/bert",
            (
                FailingTest(
                    "tests/models/bert/test_modeling.py::test_logits",
                    "AssertionError: logits differ",
                    "single-gpu",
                ),
                FailingTest("tests/models/bert/test_modeling.py::test_batch", "", "single-gpu"),
            ),
        ),
        ModelFailures(
            "models/gpt2",
            (FailingTest("tests/models/gpt2/test_x.py::test_y", "OSError: no file", "multi-gpu"),),
        ),
    ),
    pr_number=77,
    pr_url="https://github.com/acme/models/pull/77",
    author="merger-person",
    new_failures=(
        BreakingCommit(
            sha=BREAKER,
            url=f"https://github.com/acme/models/commit/{BREAKER}",
            tests=("tests/models/bert/test_modeling.py::test_logits",),
            pr_number=70,
            pr_url="https://github.com/acme/models/pull/70",
            pr_title="Faster attention",
            author="octocat",
            merger="Maintainer",
        ),
    ),
    unresolved=(Unresolved("tests/models/bert/test_modeling.py::test_batch", "bisect is off"),),
    flaky=("tests/models/gpt2/test_x.py::test_flaky",),
    pre_existing=("tests/models/gpt2/test_x.py::test_y",),
)


def texts(message: dict) -> list[str]:
    """Every text in the message's blocks, in order."""
    found = []
    for block in message["blocks"]:
        if "text" in block:
            found.append(block["text"]["text"])
        for element in block.get("elements", ()):
            found.append(element["text"] if isinstance(element["text"], str) else "")
    return found


def check_limits(message: dict) -> None:
    assert isinstance(message["text"], str) and message["text"]
    assert len(message["blocks"]) <= MAX_BLOCKS
    for block in message["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER_CHARS
            assert block["text"]["type"] == "plain_text"
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION_CHARS
        for element in block.get("elements", ()):
            if element["type"] == "mrkdwn":
                assert len(element["text"]) <= MAX_SECTION_CHARS
    json.dumps(message)  # what the outbox stores


# --------------------------------------------------------------------------- the summary


def test_the_summary_names_the_schedule_the_commit_its_pr_and_the_counts():
    message = summary_message(REPORT)
    check_limits(message)
    header, commit, actions, machines, models = message["blocks"]
    assert header["text"]["text"] == "nightly on acme/models"
    assert commit["text"]["text"] == (
        f"<https://github.com/acme/models/commit/{SHA}|`a1b2c3d4e5f6`>"
        " · <https://github.com/acme/models/pull/77|#77> by merger-person\n"
        "❌ *3 failures out of 1,234 tests; ran in 3h 12m*"
    )
    (button,) = actions["elements"]
    assert (button["type"], button["url"]) == ("button", RUN)
    assert message["text"] == "nightly on acme/models: 3 failures out of 1,234 tests; ran in 3h 12m"
    assert machines["text"]["text"] == (
        "```\n"
        "machine type  passed  failed  errors  skipped\n"
        "single-gpu       600       2       0       10\n"
        "multi-gpu        620       0       1        1\n"
        "```"
    )
    rows = models["text"]["text"].splitlines()[2:-1]
    assert [row.split()[0] for row in rows] == ["models/bert", "models/gpt2", "models/albert"]


def test_a_green_run_says_so():
    green = replace(REPORT, failures=0, total_tests=1, duration_s=42, pr_number=None, author="")
    message = summary_message(green)
    assert message["blocks"][1]["text"]["text"] == (
        f"<https://github.com/acme/models/commit/{SHA}|`a1b2c3d4e5f6`>\n"
        "✅ *0 failures out of 1 test; ran in 42s*"
    )


def test_a_table_of_many_models_is_cut_with_the_count_and_the_link():
    many = tuple(ResultRow(f"models/m{i:04}", passed=i) for i in range(500))
    message = summary_message(replace(REPORT, by_model=many))
    check_limits(message)
    table = message["blocks"][-1]["text"]["text"]
    left = re.search(r"… <https://bot\.example/runs/42\|([\d,]+) more rows>$", table)
    assert left is not None
    shown = len(table.split("```")[1].strip().splitlines()) - 1
    assert shown + int(left[1].replace(",", "")) == 500


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.4, "42s"), (65, "1m 5s"), (3600, "1h 0m"), (11525, "3h 12m"), (-5, "0s")],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert format_duration(seconds) == text


# --------------------------------------------------------------------------- per model


def test_one_reply_per_failing_model_with_each_tests_first_error_line():
    bert, gpt2 = model_replies(REPORT)
    check_limits(bert)
    assert bert["text"] == "models/bert: 2 failing tests"
    assert texts(bert) == [
        "*models/bert*: 2 failing tests",
        "• `tests/models/bert/test_modeling.py::test_logits` (single-gpu)\n"
        "      `AssertionError: logits differ`\n"
        "• `tests/models/bert/test_modeling.py::test_batch` (single-gpu)",
    ]
    assert texts(gpt2)[0] == "*models/gpt2*: 1 failing test"


def test_a_model_with_thousands_of_failures_is_cut_to_slacks_limits_with_a_link():
    tests = tuple(
        FailingTest(f"tests/models/bert/test_{i}.py::test_" + "x" * 200, "E" * 400, "single-gpu")
        for i in range(2000)
    )
    (reply,) = model_replies(replace(REPORT, failing=(ModelFailures("models/bert", tests),)))
    check_limits(reply)
    last = texts(reply)[-1]
    left = re.search(r"… <https://bot\.example/runs/42\|([\d,]+) more tests>$", last)
    assert left is not None
    shown = sum(t.count("• ") for t in texts(reply))
    assert shown + int(left[1].replace(",", "")) == 2000


# --------------------------------------------------------------------------- new failures


def test_new_failures_name_the_breaking_pr_its_author_and_merger_with_mentions():
    message = new_failures_message(REPORT, {"OctoCat": "U024BE7LH"})
    assert message is not None
    check_limits(message)
    header, commit, unresolved, divider, flaky, pre = message["blocks"]
    assert header["text"]["text"] == "New failures: nightly on acme/models"
    assert commit["text"]["text"] == (
        "<https://github.com/acme/models/pull/70|#70 Faster attention> by <@U024BE7LH>,"
        " merged by Maintainer\n"
        f"<https://github.com/acme/models/commit/{BREAKER}|`0123456789ab`> broke 1 test:\n"
        "• `tests/models/bert/test_modeling.py::test_logits`"
    )
    assert unresolved["text"]["text"] == (
        "*New, no breaking commit found* (1)\n"
        "• `tests/models/bert/test_modeling.py::test_batch`: bisect is off"
    )
    assert divider == {"type": "divider"}
    assert (flaky["type"], pre["type"]) == ("context", "context")
    assert flaky["elements"][0]["text"] == (
        "*Flaky (passed on a re-run, not counted as new)* (1):"
        " `tests/models/gpt2/test_x.py::test_flaky`"
    )
    assert "*Failing at the previous run's commit too* (1):" in pre["elements"][0]["text"]
    assert message["text"] == (
        "New failures in nightly on acme/models: 2 new (1 breaking commit), 1 flaky, 1 pre-existing"
    )


def test_without_a_mention_the_login_is_text_and_an_author_who_merged_is_named_once():
    commit = replace(REPORT.new_failures[0], merger="OCTOCAT", pr_number=None)
    message = new_failures_message(replace(REPORT, new_failures=(commit,)), {})
    assert message is not None
    assert message["blocks"][1]["text"]["text"].startswith(
        "a commit without a pull request by octocat\n"
    )


def test_nothing_new_means_no_message():
    quiet = replace(REPORT, new_failures=(), unresolved=(), flaky=(), pre_existing=())
    assert new_failures_message(quiet, {}) is None


def test_hundreds_of_breaking_commits_and_tests_stay_inside_the_limits():
    commits = tuple(
        BreakingCommit(
            sha=f"{i:040x}",
            url=f"https://github.com/acme/models/commit/{i:040x}",
            tests=tuple(f"tests/models/m/test_{i}_{j}.py::" + "t" * 280 for j in range(40)),
            pr_number=i,
            pr_url=f"https://github.com/acme/models/pull/{i}",
            author=f"dev{i}",
        )
        for i in range(300)
    )
    report = replace(
        REPORT,
        new_failures=commits,
        unresolved=tuple(Unresolved(f"tests/t{i}.py::t", "r" * 400) for i in range(300)),
        flaky=tuple(f"tests/f{i}.py::t" for i in range(1000)),
        pre_existing=tuple(f"tests/p{i}.py::t" for i in range(1000)),
    )
    message = new_failures_message(report, {})
    assert message is not None
    check_limits(message)
    joined = "\n".join(texts(message))
    assert re.search(r"more breaking commits>", joined)
    assert re.search(r"more tests>", joined)


# --------------------------------------------------------------------------- hostile values


HOSTILE = "<!channel> <@U0ADMIN> <https://evil.example|click> & `code` *bold*\nnext line"


def test_nothing_a_test_or_a_pull_request_wrote_becomes_a_mention_or_a_link():
    commit = replace(
        REPORT.new_failures[0],
        tests=(f"tests/x.py::test[{HOSTILE}]",),
        pr_title=HOSTILE,
        author="<!here>",
        merger="<@U0ADMIN>",
    )
    report = replace(
        REPORT,
        schedule="<!channel>",
        repo="acme/<!everyone>",
        author=HOSTILE,
        by_model=(ResultRow(HOSTILE, failed=1),),
        failing=(ModelFailures(HOSTILE, (FailingTest(HOSTILE, HOSTILE, HOSTILE),)),),
        new_failures=(commit,),
        unresolved=(Unresolved(HOSTILE, HOSTILE),),
        flaky=(HOSTILE,),
        pre_existing=(HOSTILE,),
        commit_url="javascript:alert(1)",
        pr_url="https://github.com/acme/models/pull/1|<!channel>",
    )
    messages = [
        summary_message(report),
        *model_replies(report),
        new_failures_message(report, {"<!here>": "<!channel>", "octocat": "U024BE7LH"}),
        could_not_start_message("<!channel>", "acme/<x>", HOSTILE, "javascript:alert(1)"),
    ]
    for message in messages:
        assert message is not None
        check_limits(message)
        for text in [message["text"], *texts(message)]:
            # The only `<` left open the links the renderer made itself, to http(s) URLs.
            for opened in re.findall(r"<([^>]*)>", text):
                assert re.fullmatch(r"https://(github\.com|bot\.example)/[^|\s]*\|[^<]*", opened), (
                    opened
                )
            assert "<!" not in text and "<@" not in text
            assert "javascript:" not in text or "&lt;" in text or "<javascript" not in text
        for block in message["blocks"]:
            for element in block.get("elements", ()):
                if element.get("type") == "button":
                    assert element["url"].startswith("https://")


def test_could_not_start_says_why_instead_of_a_report_of_zeros():
    message = could_not_start_message(
        "nightly", "acme/models", "no runner has the multi-gpu label", RUN
    )
    check_limits(message)
    header, reason, actions = message["blocks"]
    assert header["text"]["text"] == "⚠️ nightly on acme/models did not run"
    assert reason["text"]["text"] == "no runner has the multi-gpu label"
    assert actions["elements"][0]["url"] == RUN
    assert (
        message["text"] == "nightly on acme/models did not run: no runner has the multi-gpu label"
    )
