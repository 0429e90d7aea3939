"""The benchmark pages through the real server: the JSON export for dashboards, the same rows
as CSV, and the chart of each metric along the default branch's commits.

Results are seeded straight into the store with `record_results`, each under a run of its own,
as the benchmarks feature records them. Who may see them is asked as for run pages: a private
repository's results are a 404 to anyone who may not read it, alike for what exists and what
does not; operators and the admin token see everything. Metric names are what a benchmark
wrote, so hostile ones are seeded too.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from multidict import MultiDict

from bot.store import benchmarks as benchmarks_db
from bot.store.benchmarks import BenchmarkResult, BranchRows
from bot.web import benchmarks
from tests.e2e.conftest import PAGES_ADMIN
from tests.sandbox.harness import Harness
from tests.support.browser import count_colour, dump_dom, screenshot
from tests.support.seed_runs import benchmark_run

AUTH = {"Authorization": f"Bearer {PAGES_ADMIN}"}
HTML = {"Accept": "text/html"}
OPEN = "acme/open"
SECRET = "acme/secret"
DAY = 86_400.0
#: 2024-05-01T00:00:00Z, and a time late that evening
MAY_1 = 1_714_521_600.0
LATE_MAY_1 = MAY_1 + 22 * 3600


async def _record(
    harness: Harness,
    repo: str,
    sha: str,
    at: float,
    metrics: dict[str, tuple[float, ...]],
    *,
    branch: str = "main",
    number: int | None = None,
    private: bool = False,
    regression: tuple[str, ...] = (),
    unit: str = "ms",
    machine_type: str = "single-gpu",
) -> int:
    """One run that measured `sha`, and its results as the benchmarks feature records them."""

    def write(conn) -> int:
        run_id = benchmark_run(conn, repo=repo, sha=sha, at=at, number=number, private=private)
        benchmarks_db.record_results(
            conn,
            [
                BenchmarkResult(
                    repo=repo,
                    sha=sha,
                    branch=branch,
                    machine_type=machine_type,
                    metric=metric,
                    unit=unit,
                    values=values,
                    run_id=run_id,
                    pull_number=number,
                    recorded_at=at,
                    regression=metric in regression,
                )
                for metric, values in metrics.items()
            ],
        )
        return run_id

    return await harness.runtime.store.call(write)


async def _get(
    harness: Harness, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(harness.url + path, headers=headers, allow_redirects=False) as response,
    ):
        return response.status, await response.text(), response.headers


async def _json(harness: Harness, path: str, headers: dict[str, str] | None = None) -> dict:
    status, text, response_headers = await _get(harness, path, headers)
    assert status == 200, text
    assert response_headers["Content-Type"].startswith("application/json")
    return json.loads(text)


def _sha(n: int) -> str:
    return f"{n:040x}"


@pytest.fixture
async def history(pages_bot):
    """acme/open: a push to `master` (its default branch before it was renamed), then three
    pushes to main a day apart (the third a regression of `latency`), and a pull request
    measured between the second and the third."""
    runs = [
        await _record(
            pages_bot, OPEN, _sha(0xB), MAY_1 - 3 * DAY, {"latency": (50.0,)}, branch="master"
        )
    ]
    for k, (latency, throughput) in enumerate(((10.0, 100.0), (10.2, 101.0), (13.0, 99.0))):
        runs.append(
            await _record(
                pages_bot,
                OPEN,
                _sha(k + 1),
                MAY_1 - DAY + k * DAY + 3600,
                {
                    "latency": (latency - 0.1, latency, latency + 0.3),
                    "throughput": (throughput, throughput + 1.0, throughput - 1.0),
                },
                regression=("latency",) if k == 2 else (),
                unit="ms",
            )
        )
        if k == 1:
            runs.append(
                await _record(
                    pages_bot,
                    OPEN,
                    _sha(0xF00),
                    MAY_1 + 7200,
                    {"latency": (9.0, 9.5, 9.1)},
                    branch="faster",
                    number=42,
                )
            )
    return runs


# ---------------------------------------------------------------------- the JSON export


async def test_the_json_export_gives_every_repeat_with_its_commit_run_and_time(pages_bot, history):
    found = await _json(pages_bot, f"/benchmarks/{OPEN}.json")
    assert found["repo"] == OPEN and found["limit"] == benchmarks.DEFAULT_LIMIT
    assert found["count"] == len(found["results"]) == 8 and found["truncated"] is False
    first = found["results"][1]  # the first on main
    assert first == {
        "repo": OPEN,
        "sha": _sha(1),
        "branch": "main",
        "machine_type": "single-gpu",
        "metric": "latency",
        "unit": "ms",
        "values": [9.9, 10.0, 10.3],
        "median": 10.0,
        "run_id": history[1],
        "pull_number": None,
        "recorded_at": "2024-04-30T01:00:00.000Z",
        "regression": False,
    }
    times = [row["recorded_at"] for row in found["results"]]
    assert times == sorted(times)  # oldest first
    pull = [row for row in found["results"] if row["pull_number"] is not None]
    assert [(p["pull_number"], p["sha"], p["branch"]) for p in pull] == [
        (42, _sha(0xF00), "faster")
    ]
    flagged = [(row["sha"], row["metric"]) for row in found["results"] if row["regression"]]
    assert flagged == [(_sha(3), "latency")]


async def test_the_json_export_filters_by_metric_branch_dates_and_limit(pages_bot, history):
    async def rows(**params: str | list[str]) -> list[tuple[str, str]]:
        query = urlencode(params, doseq=True)
        found = await _json(pages_bot, f"/benchmarks/{OPEN}.json?{query}")
        return [(row["sha"][-3:], row["metric"]) for row in found["results"]]

    throughput = await rows(metric="throughput")
    assert throughput == [("001", "throughput"), ("002", "throughput"), ("003", "throughput")]
    both = await rows(metric=["throughput", "latency"], branch="main")
    assert len(both) == 6 and both[:2] == [("001", "latency"), ("001", "throughput")]
    assert await rows(branch="master") == [("00b", "latency")]
    # A date alone covers its whole day: until=May 1 takes in its evening.
    may_1 = await rows(since="2024-05-01", until="2024-05-01", metric="latency")
    assert may_1 == [("002", "latency"), ("f00", "latency")]
    assert await rows(since=str(int(MAY_1 + 7000)), until="2024-05-01T23:00:00+00:00") == [
        ("f00", "latency")
    ]
    assert await rows(since="2024-04-29", until="2024-04-30T12:00:00Z") == [
        ("001", "latency"),
        ("001", "throughput"),
    ]
    found = await _json(pages_bot, f"/benchmarks/{OPEN}.json?limit=2")
    assert found["truncated"] is True and found["count"] == 2
    assert [row["sha"] for row in found["results"]] == [_sha(3), _sha(3)]  # the newest two
    assert await rows(metric="no-such-metric") == []


BAD = (
    ("since=yesterday", "?since= takes a date or time in ISO 8601"),
    ("until=2024-13-01", "?until= takes a date or time in ISO 8601"),
    ("since=1e9", "?since= takes a date or time"),
    ("since=99999999999999", "?since= takes a date or time"),
    ("since=2024-05-02&until=2024-05-01", "?since= is later than ?until="),
    ("limit=0", "?limit= is a whole number from 1 to 10000"),
    ("limit=10001", "?limit= is a whole number from 1 to 10000"),
    ("limit=ten", "?limit= is a whole number from 1 to 10000"),
    ("limit=-5", "?limit= is a whole number"),
    ("metric=" + "m" * 501, "A ?metric= is at most 500 characters long."),
    (urlencode([("metric", f"m{i}") for i in range(51)]), "At most 50 metrics at once"),
    ("branch=" + "b" * 501, "?branch= is at most 500 characters long."),
)


@pytest.mark.parametrize(("query", "says"), BAD)
async def test_a_bad_parameter_is_a_400_that_says_why(pages_bot, history, query, says):
    status, text, headers = await _get(pages_bot, f"/benchmarks/{OPEN}.json?{query}")
    assert status == 400 and headers["Content-Type"].startswith("application/json")
    error = json.loads(text)
    assert error["status"] == 400 and says in error["error"], error
    status, text, _ = await _get(pages_bot, f"/benchmarks/{OPEN}.csv?{query}")
    assert status == 400 and says in text
    status, text, _ = await _get(pages_bot, f"/benchmarks/{OPEN}?{query}", HTML)
    assert status == 400 and "<html" in text  # the chart's page takes the same filters


# ---------------------------------------------------------------------- who may see them


@pytest.fixture
async def browser():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _sign_in(harness: Harness, session: aiohttp.ClientSession, login: str) -> None:
    harness.github.sign_in_as(login)
    async with session.get(f"{harness.url}/login?next=/", headers=HTML) as response:
        assert response.status == 200 and "signed in as" in await response.text()


PATHS = ("/benchmarks/{repo}.json", "/benchmarks/{repo}.csv", "/benchmarks/{repo}")


async def _answers(
    session: aiohttp.ClientSession, url: str, repo: str, headers: dict[str, str] | None = None
) -> list[tuple[int, str]]:
    out = []
    for path in PATHS:
        async with session.get(
            url + path.format(repo=repo), headers=headers or HTML, allow_redirects=False
        ) as response:
            out.append((response.status, await response.text()))
    return out


async def test_a_private_repositorys_benchmarks_are_a_404_like_a_missing_ones(pages_bot, browser):
    run_id = await _record(
        pages_bot, SECRET, _sha(7), MAY_1, {"secret_latency": (1.0, 2.0)}, private=True
    )
    hidden = await _answers(browser, pages_bot.url, SECRET)
    missing = await _answers(browser, pages_bot.url, "acme/nothing")
    for (status, text), (missing_status, missing_text) in zip(hidden, missing, strict=True):
        assert status == missing_status == 404
        assert "secret_latency" not in text and _sha(7) not in text
        assert text == missing_text.replace("acme/nothing", SECRET)
    await _sign_in(pages_bot, browser, "stranger")  # signed in, may not read it: 404 still
    for status, text in await _answers(browser, pages_bot.url, SECRET):
        assert status == 404 and "secret_latency" not in text
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as reader:
        await _sign_in(pages_bot, reader, "maint")
        shown = await _answers(reader, pages_bot.url, SECRET)
    assert [status for status, _ in shown] == [200, 200, 200]
    assert json.loads(shown[0][1])["results"][0]["run_id"] == run_id
    assert "secret_latency" in shown[1][1] and "secret_latency" in shown[2][1]
    async with aiohttp.ClientSession() as script:  # the admin token sees it, and so do operators
        by_token = await _answers(script, pages_bot.url, SECRET, AUTH)
        assert [status for status, _ in by_token] == [200, 200, 200]
        wrong = await _answers(script, pages_bot.url, SECRET, {"Authorization": "Bearer wrong"})
        assert [status for status, _ in wrong] == [401, 401, 401]
        assert json.loads(wrong[0][1])["status"] == 401
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as operator:
        await _sign_in(pages_bot, operator, "ops")
        assert [s for s, _ in await _answers(operator, pages_bot.url, SECRET)] == [200, 200, 200]


async def test_a_public_repositorys_benchmarks_need_no_sign_in(pages_bot, history):
    async with aiohttp.ClientSession() as anonymous:
        assert [s for s, _ in await _answers(anonymous, pages_bot.url, OPEN)] == [200, 200, 200]


# ---------------------------------------------------------------------- the CSV export


async def test_the_csv_is_a_download_of_the_same_rows_safe_from_formula_injection(pages_bot):
    hostile = ('=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "plain")
    await _record(
        pages_bot,
        OPEN,
        _sha(1),
        MAY_1,
        dict.fromkeys(hostile, (1.5, -0.25, 2.0)),
        unit="=1+1",
        regression=("plain",),
    )
    status, text, headers = await _get(pages_bot, f"/benchmarks/{OPEN}.csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert headers["Content-Disposition"] == 'attachment; filename="acme-open-benchmarks.csv"'
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == list(benchmarks.CSV_COLUMNS)
    by_metric = {line[4]: dict(zip(lines[0], line, strict=True)) for line in lines[1:]}
    assert set(by_metric) == {
        '\'=HYPERLINK("http://evil")',
        "'+1+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tcmd",
        "plain",
    }
    plain = by_metric["plain"]
    assert plain["unit"] == "'=1+1"
    assert plain["values"] == "1.5;-0.25;2.0" and plain["median"] == "1.5"
    assert plain["regression"] == "true" and plain["pull_number"] == ""
    assert plain["recorded_at"] == "2024-05-01T00:00:00.000Z" and plain["sha"] == _sha(1)
    json_rows = (await _json(pages_bot, f"/benchmarks/{OPEN}.json"))["results"]
    assert len(json_rows) == len(lines) - 1  # the same rows as the JSON


# ---------------------------------------------------------------------- the chart


def _panels(page: str) -> dict[str, str]:
    """Each chart's SVG by the metric its heading names."""
    found = re.findall(r"<h2>(.*?) <span.*?</h2>\s*(<svg class=\"bench\".*?</svg>)", page, re.S)
    return dict(found)


def _points(attribute: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in pair.split(",")) for pair in attribute.split()]


async def test_the_chart_draws_each_commit_marks_pull_requests_and_links_regressions(
    pages_bot, history
):
    status, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}", HTML)
    assert status == 200
    assert "3 commits of <code>main</code>" in page  # the branch measured last, not `master`
    panels = _panels(page)
    assert set(panels) == {"latency", "throughput"}
    latency = panels["latency"]
    line = _points(re.search(r'<polyline class="series" points="([^"]*)"', latency)[1])
    band = _points(re.search(r'<polygon class="band" points="([^"]*)"', latency)[1])
    assert len(line) == 3 and len(band) == 6
    xs = [x for x, _ in line]
    assert xs == sorted(xs)  # commit order, oldest left
    # The medians 10.0, 10.2, 13.0: a larger value is drawn higher (a smaller y).
    assert line[0][1] > line[1][1] > line[2][1]
    dots = re.findall(r'<a href="/runs/(\d+)"><circle class="point"', latency)
    assert dots == [str(history[1]), str(history[2]), str(history[4])]
    web = pages_bot.runtime.settings.github_web_url
    regressions = re.findall(r'<a href="([^"]+)"><circle class="regression"', latency)
    assert regressions == [f"{web}/{OPEN}/commit/{_sha(3)}"]
    listed = re.search(r'<p class="bench-regressions">(.*?)</p>', page, re.S)[1]
    assert f'href="{web}/{OPEN}/commit/{_sha(3)}"' in listed
    assert f'<a href="/runs/{history[4]}">run {history[4]}</a>' in listed
    pulls = re.findall(r'<a href="/runs/(\d+)"><path class="pull" d="M(\d+) ', latency)
    assert [run for run, _ in pulls] == [str(history[3])]
    # Measured after the second commit and before the third: drawn between them.
    assert xs[1] < int(pulls[0][1]) < xs[2]
    assert "#42" in latency
    assert '<circle class="regression"' not in panels["throughput"]
    assert "<script" not in page


async def test_the_metric_selector_narrows_the_chart_and_the_branch_can_be_chosen(
    pages_bot, history
):
    status, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}?metric=throughput", HTML)
    assert status == 200 and set(_panels(page)) == {"throughput"}
    assert '<input type="checkbox" name="metric" value="throughput" checked>' in page
    assert '<input type="checkbox" name="metric" value="latency">' in page
    assert '<option value="master">master</option>' in page  # another branch to choose
    status, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}?branch=master", HTML)
    assert "1 commit of <code>master</code>" in page and set(_panels(page)) == {"latency"}


async def test_the_empty_states_say_what_fills_the_page(pages_bot):
    status, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}", AUTH)  # nothing recorded
    assert status == 200 and "No benchmark results are recorded for acme/open yet" in page
    assert "<svg" not in page
    await _record(pages_bot, OPEN, _sha(1), MAY_1, {"latency": (1.0,)}, number=3, branch="x")
    status, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}", HTML)
    assert status == 200 and "has benchmark results of pull requests only" in page
    await _record(pages_bot, OPEN, _sha(2), MAY_1 + 60, {"latency": (1.0,)})
    status, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}?metric=nothing", HTML)
    assert status == 200 and "No results of the chosen metrics on main." in page


async def test_a_new_result_is_drawn_at_the_next_view(pages_bot):
    await _record(pages_bot, OPEN, _sha(1), MAY_1, {"latency": (1.0,)})
    _, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}", HTML)
    assert "1 commit of <code>main</code>" in page
    _, again, _ = await _get(pages_bot, f"/benchmarks/{OPEN}", HTML)  # drawn once, kept
    assert again == page
    await _record(pages_bot, OPEN, _sha(2), MAY_1 + 60, {"latency": (2.0,)})
    _, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}", HTML)
    assert "2 commits of <code>main</code>" in page


async def test_each_machine_type_is_a_chart_and_a_run_may_measure_two_commits(pages_bot):
    run_id = await _record(pages_bot, OPEN, _sha(1), MAY_1, {"latency": (1.0,)})

    def more(conn) -> None:  # the same run measured a second commit, and on a second machine
        benchmarks_db.record_results(
            conn,
            [
                BenchmarkResult(
                    OPEN, _sha(2), "main", "single-gpu", "latency", "ms", (2.0,), run_id
                ),
                BenchmarkResult(
                    OPEN, _sha(2), "main", "multi-gpu", "latency", "ms", (3.0,), run_id
                ),
            ],
            now=MAY_1 + 60,
        )

    await pages_bot.runtime.store.call(more)
    status, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}", HTML)
    assert status == 200 and "2 commits of <code>main</code>" in page
    headings = re.findall(r"<h2>latency <span class=\"muted\">ms · ([\w-]+) ·", page)
    assert headings == ["multi-gpu", "single-gpu"]
    panels = re.findall(r'<polyline class="series" points="([^"]*)"', page)
    assert [len(_points(p)) for p in panels] == [1, 2]


SCRIPT = "<script>alert(1)</script>"
LONG = "m" * 10_000


async def test_hostile_metric_names_are_escaped_and_bounded(pages_bot):
    await _record(
        pages_bot,
        OPEN,
        _sha(1),
        MAY_1,
        {SCRIPT: (1.0, 2.0), LONG: (3.0,), '"><b>quoted</b>': (4.0,), "ünï 😀": (5.0,)},
        unit="<i>ms</i>",
        regression=(SCRIPT,),
    )
    status, page, _ = await _get(pages_bot, f"/benchmarks/{OPEN}", HTML)
    assert status == 200
    assert "<script>" not in page and "<b>quoted" not in page and "<i>ms" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "ünï 😀" in page
    assert "m" * (benchmarks.SHOWN_NAME_CHARS + 1) not in page  # cut where printed...
    assert "m" * (benchmarks.SHOWN_NAME_CHARS - 1) + "…" in page
    assert f'value="{"m" * 20}' not in page  # ...and not offered: too long to ask for
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    found = await _json(pages_bot, f"/benchmarks/{OPEN}.json?" + urlencode({"metric": SCRIPT}))
    assert [row["metric"] for row in found["results"]] == [SCRIPT]


#: The colours of the line through the medians, and of a regression's mark.
BLUE, RED = (0x09, 0x69, 0xDA), (0xCF, 0x22, 0x2E)


async def test_a_browser_draws_the_charts_and_runs_no_script_from_a_metric_name(pages_bot, history):
    await _record(pages_bot, OPEN, _sha(9), MAY_1 + 2 * DAY, {SCRIPT: (1.0, 2.0)})
    url = f"{pages_bot.url}/benchmarks/{OPEN}"
    dom = await dump_dom(url)
    # The marks are SVG links in the DOM the browser built; the name stayed text.
    assert len(re.findall(r'<a href="/runs/\d+"><circle class="point"', dom)) == 7
    assert SCRIPT not in dom and "&lt;script&gt;" in dom
    shot = await screenshot(url, "benchmarks", size=(1000, 900))
    assert count_colour(shot, BLUE) > 200  # the lines and dots
    assert count_colour(shot, RED) > 20  # the regression's mark and the legend


# ---------------------------------------------------------------------- pure parts


def test_times_are_iso_dates_or_epoch_seconds_and_a_date_alone_is_its_whole_day():
    assert benchmarks.parse_time("since", "2024-05-01") == MAY_1
    assert benchmarks.parse_time("until", "2024-05-01", end=True) == pytest.approx(MAY_1 + DAY)
    assert benchmarks.parse_time("until", "2024-05-01", end=True) < MAY_1 + DAY
    assert benchmarks.parse_time("since", "2024-05-01T02:00:00+02:00") == MAY_1
    assert benchmarks.parse_time("since", "2024-05-01T00:00:00Z") == MAY_1
    assert benchmarks.parse_time("since", "2024-05-01 00:00") == MAY_1  # naive: UTC
    assert benchmarks.parse_time("since", f"{MAY_1:.3f}") == MAY_1
    for bad in ("", "nan", "inf", "-1", "1e9", "2024-02-30", "tomorrow", "0x10"):
        with pytest.raises(benchmarks.BadQuery):
            benchmarks.parse_time("since", bad)
    iso = benchmarks.iso_time(LATE_MAY_1 + 0.25)
    assert iso == "2024-05-01T22:00:00.250Z"
    assert benchmarks.parse_time("since", iso) == LATE_MAY_1 + 0.25  # what the export writes


def test_a_query_keeps_each_metric_once_and_defaults_its_limit():
    query = benchmarks.parse_query(
        MultiDict([("metric", "a"), ("metric", "b"), ("metric", "a"), ("metric", "")])
    )
    assert query == benchmarks.Query(metrics=("a", "b"), limit=benchmarks.DEFAULT_LIMIT)
    assert benchmarks.parse_query(MultiDict(limit="10000")).limit == benchmarks.MAX_LIMIT


def test_a_cell_that_would_start_a_formula_is_quoted():
    for text in ("=1", "+1", "-1", "@A", "\t=1", "\r=1"):
        assert benchmarks.safe_cell(text) == "'" + text
    assert benchmarks.safe_cell("latency") == "latency" and benchmarks.safe_cell("") == ""
    assert benchmarks.csv_filename('ac"me/re po') == "ac_me-re_po-benchmarks.csv"


def _rows(commits: int, regression_at: int = -1) -> BranchRows:
    n = commits
    return BranchRows(
        metric=("m",) * n,
        unit=("ms",) * n,
        machine_type=("",) * n,
        sha=tuple(_sha(k) for k in range(n)),
        run_id=tuple(range(1, n + 1)),
        recorded_at=tuple(MAY_1 + k for k in range(n)),
        regression=tuple(int(k == regression_at) for k in range(n)),
        summary=tuple((k - 1.0, float(k), k + 1.0, 3) for k in range(n)),
    )


def test_a_thousand_commits_share_positions_and_keep_their_spread_and_regressions():
    drawn = benchmarks.chart(_rows(1000, regression_at=500), (), repo=OPEN, web_url="https://gh")
    (panel,) = drawn.panels
    line = _points(panel.line)
    assert drawn.commits == 1000 and len(line) == benchmarks.MAX_BUCKETS
    assert len(_points(panel.band)) == 2 * benchmarks.MAX_BUCKETS
    assert panel.dots == ()  # too many commits for a dot each
    (regression,) = panel.regressions
    assert (
        regression.sha == _sha(500)
        and regression.commit_url == f"https://gh/{OPEN}/commit/{_sha(500)}"
    )
    band_ys = [y for _, y in _points(panel.band)]
    assert (
        benchmarks.PLOT_TOP
        <= min(band_ys)
        < max(band_ys)
        <= benchmarks.PLOT_TOP + benchmarks.PLOT_H
    )
    few = benchmarks.chart(_rows(5), (), repo=OPEN, web_url="https://gh")
    assert len(few.panels[0].dots) == 5 and len(_points(few.panels[0].line)) == 5


def test_a_commit_measured_again_draws_its_newest_run():
    rows = BranchRows(
        metric=("m", "m"),
        unit=("ms", "ms"),
        machine_type=("", ""),
        sha=(_sha(1), _sha(1)),
        run_id=(4, 9),
        recorded_at=(MAY_1, MAY_1 + 60),
        regression=(0, 0),
        summary=((1.0, 2.0, 3.0, 3), (5.0, 6.0, 7.0, 3)),
    )
    (panel,) = benchmarks.chart(rows, (), repo=OPEN, web_url="https://gh").panels
    assert [dot.href for dot in panel.dots] == ["/runs/9"] and "6 ms" in panel.latest


def test_a_kept_chart_is_drawn_again_when_its_version_changes_or_it_is_old():
    now = [0.0]
    cache = benchmarks.ChartCache(size=2, max_age_s=60, clock=lambda: now[0])
    view = benchmarks.ChartView((), "main", (), benchmarks.Chart())
    key = ("acme/open", None, ())
    cache.put(key, (1, 1), view)
    assert cache.get(key, (1, 1)) is view
    assert cache.get(key, (2, 2)) is None and cache.get(key, (1, 1)) is None  # dropped
    cache.put(key, (1, 1), view)
    now[0] = 61.0
    assert cache.get(key, (1, 1)) is None
    for n in range(3):
        cache.put(("r", None, (str(n),)), 1, view)
    assert cache.get(("r", None, ("0",)), 1) is None  # the least recently shown went first


def test_recorded_times_round_trip_through_the_exports():
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC).timestamp()
    assert benchmarks.iso_time(when) == "2024-05-01T12:30:00.000Z"
    assert abs(time.time() - benchmarks.parse_time("since", str(int(time.time())))) < 2
