"""Slow runs on GitHub Actions end to end: the real server, the sandbox GitHub's Actions API and
webhooks, and the dispatched workflow's test step run for real on this machine (a checkout of
the pinned SHA and the pytest command), its JUnit XML coming back as an artifact."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.config import Settings
from tests.sandbox.harness import Harness
from tests.support.slow_ci import REPO, bot_comments, head, open_slow_pull

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = (ROOT / ".github" / "workflows" / "slow-tests.yml").read_text()
CONFIG = (
    'runner = "github-actions"\nmachine_types = ["single-gpu"]\n'
    '[slow_ci.runner_labels]\n"single-gpu" = ["self-hosted", "gpu-1"]\n'
)
FILES = {
    "README.md": "toy\n",
    ".github/workflows/slow-tests.yml": WORKFLOW,
    "tests/models/toy/test_toy.py": (
        "import pytest\n\n\ndef test_one():\n    assert 1 + 1 == 2\n\n\n"
        "@pytest.mark.skip(reason='no GPU here')\ndef test_big():\n    pass\n"
    ),
    "tests/models/broken/test_broken.py": "def test_sums():\n    assert 6 == 7\n",
    "tests/models/sleepy/test_sleep.py": (
        "import time\n\n\ndef test_sleeps():\n    time.sleep(60)\n"
    ),
}


async def _bot(tmp_path, poll: float) -> Harness:
    settings = Settings(
        database=str(tmp_path / "bot.sqlite3"), retry_base_seconds=0.05, actions_poll_seconds=poll
    )
    harness = Harness(tmp_path, settings=settings)
    await harness.start()
    return harness


@pytest.fixture
async def polling(tmp_path):
    """Polls a silent run every second: nothing waits long on a lost webhook."""
    harness = await _bot(tmp_path, poll=1.0)
    yield harness
    await harness.close()


@pytest.fixture
async def webhooks_only(tmp_path):
    """Never polls within a test: only webhooks can move a job."""
    harness = await _bot(tmp_path, poll=600.0)
    yield harness
    await harness.close()


async def _run_slow(harness, number: int, body: str) -> None:
    payload = harness.github.issue_comment_payload(REPO, number, body, "maint")
    assert (await harness.deliver("issue_comment", payload)).status == 202
    await harness.settle()


async def _finish(harness) -> None:
    await harness.settle_runs(within=90)
    await harness.github.actions_idle()


def _status(harness, number: int) -> dict:
    return harness.github.statuses(REPO, head(harness, number))[0]


async def test_run_slow_dispatches_a_workflow_run_per_job_and_reports_its_junit(polling):
    number = open_slow_pull(polling, FILES, config=CONFIG, reruns=None)
    sha = head(polling, number)
    await _run_slow(polling, number, "run-slow: toy, broken")
    await _finish(polling)
    every = polling.github.dispatches(REPO)
    bodies = [b for b in every if b["inputs"]["pr"] == str(number)]
    assert len(bodies) == 2
    # Then the failing folder's checks: two re-runs and one run at the base, on the same
    # runners, attached to no pull request (they supersede nothing).
    checks = [b["inputs"] for b in every if b["inputs"]["pr"] != str(number)]
    assert sorted(c["folder"] for c in checks) == ["models/broken"] * 3
    assert all(c["pr"] == "" and c["tests"] for c in checks)
    for body in bodies:
        assert body["ref"] == "main" and body["return_run_details"] is True
        inputs = body["inputs"]
        assert inputs["sha"] == sha and inputs["machine_type"] == "single-gpu"
        assert json.loads(inputs["runner_labels"]) == ["self-hosted", "gpu-1"]
        assert inputs["pr"] == str(number) and len(inputs["correlation"]) == 16
    assert sorted(b["inputs"]["folder"] for b in bodies) == ["models/broken", "models/toy"]
    (run,) = await polling.runtime.jobs.runs_of(REPO, number)
    jobs = {j.spec["folder"]: j for j in await polling.runtime.jobs.jobs_of(run.id)}
    toy, broken = jobs["models/toy"], jobs["models/broken"]
    assert (toy.state, toy.passed, toy.skipped, toy.failed) == ("passed", 1, 1, 0)
    assert (broken.state, broken.failed) == ("failed", 1)
    assert broken.failures[0].message and "6 == 7" in broken.failures[0].message
    status = _status(polling, number)
    assert (status["state"], status["context"]) == ("failure", "pytest/custom-tests")
    (comment,) = bot_comments(polling, number)
    assert "Finished, failed" in comment and "assert 6 == 7" in comment
    log = await polling.runtime.jobs.job_log(broken.id)
    assert "workflow run" in log and "test_sums" in log  # the workflow's own log came back


async def test_webhooks_move_the_jobs_without_any_poll(webhooks_only):
    harness = webhooks_only
    number = open_slow_pull(harness, FILES, config=CONFIG)
    hold = harness.github.hold_next_run()
    await _run_slow(harness, number, "run-slow: toy")
    async with asyncio.timeout(30):
        await hold.reached.wait()
    (run,) = await harness.runtime.jobs.runs_of(REPO, number)
    (job,) = await harness.runtime.jobs.jobs_of(run.id)
    assert job.state == "running"
    assert _status(harness, number)["state"] == "pending"
    hold.release()
    await _finish(harness)
    (job,) = await harness.runtime.jobs.jobs_of(run.id)
    assert job.state == "passed"
    assert _status(harness, number)["state"] == "success"
    polls = [
        r
        for r in harness.github.requests
        if r.method == "GET" and r.path.endswith(f"/runs/{hold.run_id}")
    ]
    assert len(polls) <= 1  # the dispatch's own look-up; every change came by webhook
    assert job.timings.get("wait", 0) > 0  # time in the queue is not counted as test time


async def test_a_lost_completion_webhook_is_made_up_by_the_poll(polling):
    number = open_slow_pull(polling, FILES, config=CONFIG)
    polling.github.drop_webhooks("workflow_run", "completed")
    polling.github.drop_webhooks("workflow_job", "completed")
    await _run_slow(polling, number, "run-slow: toy")
    await _finish(polling)
    assert _status(polling, number)["state"] == "success"
    assert any(d.dropped for d in polling.github.sent_webhooks("workflow_run", "completed"))


async def test_a_newer_run_slow_cancels_the_older_workflow_run(polling):
    number = open_slow_pull(polling, FILES, config=CONFIG)
    await _run_slow(polling, number, "run-slow: sleepy")
    async with asyncio.timeout(30):
        while not any(r["status"] == "in_progress" for r in polling.github.workflow_runs(REPO)):
            await asyncio.sleep(0.05)
    await _run_slow(polling, number, "run-slow: toy")
    await _finish(polling)
    runs = {r["display_title"]: r for r in polling.github.workflow_runs(REPO)}
    sleepy = next(r for t, r in runs.items() if "models/sleepy" in t)
    assert (sleepy["status"], sleepy["conclusion"]) == ("completed", "cancelled")
    cancels = [r for r in polling.github.requests if r.path.endswith("/cancel")]
    assert len(cancels) == 1
    older, newer = sorted(await polling.runtime.jobs.runs_of(REPO, number), key=lambda r: r.id)
    assert older.state == "cancelled" and newer.state == "finished"
    assert _status(polling, number)["state"] == "success"


async def test_a_workflow_the_repository_lacks_ends_the_job_in_error_with_githubs_reason(polling):
    files = {k: v for k, v in FILES.items() if not k.startswith(".github/workflows")}
    number = open_slow_pull(polling, files, config=CONFIG)
    await _run_slow(polling, number, "run-slow: toy")
    await _finish(polling)
    (comment,) = bot_comments(polling, number)
    assert "slow-tests.yml was not found on main" in comment
    assert _status(polling, number)["state"] in ("error", "failure")


async def test_inputs_the_workflow_does_not_declare_end_the_job_in_error(polling):
    narrow = WORKFLOW.replace("      pr:\n", "      not_pr:\n")
    assert narrow != WORKFLOW
    number = open_slow_pull(
        polling, {**FILES, ".github/workflows/slow-tests.yml": narrow}, config=CONFIG
    )
    await _run_slow(polling, number, "run-slow: toy")
    await _finish(polling)
    (comment,) = bot_comments(polling, number)
    assert "GitHub refused to start slow-tests.yml (422)" in comment
    assert "Unexpected inputs provided" in comment


async def test_an_older_enterprise_server_is_dispatched_plainly_and_the_run_found_by_name(polling):
    polling.github.actions_run_details = False
    number = open_slow_pull(polling, FILES, config=CONFIG)
    await _run_slow(polling, number, "run-slow: toy")
    await _finish(polling)
    first, second = polling.github.dispatches(REPO)
    assert first.get("return_run_details") is True and "return_run_details" not in second
    assert _status(polling, number)["state"] == "success"
    assert len(polling.github.workflow_runs(REPO)) == 1


async def test_a_bot_restart_follows_the_same_workflow_run_instead_of_dispatching_again(polling):
    number = open_slow_pull(polling, FILES, config=CONFIG)
    hold = polling.github.hold_next_run()
    await _run_slow(polling, number, "run-slow: toy")
    async with asyncio.timeout(30):
        await hold.reached.wait()
    await polling.stop_bot()
    await polling.start_bot()
    hold.release()
    await _finish(polling)
    assert len(polling.github.dispatches(REPO)) == 1
    assert len(polling.github.workflow_runs(REPO)) == 1
    assert _status(polling, number)["state"] == "success"
