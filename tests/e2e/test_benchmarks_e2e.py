"""Benchmarks of the default branch end to end: the real server and job system, the sandbox
GitHub (real git history) and Slack, the repository's own benchmark script run confined.

A merged pull request's push runs the benchmark on the new head and records every repeat; the
next merge makes it much slower, and the channel is told once, naming the pull request and its
author. A benchmark that writes junk ends in error with the file's first lines and records
nothing; a push handled twice runs once.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from bot.store.deliveries import replay_delivery
from handlers.benchmarks.handler import report_benchmarks
from tests.support.benchmarks import BENCH, BENCHMARKS, bench_files
from tests.support.scheduled import posted

REPO = "acme/models"
CHANNEL = "ci-benchmarks"
CONFIG = f'[slow_ci]\nreminder = false\n\n{BENCHMARKS}threshold = 0.05\nchannel = "{CHANNEL}"\n'
FILES = bench_files(CONFIG)


async def merge(harness: Any, branch: str, changes: dict[str, str], author: str) -> dict[str, Any]:
    """Merges a pull request of `changes` by `author` and delivers the push it made; returns
    the push's payload and the pull request's number (`number`)."""
    git = harness.github
    git.commit(REPO, branch, changes, author=author)
    number = git.open_pull(REPO, branch, title=f"Change {branch}", author=author)
    before, after = git.merge_pull(REPO, number, merged_by="maint")
    payload = git.push_payload(REPO, "refs/heads/main", before, after)
    sent = await harness.deliver("push", payload)
    assert sent.status == 202
    await harness.settle_runs(within=120)
    return {"payload": payload, "number": number, "sha": after, "delivery": sent.delivery_id}


async def benchmark_runs(harness: Any) -> list[Any]:
    return await harness.runtime.jobs.runs_of(REPO, None, kind="benchmarks", newest=False)


async def test_a_push_is_measured_and_a_slower_one_is_told_once_with_its_pr_and_author(
    harness,
):
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"})
    runtime = harness.runtime
    records = runtime.services.records

    first = await merge(harness, "docs", {"README.md": "toy, documented\n"}, "dave")
    (run,) = await benchmark_runs(harness)
    assert (run.state, run.head_sha, run.number) == ("finished", first["sha"], None)
    (job,) = await runtime.jobs.jobs_of(run.id)
    assert (job.name, job.state) == ("single-gpu", "passed")
    (result,) = await records.benchmarks_of(run.id)
    assert (result.metric, result.unit, result.values) == ("latency", "ms", (10.0, 10.0, 10.0))
    assert (result.sha, result.branch, result.pull_number, result.regression) == (
        first["sha"],
        "main",
        None,
        False,
    )
    assert harness.slack.messages == []  # nothing to compare with yet

    second = await merge(harness, "slow", {"latency.txt": "25\n"}, "carol")
    runs = await benchmark_runs(harness)
    assert [r.head_sha for r in runs] == [first["sha"], second["sha"]]
    (slower,) = await records.benchmarks_of(runs[1].id)
    assert slower.values == (25.0, 25.0, 25.0) and slower.regression is True
    (message,) = await posted(harness, CHANNEL, 1)
    shown = message["text"] + json.dumps(message["blocks"])
    assert f"#{second['number']}" in shown and "carol" in shown
    assert second["sha"][:12] in shown and first["sha"][:12] in shown
    assert "latency" in shown and "slower" in shown and "2.500" in shown
    assert f"/runs/{runs[1].id}" in shown

    # The report of the run is made again (as after a restart): nothing is sent twice.
    await report_benchmarks(runtime.services, runs[1], await runtime.jobs.jobs_of(runs[1].id))
    await harness.settle()
    assert len([m for m in harness.slack.messages if m["channel"] == CHANNEL]) == 1
    assert [r.values for r in await records.benchmarks_of(runs[1].id)] == [(25.0, 25.0, 25.0)]

    # A push that is as fast as the last one is recorded and compared, and says nothing.
    third = await merge(harness, "more-docs", {"README.md": "toy, documented twice\n"}, "dave")
    assert len(await benchmark_runs(harness)) == 3
    (same,) = await records.benchmarks_of((await benchmark_runs(harness))[2].id)
    assert same.sha == third["sha"] and same.regression is False
    assert len([m for m in harness.slack.messages if m["channel"] == CHANNEL]) == 1


async def test_a_benchmark_that_writes_junk_is_an_error_with_its_first_lines(harness):
    junk = "import sys\nopen(sys.argv[-1], 'w').write('this is not json\\nat all\\n')\n"
    harness.github.create_repo(REPO, files={**FILES, "bench.py": junk})
    runtime = harness.runtime
    await merge(harness, "docs", {"README.md": "toy, documented\n"}, "dave")
    (run,) = await benchmark_runs(harness)
    (job,) = await runtime.jobs.jobs_of(run.id)
    assert job.state == "error"
    assert "repeat 1 of 3" in job.reason and "not JSON" in job.reason
    assert job.reason.endswith("the file began:\nthis is not json\nat all")
    assert await runtime.services.records.benchmarks_of(run.id) == []
    # A merge that broke the benchmark is told, with what the command wrote, inert.
    (message,) = await posted(harness, CHANNEL, 1)
    shown = json.dumps(message["blocks"])
    assert "could not be measured" in message["text"] and "dave" in message["text"]
    assert "this is not json" in shown and "single-gpu" in shown
    # The run's page shows the job's error as the runner said it.
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{harness.url}/runs/{run.id}") as response,
    ):
        assert response.status == 200
        page = await response.text()
    assert "this is not json" in page and "error" in page


async def test_a_push_delivered_again_or_replayed_runs_once(harness):
    harness.github.create_repo(REPO, files=FILES)
    runtime = harness.runtime
    pushed = await merge(harness, "docs", {"README.md": "toy, documented\n"}, "dave")
    again = await harness.deliver("push", pushed["payload"], delivery_id=pushed["delivery"])
    assert again.status == 200
    # The operator's replay hands the same delivery to every handler again.
    replayed = await runtime.store.call(lambda conn: replay_delivery(conn, pushed["delivery"]))
    assert replayed == "queued"
    runtime.worker.wake()
    await harness.settle_runs(within=120)
    delivery = next(d for d in await harness.deliveries() if d.id == pushed["delivery"])
    assert delivery.status == "done"
    (run,) = await benchmark_runs(harness)
    assert run.key == f"benchmarks:push:{pushed['delivery']}"
    assert len(await runtime.jobs.jobs_of(run.id)) == 1


async def test_a_push_to_another_branch_runs_nothing_and_actions_needs_the_workflow(harness):
    actions = CONFIG.replace("[slow_ci]\n", '[slow_ci]\nrunner = "github-actions"\n')
    harness.github.create_repo(REPO, files={**FILES, ".github/bot.toml": actions})
    git = harness.github
    before = git.repo(REPO).git.branch_sha("main")
    sha = git.commit(REPO, "feature", {"README.md": "elsewhere\n"}, author="dave")
    sent = await harness.deliver("push", git.push_payload(REPO, "refs/heads/feature", before, sha))
    assert sent.status == 202
    merged = await merge(harness, "docs", {"README.md": "toy, documented\n"}, "dave")
    # Only the default branch's push runs; on Actions, in a repository without the workflow
    # (tests/e2e/test_benchmarks_actions_e2e.py runs one that has it), the job says so.
    (run,) = await benchmark_runs(harness)
    assert (run.head_sha, run.runner) == (merged["sha"], "github-actions")
    (job,) = await harness.runtime.jobs.jobs_of(run.id)
    assert job.state == "error"
    assert "the workflow .github/workflows/benchmarks.yml was not found on main" in job.reason
    assert await harness.runtime.services.records.benchmarks_of(run.id) == []


async def test_a_restart_mid_benchmark_runs_the_job_again_and_records_one_set_of_repeats(harness):
    slow = BENCH.replace("import json, os, sys", "import json, os, sys, time\ntime.sleep(0.5)")
    harness.github.create_repo(REPO, files={**FILES, "bench.py": slow})
    git = harness.github
    git.commit(REPO, "docs", {"README.md": "toy, documented\n"}, author="dave")
    number = git.open_pull(REPO, "docs", author="dave")
    before, after = git.merge_pull(REPO, number)
    sent = await harness.deliver("push", git.push_payload(REPO, "refs/heads/main", before, after))
    assert sent.status == 202
    runtime = harness.runtime
    async with asyncio.timeout(60):
        while True:
            runs = await benchmark_runs(harness)
            jobs = await runtime.jobs.jobs_of(runs[0].id) if runs else []
            log = await runtime.jobs.job_log(jobs[0].id) if jobs else None
            if log and "measured" in log:  # the first repeat is done, the second under way
                break
            await asyncio.sleep(0.02)
    assert (await runtime.jobs.jobs_of(runs[0].id))[0].state == "running"
    await harness.stop_bot()
    await harness.start_bot()
    await harness.settle_runs(within=120)
    runtime = harness.runtime
    (run,) = await benchmark_runs(harness)
    (job,) = await runtime.jobs.jobs_of(run.id)
    assert (run.state, job.state) == ("finished", "passed")
    (result,) = await runtime.services.records.benchmarks_of(run.id)
    assert result.values == (10.0, 10.0, 10.0)  # the interrupted start's repeat is not kept
