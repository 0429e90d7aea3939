"""The pure parts of the pages: which results a page shows, the chart's geometry, and the
renderer's escaping and secret scrubbing."""

from __future__ import annotations

import pytest

from bot.jobs.records import JobRecord
from bot.jobs.runners.junit import TestResult
from bot.logs import add_secret
from bot.web import chart, render, results


def _results(n_failed: int, n_skipped: int, n_passed: int) -> list[tuple[str, TestResult]]:
    out = [
        ("a", TestResult(f"t.py::test_f{i}", "failed", message=f"boom {i}"))
        for i in range(n_failed)
    ]
    out += [
        ("a", TestResult(f"t.py::test_s{i}", "skipped", message="no GPU")) for i in range(n_skipped)
    ]
    out += [("b", TestResult(f"t.py::test_p{i}", "passed")) for i in range(n_passed)]
    return out


def _select(pairs, **options):
    return results.select([results.bucketed(pairs)], **options)


def test_failures_come_first_then_skips_then_passes_across_pages():
    mixed = _results(3, 2, 10)
    mixed.reverse()  # passes first in the input: the page still leads with failures
    view = _select(mixed, page_size=4)
    assert [t.node_id for t in view.failed] == ["t.py::test_f2", "t.py::test_f1", "t.py::test_f0"]
    assert len(view.skipped) == 1 and view.passed == ()
    assert (view.pages, view.total, view.failed_total, view.passed_total) == (4, 15, 3, 10)
    last = _select(mixed, page=4, page_size=4)
    assert len(last.passed) == 3 and last.failed == ()


def test_a_page_past_the_end_shows_the_last_page():
    view = _select(_results(1, 0, 5), page=99, page_size=2)
    assert view.page == view.pages == 3


def test_the_filter_matches_names_and_messages_and_keeps_itself_in_page_links():
    view = _select(_results(3, 2, 10), q="BOOM 1", page_size=1)
    assert [t.node_id for t in view.failed] == ["t.py::test_f1"]
    assert view.matched == 1
    view = _select(_results(3, 2, 10), q="test_p", outcome="passed", page_size=3)
    assert view.matched == 10 and view.pages == 4
    assert view.link(2) == "?q=test_p&outcome=passed&page=2#tests"


def test_an_unknown_outcome_filter_shows_everything():
    assert _select(_results(1, 1, 1), outcome="<script>").outcome == "all"


@pytest.mark.parametrize("text, page", [("3", 3), ("0", 1), ("-4", 1), ("x", 1), (None, 1)])
def test_page_numbers_from_the_query_are_forgiving(text, page):
    assert results.page_number(text) == page


def _job(job_id: int, folder: str, state: str, busy: float | None) -> JobRecord:
    return JobRecord(
        id=job_id,
        run_id=job_id,
        kind="slow_ci",
        name=folder.rsplit("/", 1)[-1],
        spec={"folder": folder},
        state=state,
        attempts=1,
        passed=1,
        failed=0,
        skipped=0,
        errors=0,
        duration_s=busy,
        busy_s=busy,
        reason=None,
        failures=(),
        failed_tests=(),
        tested_sha=None,
        exit_code=0,
        timings={},
        created_at=0.0,
        started_at=None,
        finished_at=None,
    )


def test_the_chart_has_a_row_per_folder_with_bars_oldest_left_and_a_pass_rate():
    jobs = [
        _job(1, "tests/models/bert", "passed", 10.0),
        _job(2, "tests/models/bert", "failed", 20.0),
        _job(3, "tests/models/gpt2", "passed", 5.0),
        _job(4, "tests/models/bert", "passed", 40.0),
        _job(5, "tests/models/gpt2", "cancelled", None),  # never ran: not drawn
    ]
    drawn = chart.folder_chart(jobs)
    assert [row.folder for row in drawn.rows] == ["tests/models/bert", "tests/models/gpt2"]
    bert = drawn.rows[0]
    assert [bar.outcome for bar in bert.bars] == ["passed", "failed", "passed"]
    assert bert.bars[0].x < bert.bars[1].x < bert.bars[2].x
    assert bert.bars[2].height > bert.bars[1].height > bert.bars[0].height  # 40 s is the tallest
    assert bert.pass_rate == pytest.approx(2 / 3)
    assert drawn.rows[1].runs == 1 and drawn.slowest_s == 40.0
    assert all(bar.y + bar.height <= drawn.height for row in drawn.rows for bar in row.bars)


def test_the_chart_keeps_the_newest_runs_and_the_busiest_folders():
    jobs = [_job(i, "tests/models/bert", "passed", float(i)) for i in range(1, 31)]
    jobs += [_job(100 + i, f"tests/models/m{i}", "passed", 1.0) for i in range(20)]
    drawn = chart.folder_chart(jobs, runs=20, folders=5)
    assert len(drawn.rows) == 5 and drawn.rows[0].folder == "tests/models/bert"
    assert drawn.rows[0].bars[0].title.startswith("run 11:")
    assert chart.folder_chart([]).empty


def test_values_are_escaped_and_secrets_scrubbed_on_every_page():
    add_secret("configured-secret-value")  # what the pages' set-up does with Settings.secrets
    add_secret("ghs_minted_installation_token")
    html = render.render(
        "error.html",
        nav={
            "handle": "bot",
            "viewer": _Viewer(),
            "csrf": "",
            "web_url": "",
            "public_url": "",
            "here": "/",
        },
        refresh=None,
        code=404,
        reason="Not Found",
        message="<script>alert(1)</script> configured-secret-value ghs_minted_installation_token",
    )
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "configured-secret-value" not in html and "ghs_minted_installation_token" not in html
    assert html.count("***") == 2


def test_help_backticks_become_code_and_nothing_else_is_markup():
    assert str(render._code_spans("run `run-slow: <b>` now")) == (
        "run <code>run-slow: &lt;b&gt;</code> now"
    )
    assert str(render._code_spans("one ` alone")) == "one ` alone"


class _Viewer:
    login = None
    operator = False
    via = "anonymous"


def test_durations_read_as_people_say_them():
    assert render._duration(None) == "-"
    assert render._duration(4.25) == "4.2 s"
    assert render._duration(125) == "2 min 05 s"
    assert render._duration(3 * 3600 + 60) == "3 h 01 min"
