"""The pages in a real browser: headless Chromium loads the page of a run made by a real
`run-slow` through the sandbox, and the overview with its chart; screenshots of both are kept
under var/test-artifacts/ for a person to look at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.browser import count_colour, dump_dom, screenshot, tables

REPO = "acme/models"
PAST = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
FILES = {
    "README.md": "toy\n",
    ".github/bot.toml": "[slow_ci]\nreminder = false\n",
    "tests/models/toy/test_toy.py": (
        "import pytest\n\n\ndef test_one():\n    assert 1 + 1 == 2\n\n\n"
        "def test_two():\n    assert 'a' * 2 == 'aa'\n\n\n"
        "@pytest.mark.skip(reason='needs a bigger machine')\ndef test_big():\n    pass\n"
    ),
    "tests/models/broken/test_broken.py": (
        "def test_sums():\n    assert 6 == 7\n\n\ndef test_fine():\n    pass\n"
    ),
}
#: GitHub's green, the colour of passed bars in the chart.
GREEN = (0x2D, 0xA4, 0x4E)
RED = (0xCF, 0x22, 0x2E)


@pytest.fixture
async def finished_run(harness):
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"}, pushed_at=PAST)
    harness.github.commit(
        REPO, "feature", {"src.py": "x = 1\n"}, author="carol", date=PAST, pushed_at=PAST
    )
    number = harness.github.open_pull(REPO, "feature", author="carol", title="Add <b>toy</b>")
    payload = harness.github.issue_comment_payload(REPO, number, "run-slow: toy, broken", "maint")
    assert (await harness.deliver("issue_comment", payload)).status == 202
    await harness.settle()
    await harness.settle_runs()
    (run,) = await harness.runtime.jobs.runs_of(REPO, number)
    return run, await harness.runtime.jobs.jobs_of(run.id)


async def test_a_finished_runs_page_shows_its_real_counts_in_the_browser(harness, finished_run):
    run, jobs = finished_run
    url = f"{harness.url}/runs/{run.id}"
    dom = await dump_dom(url)
    job_table = tables(dom)[0]
    header, *rows = job_table
    assert header[:6] == ["folder", "machine", "state", "passed", "failed", "skipped"]
    by_key = {(row[0], row[1]): row for row in rows if len(row) == 8}
    single_toy = by_key[("models/toy", "single-gpu")]
    single_broken = by_key[("models/broken", "single-gpu")]
    assert single_toy[2:6] == ["passed", "2", "0", "1"]
    assert single_broken[2:6] == ["failed", "1", "1", "0"]
    # The totals row adds up what the job system recorded from the JUnit files.
    totals = next(row for row in rows if row[0] == "total")
    assert totals[1:4] == [
        str(sum(j.passed for j in jobs)),
        str(sum(j.failed + j.errors for j in jobs)),
        str(sum(j.skipped for j in jobs)),
    ]
    assert "tests/models/broken/test_broken.py::test_sums" in dom
    assert "assert 6 == 7" in dom
    assert "needs a bigger machine" in dom  # the skip's reason
    assert "Add &lt;b&gt;toy&lt;/b&gt;" in dom  # the title is text, not markup
    shot = await screenshot(url, "run-page")
    assert count_colour(shot, RED) > 0  # the failed state is drawn in red


async def test_the_overview_draws_the_chart_of_the_last_runs(harness, finished_run):
    dom = await dump_dom(f"{harness.url}/")
    assert '<svg id="folder-chart"' in dom
    assert dom.count('class="passed"') >= 1 and 'rect class="failed"' in dom
    shot = await screenshot(f"{harness.url}/", "overview")
    assert count_colour(shot, GREEN) > 50  # bars and pass-rate bars, drawn
