"""`bot handle --dry-run`: every read goes to GitHub, every write is printed instead of sent."""

from __future__ import annotations

import json

from bot.config import Settings
from bot.ops.cli import _delivery_from, _handle_once
from tests.sandbox import SandboxGitHub

REPO = "acme/models"


async def test_dry_run_prints_the_review_request_and_sends_nothing(tmp_path, capsys):
    github = SandboxGitHub(tmp_path / "github")
    await github.start()
    try:
        github.create_repo(
            REPO,
            files={".github/review-owners": "* @alice\n", "a.py": ""},
            collaborators={"alice": "write"},
        )
        github.commit(REPO, "change", {"a.py": "x\n"}, author="outsider")
        number = github.open_pull(REPO, "change", author="outsider")
        payload = github.pull_request_payload(REPO, number, "opened")
        settings = Settings(github_token=github.token, github_api_url=github.url)
        delivery = _delivery_from("pull_request", payload, "local-1")
        assert await _handle_once(settings, delivery, dry_run=True, override=None) == 0
    finally:
        await github.close()
    summary = json.loads(capsys.readouterr().out)
    assert summary["handlers_run"] == [
        "handlers.reviewers.handler.on_ready",
        "handlers.slow_ci.handler.remind",  # a.py is no model code: no reminder to write
    ]
    (write,) = summary["would_send"]
    assert write["github"]["method"] == "POST"
    assert write["github"]["url"].endswith(f"/repos/{REPO}/pulls/{number}/requested_reviewers")
    assert write["github"]["body"] == {"reviewers": ["alice"], "team_reviewers": []}
    assert github.writes() == []  # nothing was sent
    assert github.requested_reviewers(REPO, number) == ([], [])
    assert any(r.path.endswith("/files") for r in github.requests)  # reads were real
