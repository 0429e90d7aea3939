"""The pages of scheduled runs through the real server: a schedule's runs with their pass rate,
a scheduled run's comparison and the evidence behind each verdict (re-runs, the previous
commit, the bisect's commits), a test's history as a strip of cells, and the flaky registry.

The content comes from real runs: the sandbox GitHub, real git and real pytest, confined. A
schedule fires on a private repository; a merge breaks a test; the next fire finds it, checks
it and bisects it to that merge; a later merge fixes it. Who may see the pages is asked as for
run pages: a private repository's are a 404 to anyone who may not read it, alike for what
exists and what does not. Hostile test names are seeded straight into the store.
"""

from __future__ import annotations

import html
import json
import re
import zlib
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp
import pytest

from bot.config import Settings
from bot.jobs.runners.junit import TestResult
from bot.store import verdicts as verdicts_db
from bot.store.verdicts import TestInRun, TestVerdict
from bot.web import scheduled
from tests.sandbox.harness import Harness
from tests.support.browser import count_colour, dump_dom, screenshot, tables
from tests.support.scheduled import fire, until_phase
from tests.support.seed_runs import write_scheduled_run
from tests.support.slow_ci import PAST

ADMIN = "admin-token-" + "p" * 24
AUTH = {"Authorization": f"Bearer {ADMIN}"}
HTML = {"Accept": "text/html"}
REPO = "acme/models"
VALUE = "tests/models/toy/test_toy.py::test_value"
STEADY = "tests/models/steady/test_steady.py::test_steady"
FILES = {
    "README.md": "toy\n",
    "tests/models/toy/test_toy.py": (
        "from toy_lib import value\n\n\ndef test_value():\n    assert value() == 2\n\n\n"
        "def test_other():\n    assert True\n"
    ),
    "tests/models/toy/toy_lib.py": "def value():\n    return 2\n",
    "tests/models/toy/conftest.py": (
        "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent))\n"
    ),
    "tests/models/steady/test_steady.py": "def test_steady():\n    assert 1 + 1 == 2\n",
    ".github/bot.toml": (
        '[slow_ci]\nreminder = false\n\n[[scheduled_ci]]\nname = "nightly"\n'
        'cron = "17 2 * * *"\nfolders = ["models/*"]\nmachine_types = ["single-gpu"]\n'
        "reruns = 2\n"
    ),
}


@pytest.fixture
async def bot(tmp_path):
    """A bot with an operator (`ops`), an admin token, the job system running, and a private
    repository with a schedule that `maint` may read."""
    settings = Settings(
        database=str(tmp_path / "bot.sqlite3"),
        retry_base_seconds=0.05,
        operators=("ops",),
        admin_token=ADMIN,
    )
    harness = Harness(tmp_path, settings=settings)
    await harness.start()
    harness.github.create_repo(
        REPO,
        files=FILES,
        private=True,
        collaborators={"maint": "write", "ops": "write"},
        pushed_at=PAST,
    )
    harness.github.add_user("stranger")
    gh = await harness.runtime.services.github.for_installation(None)
    await harness.runtime.scheduler.sync_repo(gh, REPO, None, "main")
    yield harness
    await harness.close()


async def _fire_and_settle(harness: Harness) -> int:
    """Fires `nightly` by hand and waits until its run's analysis is done."""
    row = await fire(harness, REPO, "nightly")
    assert row.run_id is not None, row.note
    await until_phase(harness.runtime, row.run_id, "done")
    return row.run_id


def _merge(harness: Harness, branch: str, files: dict[str, str], author: str) -> tuple[int, str]:
    git = harness.github
    git.commit(REPO, branch, files, author=author)
    number = git.open_pull(REPO, branch, author=author)
    _, merged = git.merge_pull(REPO, number, merged_by="maint")
    return number, merged


@dataclass(frozen=True)
class Story:
    first: int
    second: int
    third: int
    broken: str


@pytest.fixture
async def story(bot) -> Story:
    """Three runs: all pass; a merge among three broke `test_value` (new, bisected to it);
    a later merge fixed it."""
    first = await _fire_and_settle(bot)
    _merge(bot, "docs", {"README.md": "toy, documented\n"}, "dave")
    lib = "tests/models/toy/toy_lib.py"
    _, broken = _merge(bot, "speedup", {lib: "def value():\n    return 3\n"}, "carol")
    _merge(bot, "more-docs", {"README.md": "toy, documented twice\n"}, "dave")
    second = await _fire_and_settle(bot)
    _merge(bot, "fix", {lib: "def value():\n    return 2\n"}, "carol")
    third = await _fire_and_settle(bot)
    return Story(first, second, third, broken)


async def _get(
    harness: Harness, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(harness.url + path, headers=headers, allow_redirects=False) as response,
    ):
        return response.status, await response.text()


def _table(text: str, first_header: str) -> list[list[str]]:
    """The page's table whose header row starts with `first_header`, without that row."""
    found = [t for t in tables(text) if t and t[0] and t[0][0] == first_header]
    assert found, f"no table headed {first_header!r}"
    return found[0][1:]


def _history(test: str, repo: str = REPO) -> str:
    owner, name = repo.split("/")
    return f"/tests/{owner}/{name}?" + urlencode({"test": test})


# ---------------------------------------------------------------------- from real runs


async def test_the_schedule_page_lists_its_runs_with_pass_rate_and_changes(bot, story):
    status, text = await _get(bot, "/schedules/acme/models/nightly", AUTH)
    assert status == 200, text
    rows = _table(text, "run")
    assert [row[0] for row in rows] == [str(story.third), str(story.second), str(story.first)]
    by_run = {int(row[0]): row for row in rows}
    # pass rate, new, still failing, fixed, flaky
    assert by_run[story.first][5:10] == ["100.0% (3/3)", "0", "0", "0", "0"]
    assert by_run[story.second][5:10] == ["66.7% (2/3)", "1", "0", "0", "0"]
    assert by_run[story.third][5:10] == ["100.0% (3/3)", "0", "0", "1", "0"]
    runs = {run.id: run for run in await bot.runtime.jobs.runs_of(REPO, None)}
    gh = bot.settings.github_web_url
    for run_id in (story.first, story.second, story.third):
        assert f'href="{gh}/{REPO}/commit/{runs[run_id].head_sha}"' in text
        # A dot per run on the pass-rate line, linked to the run, oldest left.
        assert f'<a href="/runs/{run_id}"><circle' in text
    dots = [int(m) for m in re.findall(r'<a href="/runs/(\d+)"><circle', text)]
    assert dots == [story.first, story.second, story.third]
    assert '<polyline class="line"' in text and "66.7% passed (2 of 3)" in text
    # The operator's list of schedules links here.
    _, listing = await _get(bot, "/schedules", AUTH)
    assert '<a href="/schedules/acme/models/nightly">nightly</a>' in listing
    assert '<a href="/flaky/acme/models">flaky tests</a>' in listing


async def test_a_scheduled_runs_page_shows_the_verdict_and_the_bisect_behind_it(bot, story):
    status, text = await _get(bot, f"/runs/{story.second}", AUTH)
    assert status == 200, text
    gh = bot.settings.github_web_url
    runs = {run.id: run for run in await bot.runtime.jobs.runs_of(REPO, None)}
    head, previous = runs[story.second].head_sha, runs[story.first].head_sha
    assert f"Scheduled run {story.second}" in text
    assert '<a href="/schedules/acme/models/nightly">nightly</a>' in text
    assert f'Compared with <a href="/runs/{story.first}">run {story.first}</a>' in text
    assert "1 new, 0 still failing, 0 fixed, 0 flaky." in text
    (new,) = _table(text, "test")[:1]
    assert new[0] == VALUE and new[2] == "new" and new[4] == story.broken[:12]
    assert "passes at the previous run's commit" in new[3]
    assert f'<a href="{_history(VALUE).replace("&", "&amp;")}"><code>{VALUE}</code></a>' in text
    assert f'href="{gh}/{REPO}/commit/{story.broken}"' in text

    # The evidence, step by step, as the analysis stored it: each answer's commit and check run.
    (verdict,) = await bot.runtime.services.records.verdicts_of(story.second)
    evidence = [(e["sha"], e["outcome"]) for e in verdict.evidence]
    steps = _table(text, "step")
    assert [row[0] for row in steps[:3]] == [
        "re-run 1 of 2",
        "re-run 2 of 2",
        "the previous run's commit",
    ]
    assert [(row[1], row[2]) for row in steps[:3]] == [
        (head[:12], "failed"),
        (head[:12], "failed"),
        (previous[:12], "passed"),
    ]
    probes = steps[3:]
    assert probes and [row[0] for row in probes] == [
        f"bisect step {i}" for i in range(1, len(probes) + 1)
    ]
    assert [(row[1].split()[0], row[2]) for row in probes] == [
        (sha[:12], outcome) for sha, outcome in evidence[3:]
    ]
    marked = [row for row in probes if row[1].endswith("breaking commit")]
    assert [row[1].split()[0] for row in marked] == [story.broken[:12]]
    # Every check run linked is one of this run's checks, and links back to it.
    checks = {run.id: run for run in runs.values() if run.kind == "scheduled_ci.check"}
    linked = {int(row[3].split()[-1]) for row in steps}
    assert linked and linked <= set(checks)
    assert {checks[i].spec["parent"] for i in linked} == {story.second}
    probe = next(i for i in linked if checks[i].head_sha == story.broken)
    status, check_page = await _get(bot, f"/runs/{probe}", AUTH)
    assert status == 200 and f"Check run {probe}" in check_page
    assert f'checks <a href="/runs/{story.second}">scheduled run {story.second}</a>' in check_page
    assert f"bisect probe at {story.broken[:12]}" in check_page

    _, first_page = await _get(bot, f"/runs/{story.first}", AUTH)
    assert "No earlier finished run of this schedule to compare with" in first_page
    assert "0 new, 0 still failing, 0 fixed, 0 flaky." in first_page
    status, fixed_page = await _get(bot, f"/runs/{story.third}", AUTH)
    assert "0 new, 0 still failing, 1 fixed, 0 flaky." in fixed_page
    assert _table(fixed_page, "test")[0][0] == VALUE


async def test_a_tests_history_is_a_strip_of_its_outcomes_newest_right(bot, story):
    status, text = await _get(bot, _history(VALUE), AUTH)
    assert status == 200, text
    cells = re.findall(r'<a href="/runs/(\d+)"><rect class="(\w+)"', text)
    assert cells == [
        (str(story.first), "passed"),
        (str(story.second), "failed"),
        (str(story.third), "passed"),
    ]
    assert "2 passed" in text and "1 failed" in text and "0 flaky" in text
    changes = _table(text, "run")
    assert [(row[0], row[4], row[5]) for row in changes] == [
        (str(story.third), "fixed", ""),
        (str(story.second), "new", "new"),
    ]
    assert changes[1][7] == story.broken[:12]
    # A test that always passed, and one that never ran.
    _, steady = await _get(bot, _history(STEADY), AUTH)
    assert re.findall(r'<rect class="(\w+)"', steady) == ["passed"] * 3
    _, gone = await _get(bot, _history("tests/models/toy/test_toy.py::test_gone"), AUTH)
    assert re.findall(r'<rect class="(\w+)"', gone) == ["notrun"] * 3
    status, flaky = await _get(bot, "/flaky/acme/models", AUTH)
    assert status == 200 and "No flaky test recorded for acme/models." in flaky


# ---------------------------------------------------------------------- who may see them


@pytest.fixture
async def browser():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _sign_in(harness: Harness, browser: aiohttp.ClientSession, login: str) -> None:
    harness.github.sign_in_as(login)
    async with browser.get(f"{harness.url}/login?next=/", headers=HTML) as response:
        assert response.status == 200 and "signed in as" in await response.text()


PAGES = (
    ("/schedules/acme/models/nightly", "/schedules/acme/nothing/nightly"),
    (_history(VALUE), _history(VALUE, "acme/nothing")),
    ("/flaky/acme/models", "/flaky/acme/nothing"),
)


async def _answers(browser: aiohttp.ClientSession, url: str) -> list[tuple[int, str]]:
    out = []
    for page, missing in PAGES:
        for path in (page, missing):
            async with browser.get(url + path, headers=HTML, allow_redirects=False) as r:
                out.append((r.status, await r.text()))
    return out


async def test_a_private_repositorys_pages_are_a_404_like_a_missing_ones(bot, browser):
    run_id = await _fire_and_settle(bot)
    answers = await _answers(browser, bot.url)  # anonymous
    for (status, hidden), (missing_status, missing) in zip(
        answers[::2], answers[1::2], strict=True
    ):
        assert status == missing_status == 404
        assert "acme/models" in hidden and f"/runs/{run_id}" not in hidden
        assert hidden == missing.replace("acme/nothing", "acme/models")
        assert 'href="/login?next=' in hidden  # the header offers signing in
    await _sign_in(bot, browser, "stranger")  # signed in, may not read it: 404, not 403
    for status, text in (await _answers(browser, bot.url))[::2]:
        assert status == 404 and f"/runs/{run_id}" not in text
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as reader:
        await _sign_in(bot, reader, "maint")
        answers = (await _answers(reader, bot.url))[::2]
    assert [status for status, _ in answers] == [200, 200, 200]
    assert f'<a href="/runs/{run_id}">{run_id}</a>' in answers[0][1]
    assert re.findall(r'<rect class="(\w+)"', answers[1][1]) == ["passed"]


async def test_a_wrong_token_is_refused_before_anything_is_looked_up(bot):
    for path in ("/schedules/acme/models/nightly", _history(VALUE), "/flaky/acme/models"):
        status, _ = await _get(bot, path, {"Authorization": "Bearer wrong"})
        assert status == 401


# ---------------------------------------------------------------------- hostile test names


OPEN = "acme/open"
SCRIPT = "tests/models/x/test_a.py::test_<script>alert(1)</script>"
QUOTES = """tests/models/x/test_a.py::test_q["it's" & 'quoted' <b>]"""
LONG = "tests/models/x/test_a.py::test_long[" + "a" * 10_000 + "]"
UNICODE = "tests/models/x/test_a.py::test_ünï[😀-名前]"
HOSTILE = (SCRIPT, QUOTES, LONG, UNICODE)
GOOD, BAD, CULPRIT = "a" * 40, "b" * 40, "c" * 40


@pytest.fixture
async def hostile(pages_bot):
    """Two scheduled runs of the public `acme/open` whose tests have hostile names: all pass,
    then all fail, with a verdict each and every one in the flaky registry."""

    def seed(conn) -> tuple[int, int]:
        def results(outcome: str) -> list[TestResult]:
            return [TestResult(t, outcome, 0.1, message="E <i>boom</i>") for t in HOSTILE]

        good = write_scheduled_run(
            conn, repo=OPEN, head_sha=GOOD, jobs=[("models/x", "single-gpu", results("passed"))]
        )
        bad = write_scheduled_run(
            conn, repo=OPEN, head_sha=BAD, jobs=[("models/x", "single-gpu", results("failed"))]
        )
        evidence = [
            {"sha": BAD, "outcome": "failed"},
            {"sha": GOOD, "outcome": "passed"},
            {"sha": CULPRIT, "outcome": "failed"},
        ]
        verdicts_db.upsert_verdicts(
            conn,
            [
                TestVerdict(
                    bad,
                    SCRIPT,
                    "new",
                    "single-gpu",
                    "models/x",
                    "new",
                    "<b>why</b>",
                    CULPRIT,
                    evidence,
                ),
                TestVerdict(bad, QUOTES, "new", "single-gpu", "models/x", "flaky", "passed 1 of 1"),
                TestVerdict(bad, LONG, "new", "single-gpu", "models/x", "pre-existing", "fails"),
                TestVerdict(bad, UNICODE, "new", "single-gpu", "models/x", "unknown", "名前"),
            ],
        )
        state = {"previous": {"id": good, "sha": GOOD}, "checks": {}, "tests": {}}
        assert verdicts_db.swap_analysis(conn, bad, 0, "done", state)
        for test in HOSTILE:
            verdicts_db.record_flaky(conn, OPEN, test, run_id=bad)
        return good, bad

    pages_bot.runs = await pages_bot.runtime.store.call(seed)
    return pages_bot


def _links(text: str, prefix: str) -> list[str]:
    """The hrefs (unescaped, as a browser follows them) that start with `prefix`."""
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', text) if h.startswith(prefix)]


async def test_hostile_test_names_render_escaped_and_bounded(hostile):
    good, bad = hostile.runs
    status, unchecked = await _get(hostile, f"/runs/{good}")
    assert status == 200 and "has not begun yet" in unchecked
    status, run_page = await _get(hostile, f"/runs/{bad}")
    assert status == 200, run_page
    section = run_page[run_page.index('<h2 id="changes">') : run_page.index('<h2 id="tests">')]
    status, flaky = await _get(hostile, "/flaky/acme/open")
    assert status == 200
    status, schedule = await _get(hostile, "/schedules/acme/open/nightly")
    assert status == 200
    for text in (section, flaky, schedule):
        assert "<script>" not in text and "<b>" not in text and "<i>" not in text
        assert "a" * 400 not in text  # the long id is cut
        assert len(text) < 40_000
    for text in (section, flaky):
        assert "test_&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "test_ünï[😀-名前]" in text
        assert "test_q[&#34;it&#39;s&#34; &amp; &#39;quoted&#39; &lt;b&gt;]" in text
        assert "a" * 250 + "…" in text
    assert "&lt;b&gt;why&lt;/b&gt;" in section
    # new (SCRIPT, and UNICODE whose verdict is unknown), still failing (the pre-existing LONG),
    # fixed, flaky (QUOTES)
    row = next(r for r in _table(schedule, "run") if r[0] == str(bad))
    assert row[6:10] == ["2", "1", "0", "1"]

    # Every history link on the flaky page leads to that test's page; the long id has none.
    links = _links(flaky, "/tests/")
    assert len(links) == 3
    expected = {SCRIPT: "failed", QUOTES: "flaky", UNICODE: "failed"}
    for link in links:
        status, text = await _get(hostile, link)
        assert status == 200, text
        cells = re.findall(r'<rect class="(\w+)"', text)
        (test,) = [t for t in expected if link == _history(t, OPEN)]
        assert cells == ["passed", expected[test]]
        assert "<script>" not in text and "<b>" not in text
    # A query too long for any link here is refused, not searched.
    status, _ = await _get(hostile, _history("t" * (scheduled.MAX_TEST_CHARS + 1), OPEN))
    assert status == 400
    status, _ = await _get(hostile, _history(LONG, OPEN))
    assert status == 400  # longer than a request line may be: refused before any handler
    status, text = await _get(hostile, "/schedules/acme/open/" + quote("<b>x</b>", safe=""))
    assert status == 404 and "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text


#: The colours of a failed cell and of a flaky one.
RED, AMBER = (0xCF, 0x22, 0x2E), (0xBF, 0x87, 0x00)


async def test_a_browser_draws_the_strip_and_runs_no_script_from_a_test_name(hostile):
    url = hostile.url + _history(SCRIPT, OPEN)
    dom = await dump_dom(url)
    # The cells are SVG links in the DOM the browser built; the name stayed text.
    assert len(re.findall(r'<a href="/runs/\d+"><rect class="', dom)) == 2
    assert "<script>alert(1)</script>" not in dom and "&lt;script&gt;" in dom
    # The legend shows each colour once, alike on both pages; the second cell adds its own.
    failed = await screenshot(url, "test-history", size=(1000, 500))
    assert count_colour(failed, RED) - count_colour(failed, AMBER) > 100
    url = hostile.url + _history(QUOTES, OPEN)
    flaky = await screenshot(url, "test-history-flaky", size=(1000, 500))
    assert count_colour(flaky, AMBER) - count_colour(flaky, RED) > 100


# ---------------------------------------------------------------------- the pure parts


def test_evidence_splits_into_reruns_the_previous_commit_and_bisect_probes():
    checks = {"reruns": 11, "previous": 12, f"probe:{CULPRIT}": 13}
    evidence = [
        {"sha": BAD, "outcome": "failed"},
        {"sha": BAD, "outcome": "failed"},
        {"sha": GOOD, "outcome": "passed"},
        {"sha": CULPRIT, "outcome": "failed"},
        "not evidence",
    ]
    reruns, previous, probes = scheduled._answers(evidence, BAD, GOOD, checks)
    assert reruns == (scheduled.Answer(BAD, "failed", 11),) * 2
    assert previous == scheduled.Answer(GOOD, "passed", 12)
    assert probes == (scheduled.Answer(CULPRIT, "failed", 13),)
    # Two runs at one commit: the previous run's answer is the last one there.
    same = [{"sha": BAD, "outcome": "failed"}, {"sha": BAD, "outcome": "passed"}]
    reruns, previous, probes = scheduled._answers(same, BAD, BAD, checks)
    assert [r.outcome for r in reruns] == ["failed"]
    assert previous == scheduled.Answer(BAD, "passed", 12) and probes == ()
    # No previous run: everything after the re-runs is the bisect's.
    assert scheduled._answers(evidence[:2], BAD, None, {})[1] is None


def test_the_pass_rate_line_breaks_at_a_run_that_ran_no_test():
    runs = [
        scheduled.RunRate(1, 0.0, 10, 10),
        scheduled.RunRate(2, 0.0, 0, 0),
        scheduled.RunRate(3, 0.0, 5, 10),
        scheduled.RunRate(4, 86_400.0, 10, 10),
    ]
    chart = scheduled.rate_chart(reversed(runs))  # given newest first, drawn oldest left
    assert [p.run_id for p in chart.points] == [1, 3, 4]
    assert [p.outcome for p in chart.points] == ["passed", "failed", "passed"]
    assert len(chart.lines) == 1 and chart.lines[0].count(",") == 2  # runs 3 and 4 only
    xs = [p.x for p in chart.points]
    assert xs == sorted(xs) and chart.points[1].y > chart.points[2].y  # 50% sits lower
    assert (chart.first, chart.last) == ("1970-01-01", "1970-01-02")
    assert scheduled.rate_chart([]).empty


def test_a_cell_says_flaky_then_failed_then_passed_then_not_run():
    def verdict(status: str, value: str | None = None) -> TestVerdict:
        return TestVerdict(1, "t", status, verdict=value)

    assert scheduled.cell_outcome(["failed"], [verdict("new", "flaky")]) == "flaky"
    assert scheduled.cell_outcome(["passed", "error"], []) == "failed"
    assert scheduled.cell_outcome(["skipped", "passed"], []) == "passed"
    assert scheduled.cell_outcome(["skipped", "missing"], []) == "not run"
    assert scheduled.cell_outcome([], []) == "not run"
    # Results cut short: what the comparison recorded decides.
    assert scheduled.cell_outcome(["missing"], [verdict("still failing")]) == "failed"
    assert scheduled.cell_outcome(["missing"], [verdict("fixed")]) == "passed"


def test_a_changed_test_counts_where_its_verdict_puts_it():
    counts = scheduled.change_counts(
        {
            ("new", "new"): 2,
            ("new", None): 1,
            ("new", "flaky"): 3,
            ("new", "pre-existing"): 4,
            ("still failing", None): 5,
            ("fixed", None): 6,
            ("new", "unknown"): 7,
        }
    )
    assert counts == {"new": 10, "still failing": 9, "fixed": 6, "flaky": 3}


def test_a_tests_outcome_is_read_from_stored_results_by_its_name_alone():
    rows = [
        {"node_id": "a::x", "outcome": "passed", "message": 'a::y "ok"'},
        {"node_id": UNICODE, "outcome": "failed"},
        {"node_id": "a::y", "outcome": "skipped"},
    ]
    blob = zlib.compress(json.dumps(rows).encode())
    assert verdicts_db.outcome_in(blob, "a::y") == "skipped"
    assert verdicts_db.outcome_in(blob, UNICODE) == "failed"
    assert verdicts_db.outcome_in(blob, "a::") == "missing"
    assert verdicts_db.outcome_in(None, "a::x") == "missing"
    # Another key order is still read right, by decoding the whole list.
    other = zlib.compress(json.dumps([{"outcome": "error", "node_id": "a::x"}]).encode())
    assert verdicts_db.outcome_in(other, "a::x") == "error"


def test_history_links_are_quoted_and_only_for_ids_a_query_can_hold():
    assert scheduled.history_url("acme/x", "t::a&b c") == "/tests/acme/x?test=t%3A%3Aa%26b+c"
    assert scheduled.history_url("acme/x", "t" * scheduled.MAX_TEST_CHARS) is not None
    assert scheduled.history_url("acme/x", "t" * (scheduled.MAX_TEST_CHARS + 1)) is None
    assert scheduled.schedule_url("acme/x", "a/b?") == "/schedules/acme/x/a%2Fb%3F"
    assert scheduled.shown_test("x" * 1000) == "x" * 299 + "…"


def test_history_rows_become_one_strip_per_schedule_oldest_left():
    def row(run_id: int, schedule: str, outcome: str | None) -> TestInRun:
        results = (
            None
            if outcome is None
            else zlib.compress(json.dumps([{"node_id": "t", "outcome": outcome}]).encode())
        )
        jobs = () if outcome is None else (verdicts_db.CoveringJob("single-gpu", results),)
        return TestInRun(run_id, schedule, "f" * 40, 0.0, "finished", jobs, ())

    rows = [row(5, "weekly", "failed"), row(4, "nightly", "passed"), row(2, "nightly", None)]
    history = scheduled.history_of(rows, "t")
    assert [s.schedule for s in history.strips] == ["nightly", "weekly"]
    nightly = history.strips[0]
    assert [(c.run_id, c.outcome) for c in nightly.cells] == [(2, "not run"), (4, "passed")]
    assert nightly.cells[0].css == "notrun" and nightly.cells[1].x > nightly.cells[0].x
    assert "not in this run" in nightly.cells[0].title
    assert history.counts == {"passed": 1, "failed": 1, "flaky": 0, "not run": 1}
