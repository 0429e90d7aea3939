"""A failure leads with what its test's author wrote, as pytest's short summary prints it, in the
comment, the check run's annotation, the run page and the Slack summary alike.

The reports are real: pytest runs a generated test file and writes its JUnit XML, and its own
`-rfE` short summary is the reference each headline is held to.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.jobs.records import JobLimits
from bot.jobs.runners import JobOutcome
from bot.jobs.runners.junit import TestResult, read_junit
from bot.store import runs as jobs_store
from bot.store.engine import Store
from bot.web import render, results
from handlers.slow_ci.checks import plan_check_run
from handlers.slow_ci.plan import Failure, JobResult, JobSpec, SelectedFolder, Selection
from handlers.slow_ci.render import render_comment, slack_summary

CASES = """\
import pytest


def test_message():
    got = 2
    assert got == 3, "the reason"


def test_bare():
    assert 2 == 3


def test_fail():
    pytest.fail("why")


def test_raise():
    raise ValueError("bad")


def test_multi_line():
    assert 2 == 3, "first line\\nsecond line\\nthird"


def test_markdown():
    assert 2 == 3, "@team see `x` | <b>bold</b> *hi* [l](http://evil) ```"


def helper():
    assert 1 == 2, "deep reason"


def test_deep():
    helper()


def test_chained():
    try:
        raise KeyError("k")
    except KeyError:
        raise ValueError("while handling")


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke, see the log")


def test_setup_error(broken):
    pass
"""

FILE = "tests/models/toy/test_cases.py"
JOB = JobSpec("models/toy", "single-gpu")
SELECTION = Selection((SelectedFolder("toy", "models/toy", "model", "listed"),), ())
RUN_URL = "http://bot.test/runs/3"
SHA = "c0ffee" + "0" * 34
MARKDOWN = "AssertionError: @team see `x` | <b>bold</b> *hi* [l](http://evil) ```"


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, TestResult], dict[str, str]]:
    """The parsed report by test name, and pytest's own short summary message by test name."""
    root = tmp_path_factory.mktemp("headline")
    path = root / FILE
    path.parent.mkdir(parents=True)
    path.write_text(CASES)
    junit = root / "junit.xml"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "COLUMNS": "400",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
         f"--junitxml={junit}", FILE],
        cwd=root, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    summary = {}
    for line in done.stdout.splitlines():
        match = re.match(r"^(?:FAILED|ERROR) \S+::(\w+) - (.*)$", line)
        if match:
            summary[match[1]] = match[2]
    report = read_junit(junit, root=root)
    assert report.error is None
    by_name = {t.node_id.rsplit("::", 1)[1]: t for t in report.tests}
    return by_name, summary


def test_every_headline_is_what_pytest_s_short_summary_says(ran) -> None:
    by_name, summary = ran
    assert set(summary) == set(by_name) and len(summary) == 9
    for name, test in by_name.items():
        assert test.headline == summary[name], name


@pytest.mark.parametrize(
    ("name", "lines"),
    [
        ("test_message", ("AssertionError: the reason", "assert 2 == 3")),
        ("test_bare", ("assert 2 == 3",)),
        ("test_fail", ("Failed: why",)),
        ("test_raise", ("ValueError: bad",)),
        (
            "test_multi_line",
            ("AssertionError: first line", "  second line", "  third", "assert 2 == 3"),
        ),
        ("test_markdown", (MARKDOWN, "assert 2 == 3")),
        ("test_deep", ("AssertionError: deep reason", "assert 1 == 2")),
        ("test_chained", ("ValueError: while handling",)),
        ("test_setup_error", ("RuntimeError: fixture broke, see the log",)),
    ],
)
def test_the_author_s_message_leads_then_the_rest_and_the_failing_line(
    ran, name: str, lines: tuple[str, ...]
) -> None:
    test = ran[0][name]
    assert test.summary_lines == lines
    assert test.headline == lines[0]


def test_a_result_stored_before_headlines_existed_still_has_one() -> None:
    old = TestResult(
        "t.py::t", "failed", message="AssertionError: the reason", assertion="assert 2 == 3"
    )
    assert old.headline == "AssertionError: the reason"
    assert old.summary_lines == ("AssertionError: the reason", "assert 2 == 3")
    bare = TestResult("t.py::t", "failed", message="assert 2 == 3", assertion="assert 2 == 3")
    assert bare.summary_lines == ("assert 2 == 3",)


# --------------------------------------------------------------------------- the four places


def test_the_check_run_annotation_leads_with_the_message(ran) -> None:
    by_name = ran[0]
    tests = [by_name["test_message"], by_name["test_multi_line"], by_name["test_bare"]]
    result = JobResult(JOB, "failed", failed=3)
    plan = plan_check_run(
        phase="finished",
        selection=SELECTION,
        run_url=RUN_URL,
        results=[result],
        tests={JOB: tests},
        sha=SHA,
    )
    messages = [a.message for a in plan.annotations]
    assert messages[0] == "AssertionError: the reason\nassert 2 == 3\n\non single-gpu"
    assert messages[1] == (
        "AssertionError: first line\n  second line\n  third\nassert 2 == 3\n\non single-gpu"
    )
    assert messages[2] == "assert 2 == 3\n\non single-gpu"
    assert plan.annotations[0].line == 6


def _failures_html(tests: list[TestResult]) -> str:
    view = results.select([results.bucketed((JOB.name, t) for t in tests)])
    return render.render("_failures.html", results=view)


def test_the_run_page_leads_with_the_message_and_escapes_it(ran) -> None:
    by_name = ran[0]
    html = _failures_html([by_name["test_message"], by_name["test_markdown"]])
    summaries = re.findall(r"<summary>(.*?)</summary>", html, re.DOTALL)
    assert len(summaries) == 2
    assert "<code>AssertionError: the reason</code>" in summaries[0]
    assert "assert 2 == 3" not in summaries[0]
    assert "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in summaries[1]


def test_the_run_page_shows_the_rest_of_a_long_message_after_its_first_line(ran) -> None:
    html = _failures_html([ran[0]["test_multi_line"]])
    (summary,) = re.findall(r"<summary>(.*?)</summary>", html, re.DOTALL)
    assert "<code>AssertionError: first line</code>" in summary
    assert "second line" not in summary
    block = html.split("</summary>", 1)[1]
    first = block.index("AssertionError: first line")
    assert first < block.index("  second line") < block.index("  third")
    assert block.index("  third") < block.index("assert 2 == 3")


def test_the_run_page_search_finds_the_author_s_message(ran) -> None:
    by_name = ran[0]
    view = results.select(
        [
            results.bucketed(
                (JOB.name, t) for t in (by_name["test_bare"], by_name["test_multi_line"])
            )
        ],
        q="second line",
    )
    assert [t.node_id for t in view.failed] == [by_name["test_multi_line"].node_id]


def test_the_slack_summary_leads_with_the_message_and_escapes_it(ran) -> None:
    by_name = ran[0]
    failures = (
        Failure(by_name["test_markdown"].node_id, by_name["test_markdown"].headline),
        Failure(by_name["test_message"].node_id, by_name["test_message"].headline),
    )
    message = slack_summary(
        repo="o/r",
        number=7,
        title="t",
        pull_url="https://github.test/o/r/pull/7",
        run_url=RUN_URL,
        results=[JobResult(JOB, "failed", failed=2, failures=failures)],
        sha=SHA,
    )
    text = message["blocks"][0]["text"]["text"]
    assert "AssertionError: @team see" in text
    assert "<b>" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text
    assert "<http://evil" not in text
    line = next(ln for ln in text.splitlines() if JOB.name in ln)
    assert line.count("`") % 2 == 0  # every code span it opens, it closes
    assert "test_cases.py::test_markdown" in line


def test_the_comment_leads_with_the_message(ran) -> None:
    test = ran[0]["test_message"]
    body = render_comment(
        marker="<!-- m -->",
        selection=SELECTION,
        run_url=RUN_URL,
        phase="finished",
        results=[
            JobResult(JOB, "failed", failed=1, failures=(Failure(test.node_id, test.headline),))
        ],
        sha=SHA,
    )
    block = body.split("```", 2)[1]
    lines = block.strip("\n").splitlines()
    assert lines == [f"{test.node_id} [single-gpu]", "    AssertionError: the reason"]


def test_what_a_finished_job_stores_for_the_comment_is_the_headline(ran, tmp_path: Path) -> None:
    from handlers.slow_ci.report import job_result

    test = ran[0]["test_message"]
    store = Store(str(tmp_path / "bot.sqlite3"))
    try:
        now = time.time()
        run_id, _ = store.call_sync(
            lambda conn: jobs_store.insert_run(
                conn,
                kind="slow_ci",
                repo="o/r",
                number=7,
                head_sha=SHA,
                base_ref="main",
                requested_by="alice",
                requested_at=now,
                private=True,
                runner="local",
                spec={},
                jobs=[(JOB.name, {"folder": JOB.folder, "machine_type": JOB.machine_type})],
                key=None,
                now=now,
            )
        )
        (job,) = store.call_sync(lambda conn: jobs_store.read_jobs(conn, run_id))
        outcome = JobOutcome("failed", failed=1, tests=(test,))
        store.call_sync(lambda conn: jobs_store.finish_job(conn, job.id, outcome, JobLimits(), now))
        (job,) = store.call_sync(lambda conn: jobs_store.read_jobs(conn, run_id))
    finally:
        store.close()
    assert job_result(job).failures == (Failure(test.node_id, "AssertionError: the reason"),)
