"""The pages through the real server: runs in every state, unknown ids, hostile text, who may
see what, and the operator's replay behind its CSRF token."""

from __future__ import annotations

import re

import aiohttp
import pytest

from bot.jobs.records import JobLimits
from bot.jobs.runners.junit import TestResult
from tests.support.seed_runs import results_for, write_run

HTML = {"Accept": "text/html"}


@pytest.fixture
async def web(harness):
    """The harness with its job system stopped, so seeded runs stay in the state written."""
    await harness.runtime.jobs.stop()
    return harness


async def _seed(harness, **fields) -> int:
    return await harness.runtime.store.call(lambda conn: write_run(conn, **fields), single=True)


async def _get(harness, path: str, **kw) -> tuple[int, str, aiohttp.ClientResponse]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(harness.url + path, allow_redirects=False, **kw) as response,
    ):
        return response.status, await response.text(), response


@pytest.mark.parametrize("state", ["queued", "running", "finished", "cancelled", "error"])
async def test_a_run_page_in_every_state(web, state):
    jobs = [("tests/models/bert", results_for("tests/models/bert", 5, failed=1, skipped=1))]
    run_id = await _seed(web, state=state, jobs=jobs, title="Add BERT")
    status, text, response = await _get(web, f"/runs/{run_id}")
    assert status == 200, text
    assert response.content_type == "text/html"
    assert f"Slow tests, run {run_id}" in text and "Add BERT" in text
    assert f'<span class="state {state}">{state}</span>' in text
    live = state in ("queued", "running")
    assert ('http-equiv="refresh"' in text) is live
    assert ("jobs done" in text) is live
    if state == "finished":
        assert "Failures (1)" in text and "Skipped (1)" in text and "Passed (3)" in text
        assert "assert 0 == 1" in text
    if state in ("cancelled", "error"):
        assert "stopped by a newer run-slow" in text or "the checkout failed" in text
    # Every PR, commit and user is a link to the configured GitHub.
    gh = web.settings.github_web_url
    assert f'href="{gh}/acme/models/pull/7"' in text
    assert f'href="{gh}/acme/models/commit/{"a" * 40}"' in text
    assert f'href="{gh}/maint"' in text


async def test_a_live_run_shows_an_estimate_from_the_same_folders_past(web):
    jobs = [("tests/models/bert", results_for("tests/models/bert", 2))]
    await _seed(web, state="finished", jobs=jobs)
    run_id = await _seed(web, state="queued", jobs=jobs)
    _, text, _ = await _get(web, f"/runs/{run_id}")
    assert "0 of 1 jobs done" in text
    assert "left, from the last runs of these folders" in text


@pytest.mark.parametrize("path", ["/runs/999", "/runs/abc", "/runs/0", "/runs/1/jobs/999/log"])
async def test_an_unknown_id_is_a_404_page(web, path):
    status, text, response = await _get(web, path, headers=HTML)
    assert status == 404
    assert response.content_type == "text/html"
    assert "404 Not Found" in text and "Back to the overview" in text


async def test_hostile_titles_and_test_names_are_text(web):
    evil = "<script>alert('x')</script>"
    tests = [
        TestResult(f"tests/x.py::test_{evil}", "failed", message=f"boom {evil}", traceback=evil),
        TestResult("tests/x.py::test_ok", "passed"),
    ]
    run_id = await _seed(web, title=f"Fix {evil}", jobs=[("tests/models/x", tests)])
    _, text, response = await _get(web, f"/runs/{run_id}")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


async def test_fifty_thousand_results_are_paged_with_failures_first(web):
    jobs = [
        (f"tests/models/m{i}", results_for(f"tests/models/m{i}", 2500, failed=2 if i == 3 else 0))
        for i in range(20)
    ]
    run_id = await _seed(web, jobs=jobs, limits=JobLimits(results_bytes=256 * 1024 * 1024))
    _, text, _ = await _get(web, f"/runs/{run_id}")
    assert "50000 of 50000 tests, page 1 of 100" in text
    assert text.index("Failures (2)") < text.index("Passed (")
    assert len(text) < 1_000_000
    _, last, _ = await _get(web, f"/runs/{run_id}?page=100")
    assert "page 100 of 100" in last and "Failures" not in last
    _, filtered, _ = await _get(web, f"/runs/{run_id}?outcome=failed")
    assert "2 of 50000 tests" in filtered


async def test_the_log_page_shows_the_tail_and_downloads_the_whole_log_with_no_secret(web):
    secret = web.settings.webhook_secret
    log = "".join(f"line {i}\n" for i in range(60000)) + f"leaked {secret}\nthe end\n"
    run_id = await _seed(web, log=log)
    (job,) = await web.runtime.jobs.jobs_of(run_id)
    status, text, _ = await _get(web, f"/runs/{run_id}/jobs/{job.id}/log")
    assert status == 200
    assert "the end" in text and "line 0\n" not in text and "The whole log" in text
    assert secret not in text and "leaked ***" in text
    _, whole, response = await _get(web, f"/runs/{run_id}/jobs/{job.id}/log?format=text&download=1")
    assert whole.startswith("line 0\n") and secret not in whole
    assert response.content_type == "text/plain"
    assert "attachment" in response.headers["Content-Disposition"]


async def test_the_runs_list_filters_and_pages(web):
    for number in range(1, 56):
        await _seed(web, number=number, state="finished" if number % 2 else "error")
    await _seed(web, repo="acme/other", number=3)
    _, text, _ = await _get(web, "/runs")
    assert text.count("<tr>") == 51  # a header and 50 runs
    older = re.search(r'href="(/runs\?before=\d+)"', text)
    assert older, "no link to the next page"
    _, rest, _ = await _get(web, older.group(1).replace("&amp;", "&"))
    assert rest.count("<tr>") == 7
    _, only, _ = await _get(web, "/runs?repo=acme/other")
    assert only.count("<tr>") == 2 and "acme/other#3" in only
    _, errors, _ = await _get(web, "/runs?repo=acme/models&pr=%234")
    assert errors.count("<tr>") == 2 and "acme/models#4" in errors
    _, errored, _ = await _get(web, "/runs?state=error")
    assert errored.count("<tr>") == 28


async def test_help_is_html_to_a_browser_and_json_otherwise(web):
    status, text, response = await _get(web, "/help", headers=HTML)
    assert status == 200 and response.content_type == "text/html"
    assert "run-slow" in text and "<code>" in text
    status, text, response = await _get(web, "/help")
    assert response.content_type == "application/json"
    assert '"features"' in text


async def test_the_overview_shows_runs_machines_deliveries_and_the_chart(web):
    jobs = [("tests/models/bert", results_for("tests/models/bert", 3, failed=1))]
    await _seed(web, jobs=jobs)
    await _seed(web, state="running", title="Still going")
    status, text, _ = await _get(web, "/")
    assert status == 200
    assert "Still going" in text and "no GPU on this machine" in text
    assert '<svg id="folder-chart"' in text and 'rect class="failed"' in text
    assert "Sign in as an operator" in text  # anonymous: no delivery list
