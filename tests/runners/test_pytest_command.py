"""Every runner runs the one pytest command line: a test that reports how it was started says
the same words under the local runner and under the stand-in's Actions (which runs the test
step of `slow-tests.yml`, itself checked against the same line in tests/test_workflows.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bot.jobs.runners import JobOutcome, LocalRunner
from bot.jobs.runners.actions import ActionsConfig, ActionsRunner
from bot.jobs.runners.base import RunRequest
from bot.jobs.runners.pytest_command import PYTEST_ENV, pytest_argv
from tests.runners.helpers import TOY_PYPROJECT, Git, request_for
from tests.sandbox import SandboxGitHub
from tests.support.slow_ci import REPO, head, open_slow_pull

ROOT = Path(__file__).resolve().parents[2]
#: Fails with its own argv and environment, which the JUnit report then carries to the bot.
SPY = """\
import json
import os
import sys


def test_says_how_it_was_run():
    seen = {"argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in %r}}
    raise AssertionError("RAN " + json.dumps(seen))
"""
FOLDER = "models/spy"
FILES = {
    "pyproject.toml": TOY_PYPROJECT,
    f"tests/{FOLDER}/test_spy.py": SPY % sorted(PYTEST_ENV),
}


def how_it_ran(outcome: JobOutcome) -> dict[str, Any]:
    (failure,) = outcome.failures
    return json.loads(failure.message.split("RAN ", 1)[1])


def expected(seen: dict[str, Any]) -> dict[str, Any]:
    """The command line with the report where this runner put it (a path of its own)."""
    (junit,) = [a.removeprefix("--junitxml=") for a in seen["argv"] if a.startswith("--junitxml=")]
    return {"argv": pytest_argv("python", junit, [f"tests/{FOLDER}"])[3:], "env": dict(PYTEST_ENV)}


async def test_the_local_runner_runs_the_one_command_line(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    repo = tmp_path / "origin"
    sha = git.init(repo, FILES)
    outcome = await runner.run(request_for(repo, sha, folder=FOLDER))
    assert outcome.state == "failed", outcome.log
    seen = how_it_ran(outcome)
    assert seen == expected(seen)


async def test_the_actions_runner_runs_the_one_command_line(hub: SandboxGitHub) -> None:
    workflow = (ROOT / ".github/workflows/slow-tests.yml").read_text()
    harness = SimpleNamespace(github=hub)
    number = open_slow_pull(harness, {".github/workflows/slow-tests.yml": workflow, **FILES})
    request = RunRequest(
        job_id="7",
        run_id="3",
        repo=REPO,
        head_clone_url=f"{hub.url}/{REPO}.git",
        head_sha=head(harness, number),
        folder=FOLDER,
        pull_number=number,
        token=lambda: hub.token,
        options={"workflow": "slow-tests.yml", "ref": "main", "run_key": "k"},
    )
    runner = ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))
    try:
        async with asyncio.timeout(60):
            outcome = await runner.run(request)
    finally:
        await runner.close()
    assert outcome.state == "failed", outcome.reason
    seen = how_it_ran(outcome)
    assert seen == expected(seen)
