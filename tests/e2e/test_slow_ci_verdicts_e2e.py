"""A `run-slow`'s failures, checked, end to end: the real server, the sandbox GitHub, real git and
real confined pytest, as in `test_slow_ci_e2e.py`.

One pull request breaks one test (`new`), runs one that fails on the base branch too (`fails on
the base too`) and one that fails once and then passes (`flaky`). Its jobs run confined, each in
a checkout of its own, so the flaky test keeps its memory outside them: a counter served here on
the loopback, which answers "fail" to its first caller and "pass" to the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.config import Settings
from bot.kit.records import Records
from tests.sandbox.harness import Harness
from tests.support.slow_ci import PAST, REPO, bot_comments, head, open_slow_pull

WORKFLOW = (Path(__file__).resolve().parents[2] / ".github/workflows/slow-tests.yml").read_text()
NEW = "tests/models/toy/test_toy.py::test_within_the_limit"
BROKEN = "tests/models/broken/test_broken.py::test_sums"
FLAKY = "tests/models/flaky/test_flaky.py::test_first_time_fails"

TOY = (
    "from pathlib import Path\n\n\n"
    "def test_within_the_limit():\n"
    "    limit = int((Path(__file__).parents[3] / 'limit.txt').read_text())\n"
    "    assert 3 <= limit, f'the limit {limit} is under 3'\n"
)
FLAKY_TEST = (
    "import urllib.request\n\n\n"
    "def test_first_time_fails():\n"
    "    with urllib.request.urlopen('{url}', timeout=10) as answer:\n"
    "        assert answer.read() == b'pass', 'the first call fails'\n"
)


@dataclass
class Counter:
    """A loopback URL whose first GET answers `fail` and every later one `pass`; the later ones
    wait for `gate`, which a test closes to hold the checks mid-run."""

    url: str
    gate: asyncio.Event
    calls: int = 0


@pytest.fixture
async def counter() -> AsyncIterator[Counter]:
    gate = asyncio.Event()
    gate.set()
    found = Counter("", gate)

    async def flip(request: web.Request) -> web.Response:
        found.calls += 1
        if found.calls == 1:
            return web.Response(text="fail")
        await gate.wait()
        return web.Response(text="pass")

    app = web.Application()
    app.router.add_get("/flip", flip)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/flip"
    yield found
    gate.set()
    await runner.cleanup()


@pytest.fixture
def pull(harness, counter) -> int:
    """The base branch: toy passes (its limit is 5), broken fails, flaky fails at first. The
    pull request lowers the limit to 2, which breaks toy."""
    files = {
        "README.md": "toy\n",
        "limit.txt": "5\n",
        "tests/models/toy/test_toy.py": TOY,
        "tests/models/broken/test_broken.py": "def test_sums():\n    assert 6 == 7\n",
        "tests/models/flaky/test_flaky.py": FLAKY_TEST.replace("{url}", counter.url),
    }
    number = open_slow_pull(harness, files, config='machine_types = ["single-gpu"]\n', reruns=None)
    harness.github.commit(
        REPO, "feature", {"limit.txt": "2\n"}, author="carol", date=PAST, pushed_at=PAST
    )
    return number


async def _run_slow(harness, number: int, body: str) -> None:
    payload = harness.github.issue_comment_payload(REPO, number, body, "maint")
    assert (await harness.deliver("issue_comment", payload)).status == 202
    await harness.settle_runs(within=180)


def _row(comment: str, test: str) -> str:
    (row,) = [line for line in comment.splitlines() if line.startswith(f"| `{test}`")]
    return row


def _comment_bodies(harness) -> list[str]:
    """Every body the bot gave its comments, in the order it wrote them."""
    return [
        r.json["body"]
        for r in harness.github.writes()
        if "/comments" in r.path and isinstance(r.json, dict) and "body" in r.json
    ]


async def test_each_failure_gets_its_label_with_its_evidence_one_click_away(harness, pull):
    sha = head(harness, pull)
    await _run_slow(harness, pull, "run-slow: toy, broken, flaky")

    (comment,) = bot_comments(harness, pull)
    assert "Finished, failed" in comment
    assert "**The failures, checked** (2 re-runs of each on this commit, one run at" in comment
    assert "| **new** | failed 2 of 2 re-runs; passes on main |" in _row(comment, NEW)
    assert "| fails on the base too | failed 2 of 2 re-runs; fails on main too |" in _row(
        comment, BROKEN
    )
    assert "| flaky | passed 2 of 2 re-runs |" in _row(comment, FLAKY)
    assert "A flaky failure still failed" in comment

    runtime = harness.runtime
    checks = await runtime.jobs.runs_of(REPO, None, kind="slow_ci.check")
    by_name = {run.spec["check"]: run for run in checks}
    assert set(by_name) == {"reruns", "base"}
    assert all(run.state == "finished" for run in checks)
    base = by_name["base"]
    assert base.head_sha == harness.github.git(REPO).resolve("main")
    for run in checks:  # each row links the runs its answers came from, one click away
        page = f"{harness.url}/runs/{run.id}"
        assert f"({page})" in _row(comment, BROKEN)
        async with aiohttp.ClientSession() as session, session.get(page) as answer:
            assert answer.status == 200
            assert "test_sums" in await answer.text()

    # the run's own verdict stands: the status and the check run stay failed
    (status, *_) = harness.github.statuses(REPO, sha)
    assert status["state"] == "failure"
    (check,) = harness.github.check_runs(REPO, sha)
    assert check["conclusion"] == "failure"
    assert check["output"]["title"].endswith("1 new, 1 fails on the base too, 1 flaky")
    assert "| **new** |" in check["output"]["summary"]

    (run,) = await runtime.jobs.runs_of(REPO, pull, kind="slow_ci")
    verdicts = {v.test: v for v in await Records(runtime.store).verdicts_of(run.id)}
    assert {t: v.verdict for t, v in verdicts.items()} == {
        NEW: "new",
        BROKEN: "pre-existing",
        FLAKY: "flaky",
    }
    assert verdicts[NEW].status == "new" and verdicts[NEW].machine_type == "single-gpu"
    assert {e["where"] for e in verdicts[NEW].evidence} == {"re-run", "base"}


async def test_the_runs_end_is_reported_as_being_checked_then_once_with_the_labels(harness, pull):
    await _run_slow(harness, pull, "run-slow: toy, broken, flaky")
    finished = [body for body in _comment_bodies(harness) if "Finished" in body]
    assert "Checking the failures" in finished[0]
    assert "re-running 3 failing tests 2 times on this commit and running them at" in finished[0]
    assert "The failures, checked" in finished[-1]
    assert all("Checking the failures" in b or "The failures, checked" in b for b in finished)


async def test_a_restart_while_the_checks_run_still_ends_with_the_labels(harness, pull, counter):
    counter.gate.clear()  # the flaky test's re-runs wait until the bot has restarted
    payload = harness.github.issue_comment_payload(REPO, pull, "run-slow: toy, flaky", "maint")
    assert (await harness.deliver("issue_comment", payload)).status == 202
    async with asyncio.timeout(60):
        while counter.calls < 2:  # a re-run of the flaky test is under way
            await asyncio.sleep(0.05)
    await harness.stop_bot()
    (comment,) = bot_comments(harness, pull)
    assert "Checking the failures" in comment
    await harness.start_bot()
    counter.gate.set()
    await harness.settle_runs(within=180)
    (comment,) = bot_comments(harness, pull)
    assert "| **new** |" in _row(comment, NEW)
    assert "| flaky |" in _row(comment, FLAKY)
    checks = await harness.runtime.jobs.runs_of(REPO, None, kind="slow_ci.check")
    assert len(checks) == 2  # the restart created no second set


async def test_reruns_zero_starts_no_checks(harness):
    files = {
        "README.md": "toy\n",
        "tests/models/broken/test_broken.py": "def test_sums():\n    assert 6 == 7\n",
    }
    number = open_slow_pull(harness, files, config='machine_types = ["single-gpu"]\n', reruns=0)
    await _run_slow(harness, number, "run-slow: broken")
    (comment,) = bot_comments(harness, number)
    assert "Finished, failed" in comment and "checked" not in comment.lower()
    assert await harness.runtime.jobs.runs_of(REPO, None, kind="slow_ci.check") == []


ODD_TEST = (
    "from pathlib import Path\n\nimport pytest\n\n\n"
    "@pytest.mark.parametrize('x', [3], ids=['a|b`c <img src=x> @maint'])\n"
    "def test_odd(x):\n"
    "    assert x <= int((Path(__file__).parents[3] / 'limit.txt').read_text())\n"
)
RENAMED_TEST = (
    "import time\n\nimport pytest\n\n\n"
    "@pytest.mark.parametrize('n', [time.time_ns()])\n"
    "def test_renamed(n):\n    assert n < 0\n"
)


async def test_odd_node_ids_stay_inert_and_tests_renamed_per_run_are_not_blamed(harness):
    files = {
        "README.md": "toy\n",
        "limit.txt": "5\n",
        "tests/models/odd/test_odd.py": ODD_TEST,
        "tests/models/renamed/test_renamed.py": RENAMED_TEST,
    }
    number = open_slow_pull(harness, files, config='machine_types = ["single-gpu"]\n', reruns=None)
    harness.github.commit(
        REPO, "feature", {"limit.txt": "2\n"}, author="carol", date=PAST, pushed_at=PAST
    )
    await _run_slow(harness, number, "run-slow: odd, renamed")
    (comment,) = bot_comments(harness, number)
    odd = "tests/models/odd/test_odd.py::test_odd[a|b`c <img src=x> @maint]"
    (row,) = [line for line in comment.splitlines() if "img src" in line and line.startswith("|")]
    assert row.startswith(f"| `` {odd.replace('|', chr(92) + '|')} `` | `single-gpu` | **new** |")
    (renamed,) = [line for line in comment.splitlines() if line.startswith("| `tests/models/ren")]
    assert "| could not tell | the re-runs did not run it" in renamed


ACTIONS = (
    'runner = "github-actions"\nmachine_types = ["single-gpu"]\n'
    '[slow_ci.runner_labels]\n"single-gpu" = ["self-hosted", "gpu-1"]\n'
)


@pytest.fixture
async def on_actions(tmp_path):
    """A bot whose runs go to the sandbox's GitHub Actions, polling a silent run every second."""
    settings = Settings(
        database=str(tmp_path / "bot.sqlite3"), retry_base_seconds=0.05, actions_poll_seconds=1.0
    )
    harness = Harness(tmp_path, settings=settings)
    await harness.start()
    yield harness
    await harness.close()


async def test_on_actions_each_copy_is_its_own_workflow_run_and_the_labels_come_back(on_actions):
    harness = on_actions
    files = {
        "README.md": "toy\n",
        "limit.txt": "5\n",
        ".github/workflows/slow-tests.yml": WORKFLOW,
        "tests/models/toy/test_toy.py": TOY,
        "tests/models/broken/test_broken.py": "def test_sums():\n    assert 6 == 7\n",
    }
    number = open_slow_pull(harness, files, config=ACTIONS, reruns=None)
    harness.github.commit(
        REPO, "feature", {"limit.txt": "2\n"}, author="carol", date=PAST, pushed_at=PAST
    )
    await _run_slow(harness, number, "run-slow: toy, broken")
    await harness.github.actions_idle()
    dispatches = [body["inputs"] for body in harness.github.dispatches(REPO)]
    checks = [d for d in dispatches if d["pr"] == ""]  # the checks are no run of the PR's
    assert len(checks) == 2 * 2 + 2  # two folders re-run twice, two files at the base
    assert len({d["correlation"] for d in dispatches}) == len(dispatches)
    (comment,) = bot_comments(harness, number)
    assert "| **new** | failed 2 of 2 re-runs; passes on main |" in _row(comment, NEW)
    assert "| fails on the base too |" in _row(comment, BROKEN)
