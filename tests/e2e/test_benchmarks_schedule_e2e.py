"""The daily benchmark end to end: a `[[scheduled_ci]]` entry with `benchmarks = true` fires
on the one scheduler, measures the default branch's head confined, records it on the branch and
tells Slack of a regression against the previous result; an entry without it measures nothing.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.e2e.conftest import PAGES_ADMIN
from tests.support.benchmarks import BENCHMARKS, bench_files
from tests.support.scheduled import fire, posted

REPO = "acme/models"
CONFIG = f"""\
[slow_ci]
reminder = false

{BENCHMARKS.replace("repeats = 3", "repeats = 2")}
[[scheduled_ci]]
name = "nightly"
cron = "17 2 * * *"
channel = "ci-daily"
benchmarks = true

[[scheduled_ci]]
name = "weekly"
cron = "0 3 * * 1"
"""
FILES = bench_files(CONFIG, **{"tests/models/toy/test_toy.py": "def test_toy():\n    pass\n"})


async def _sync(harness: Any) -> None:
    gh = await harness.runtime.services.github.for_installation(None)
    await harness.runtime.scheduler.sync_repo(gh, REPO, None, "main")


async def _benchmark_runs(harness: Any) -> list[Any]:
    return await harness.runtime.jobs.runs_of(REPO, None, kind="benchmarks", newest=False)


async def test_a_schedule_that_asks_for_benchmarks_measures_the_head_daily(harness):
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"})
    await _sync(harness)
    records = harness.runtime.services.records

    row = await fire(harness, REPO, "nightly", feature="benchmarks")
    assert row.run_id is not None, row.note
    await harness.settle_runs(within=120)
    (run,) = await _benchmark_runs(harness)
    main = harness.github.git(REPO).resolve("main")
    assert (run.id, run.head_sha, run.state, run.spec["trigger"]) == (
        row.run_id,
        main,
        "finished",
        "schedule",
    )
    (result,) = await records.benchmarks_of(run.id)
    assert (result.branch, result.pull_number, result.values) == ("main", None, (10.0, 10.0))

    # The next day's head is slower: the schedule's channel hears of it, once.
    harness.github.commit(REPO, "main", {"latency.txt": "30\n"}, author="carol")
    await fire(harness, REPO, "nightly", feature="benchmarks")
    await harness.settle_runs(within=120)
    runs = await _benchmark_runs(harness)
    assert len(runs) == 2
    (slower,) = await records.benchmarks_of(runs[1].id)
    assert slower.regression is True
    (message,) = await posted(harness, "ci-daily", 1)
    assert "latency" in str(message["blocks"]) and "slower" in message["text"]


async def test_only_the_entries_that_ask_have_a_benchmark_schedule(harness):
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"})
    await _sync(harness)
    assert await harness.runtime.scheduler.fire_now(REPO, "benchmarks", "weekly") is None
    assert await harness.runtime.scheduler.fire_now(REPO, "scheduled_ci", "weekly") is not None


async def test_a_schedule_without_a_benchmark_command_says_so(harness):
    config = CONFIG.replace('command = ["python", "bench.py", "--json", "{output}"]\n', "")
    harness.github.create_repo(REPO, files=bench_files(config), collaborators={"maint": "write"})
    await _sync(harness)
    row = await fire(harness, REPO, "nightly", feature="benchmarks")
    assert row.run_id is None and "no [benchmarks] command" in row.note
    assert await _benchmark_runs(harness) == []


async def test_the_operator_sees_the_benchmark_schedule_beside_the_slow_one_and_fires_it(
    pages_bot,
):
    harness = pages_bot
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"})
    await _sync(harness)
    auth = {"Authorization": f"Bearer {PAGES_ADMIN}", "Accept": "text/html"}
    async with aiohttp.ClientSession() as script:
        async with script.get(f"{harness.url}/schedules", headers=auth) as response:
            page = await response.text()
        assert response.status == 200
        # Both features' schedules of the entry, each with its own page and button.
        assert '<a href="/benchmarks/acme/models">nightly</a>' in page
        assert '<a href="/schedules/acme/models/nightly">nightly</a>' in page
        fire = f"{harness.url}/schedules/acme/models/benchmarks/nightly/fire"
        async with script.post(fire, headers=auth, allow_redirects=False) as response:
            assert response.status == 303
    (row,) = await harness.runtime.services.records.fires_of(REPO, "benchmarks", "nightly")
    assert row.manual
