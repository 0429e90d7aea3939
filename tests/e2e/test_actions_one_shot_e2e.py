"""`bot handle` as the maintainer-bot workflow runs it, with no server: a `run-slow` comment
dispatches its jobs to GitHub Actions, the process follows them to their end by polling (no
webhook reaches a one-shot process) and exits; a re-run of the same delivery, with a fresh
database, finds those runs instead of dispatching them again."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.config import Settings
from bot.ops.cli import _delivery_from, _handle_once
from tests.sandbox import SandboxGitHub
from tests.support.slow_ci import REPO, bot_comments, head, open_slow_pull

ROOT = Path(__file__).resolve().parents[2]
FILES = {
    "README.md": "toy\n",
    ".github/workflows/slow-tests.yml": (ROOT / ".github/workflows/slow-tests.yml").read_text(),
    "tests/models/toy/test_toy.py": "def test_one():\n    assert 1 + 1 == 2\n",
}


@pytest.fixture
async def hub(tmp_path):
    github = SandboxGitHub(tmp_path / "github")
    await github.start()
    yield github
    await github.close()


async def _handle(hub: SandboxGitHub, payload: dict, delivery_id: str) -> int:
    settings = Settings(github_token=hub.token, github_api_url=hub.url, actions_poll_seconds=0.5)
    delivery = _delivery_from("issue_comment", payload, delivery_id)
    return await _handle_once(settings, delivery, dry_run=False, override=None)


async def test_a_run_slow_without_a_server_is_dispatched_followed_and_reported(hub, capsys):
    harness = SimpleNamespace(github=hub)
    number = open_slow_pull(
        harness, FILES, config='runner = "github-actions"\nmachine_types = ["single-gpu"]\n'
    )
    payload = hub.issue_comment_payload(REPO, number, "run-slow: toy", "maint")
    assert await _handle(hub, payload, "actions-1") == 0
    assert "followed 1 run(s) on GitHub Actions to their end" in capsys.readouterr().err
    (run,) = hub.workflow_runs(REPO)
    assert run["conclusion"] == "success"
    assert hub.statuses(REPO, head(harness, number))[0]["state"] == "success"
    (comment,) = bot_comments(harness, number)
    assert "Finished, passed" in comment

    # The workflow re-run: a new process, an empty database, the same delivery.
    assert await _handle(hub, payload, "actions-1") == 0
    assert len(hub.dispatches(REPO)) == 1 and len(hub.workflow_runs(REPO)) == 1
    assert len(bot_comments(harness, number)) == 1


async def test_without_the_actions_runner_configured_a_run_slow_is_refused(hub, capsys):
    harness = SimpleNamespace(github=hub)
    number = open_slow_pull(harness, FILES)
    payload = hub.issue_comment_payload(REPO, number, "run-slow: toy", "maint")
    assert await _handle(hub, payload, "actions-2") == 0
    summary = json.loads(capsys.readouterr().out)
    assert "handlers.slow_ci.handler.on_comment" in summary["handlers_run"]
    (reply,) = bot_comments(harness, number)
    assert 'runner = "github-actions"' in reply
    assert hub.dispatches(REPO) == [] and hub.statuses(REPO, head(harness, number)) == []
