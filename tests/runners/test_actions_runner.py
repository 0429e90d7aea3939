"""The Actions runner on its own, against the sandbox GitHub: the ends a job can come to that
the end-to-end tests do not reach (a run that outlives its time, one no runner takes, an
artifact gone), each with its reason and the workflow run cancelled where it was still going."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.runners.actions import ActionsConfig, ActionsRunner, correlation_id
from bot.runners.base import RunRequest
from bot.sandbox import SandboxGitHub
from tests.support.slow_ci import REPO, head, open_slow_pull

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    ".github/workflows/slow-tests.yml": (ROOT / ".github/workflows/slow-tests.yml").read_text(),
    "tests/models/toy/test_toy.py": "def test_one():\n    pass\n",
    "tests/models/sleepy/test_sleep.py": "import time\n\n\ndef test_x():\n    time.sleep(60)\n",
}


@pytest.fixture
async def hub(tmp_path):
    github = SandboxGitHub(tmp_path / "github")
    await github.start()
    yield github
    await github.close()


def _request(hub: SandboxGitHub, folder: str, **fields) -> RunRequest:
    number = open_slow_pull(SimpleNamespace(github=hub), FILES)
    return RunRequest(
        job_id="7",
        run_id="3",
        repo=REPO,
        head_clone_url=f"{hub.url}/{REPO}.git",
        head_sha=head(SimpleNamespace(github=hub), number),
        folder=folder,
        pull_number=number,
        token=lambda: hub.token,
        options={"workflow": "slow-tests.yml", "ref": "main", "run_key": "k"},
        **fields,
    )


async def _run(runner: ActionsRunner, request: RunRequest):
    try:
        async with asyncio.timeout(60):
            return await runner.run(request)
    finally:
        await runner.close()


async def test_a_run_past_its_time_is_cancelled_on_github_and_ends_timed_out(hub):
    request = _request(hub, "models/sleepy", timeout_s=1.0)
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    outcome = await _run(runner, request)
    assert outcome.state == "timed_out"
    assert "the workflow run was cancelled" in outcome.reason
    await hub.actions_idle()
    (run,) = hub.workflow_runs(REPO)
    assert run["conclusion"] == "cancelled"


async def test_a_run_no_runner_takes_ends_in_error_naming_its_labels(hub):
    request = _request(hub, "models/toy")
    hold = hub.hold_next_run()  # no runner ever picks it up
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2, queue_timeout_s=0.5))
    outcome = await _run(runner, request)
    assert outcome.state == "error"
    assert "no runner took the job" in outcome.reason and "single-gpu" in outcome.reason
    hold.release()
    await hub.actions_idle()
    (run,) = hub.workflow_runs(REPO)
    assert run["conclusion"] == "cancelled"


async def test_an_expired_artifact_ends_the_job_in_error_with_the_reason(hub):
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    original = runner._artifact

    async def expire_first(gh, watch, correlation):
        for artifact in hub.artifacts(REPO, watch.run_id):
            hub.expire_artifact(REPO, artifact["id"])
        return await original(gh, watch, correlation)

    runner._artifact = expire_first  # type: ignore[method-assign]
    outcome = await _run(runner, request)
    assert outcome.state == "error"
    assert f"the artifact slow-tests-{correlation_id(request)} has expired" in outcome.reason


async def test_the_token_is_masked_in_the_log_and_never_sent_to_the_download_host(hub):
    request = _request(hub, "models/toy")
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    outcome = await _run(runner, request)
    # The sandbox's download host refuses any request that carries an Authorization header.
    assert outcome.state == "passed", outcome.reason
    assert hub.token not in outcome.log
