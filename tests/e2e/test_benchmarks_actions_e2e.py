"""Benchmarks of the default branch on GitHub Actions end to end: the real server and job system,
the sandbox GitHub running the dispatched `benchmarks.yml` (this repository's own, copied as a
served repository adopts it) with its steps run for real on this machine, and the metrics files
coming back as the run's artifact.

A merged pull request's push dispatches one workflow run per machine type on the default branch,
at the pushed commit, and records every repeat; a runner lost mid-run runs the job once more and
the push is still recorded once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from tests.sandbox.harness import Harness
from tests.support.benchmarks import BENCHMARKS, bench_files

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/models"
CONFIG = (
    """\
[slow_ci]
reminder = false
runner = "github-actions"

[slow_ci.runner_labels]
"single-gpu" = ["self-hosted", "gpu-1"]


"""
    + BENCHMARKS
)
FILES = bench_files(
    CONFIG,
    **{".github/workflows/benchmarks.yml": (ROOT / ".github/workflows/benchmarks.yml").read_text()},
)


@pytest.fixture
async def harness(tmp_path):
    settings = Settings(
        database=str(tmp_path / "bot.sqlite3"), retry_base_seconds=0.05, actions_poll_seconds=1.0
    )
    opened = Harness(tmp_path, settings=settings)
    await opened.start()
    yield opened
    await opened.close()


async def merge(harness: Any, branch: str, changes: dict[str, str]) -> str:
    """Merges a pull request of `changes`, delivers the push it made, and waits for the runs
    and the workflow runs to end; the pushed commit."""
    git = harness.github
    git.commit(REPO, branch, changes, author="dave")
    number = git.open_pull(REPO, branch, title=f"Change {branch}", author="dave")
    before, after = git.merge_pull(REPO, number, merged_by="maint")
    sent = await harness.deliver("push", git.push_payload(REPO, "refs/heads/main", before, after))
    assert sent.status == 202
    await harness.settle_runs(within=120)
    await harness.github.actions_idle()
    return after


async def test_a_push_dispatches_the_benchmark_on_actions_and_records_every_repeat(harness):
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"})
    runtime = harness.runtime
    sha = await merge(harness, "docs", {"README.md": "toy, documented\n"})

    (run,) = await runtime.jobs.runs_of(REPO, None, kind="benchmarks")
    assert (run.state, run.runner, run.head_sha) == ("finished", "github-actions", sha)
    (job,) = await runtime.jobs.jobs_of(run.id)
    assert (job.name, job.state, job.reason) == ("single-gpu", "passed", "3 repeat(s) measured")
    (result,) = await runtime.services.records.benchmarks_of(run.id)
    assert (result.metric, result.unit, result.values) == ("latency", "ms", (10.0, 10.0, 10.0))
    assert (result.sha, result.branch, result.machine_type) == (sha, "main", "single-gpu")

    # The reviewed workflow on the default branch, at the pushed commit, on the chosen runners.
    (body,) = harness.github.dispatches(REPO)
    assert body["ref"] == "main"
    inputs = body["inputs"]
    assert (inputs["sha"], inputs["repeats"], inputs["machine_type"]) == (sha, "3", "single-gpu")
    assert json.loads(inputs["command"]) == ["python", "bench.py", "--json", "{output}"]
    assert json.loads(inputs["runner_labels"]) == ["self-hosted", "gpu-1"]
    (workflow_run,) = harness.github.workflow_runs(REPO)
    assert workflow_run["path"] == ".github/workflows/benchmarks.yml"
    assert (workflow_run["head_branch"], workflow_run["conclusion"]) == ("main", "success")
    log = await runtime.jobs.job_log(job.id)
    assert log is not None and "measured 10.0 ms" in log


async def test_a_lost_runner_runs_the_job_again_and_the_push_is_recorded_once(harness):
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"})
    harness.github.lose_runner()
    runtime = harness.runtime
    await merge(harness, "docs", {"README.md": "toy, documented\n"})

    (run,) = await runtime.jobs.runs_of(REPO, None, kind="benchmarks")
    (job,) = await runtime.jobs.jobs_of(run.id)
    assert (run.state, job.state) == ("finished", "passed")
    first, second = harness.github.workflow_runs(REPO)
    assert (first["conclusion"], second["conclusion"]) == ("failure", "success")
    (result,) = await runtime.services.records.benchmarks_of(run.id)
    assert result.values == (10.0, 10.0, 10.0)
    log = await runtime.jobs.job_log(job.id)
    assert log is not None and "was lost before the run's last step" in log


async def test_the_label_on_actions_measures_the_approved_head_and_the_base(harness):
    harness.github.create_repo(
        REPO, files=FILES, collaborators={"maint": "write", "reader": "read"}
    )
    git = harness.github
    head = git.commit(REPO, "slower", {"latency.txt": "30\n"}, author="carol")
    number = git.open_pull(REPO, "slower", title="Slower", author="carol")
    git.add_label(REPO, number, "run-benchmark")
    labeled = git.pull_request_payload(
        REPO, number, "labeled", sender="maint", label="run-benchmark"
    )
    assert (await harness.deliver("pull_request", labeled)).status == 202
    await harness.settle()
    await harness.settle_runs(within=120)
    await harness.github.actions_idle()

    (run,) = await harness.runtime.jobs.runs_of(REPO, number, kind="benchmarks")
    assert (run.state, run.head_sha) == ("finished", head)
    base = git.git(REPO).resolve("main")
    # Each side is its own workflow run of the reviewed workflow, at exactly its commit.
    dispatched = sorted(body["inputs"]["sha"] for body in harness.github.dispatches(REPO))
    assert dispatched == sorted([head, base])
    assert {body["ref"] for body in harness.github.dispatches(REPO)} == {"main"}
    (check,) = [c for c in git.check_runs(REPO, head) if c["name"] == "benchmarks"]
    assert (check["conclusion"], check["output"]["title"]) == ("neutral", "1 metric slower")
    (comment,) = [c["body"] for c in git.comments(REPO, number) if "### Benchmarks" in c["body"]]
    assert "| latency | ms | 10 ± 0 (n=3) | 30 ± 0 (n=3) | 3.000 | slower |" in comment
