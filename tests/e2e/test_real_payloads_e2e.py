"""GitHub's real webhook payloads, through the real server, with the sandbox as github.com.

The payloads (octokit's recorded deliveries) name `Codertocat/Hello-World`; the sandbox serves a
repository of that name, so every handler runs its real code path on GitHub's exact shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.store import outbox

PAYLOADS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "payloads"
pytestmark = pytest.mark.skipif(
    not PAYLOADS.is_dir(), reason=f"real payloads not found at {PAYLOADS} (a clone without shared/)"
)
REPO = "Codertocat/Hello-World"


async def test_every_real_payload_is_accepted_and_handled(harness, caplog):
    caplog.set_level("INFO")
    github = harness.github
    github.create_repo(REPO, files={"README.md": "hi\n"}, default_branch="master")
    github.commit(REPO, "changes", {"README.md": "hello\n"}, author="Codertocat")
    github.open_pull(REPO, "changes", author="Codertocat")  # #1
    github.open_pull(REPO, "changes", author="Codertocat")  # #2, the one the payloads name
    for path in sorted(PAYLOADS.glob("*.json")):
        event = path.name.split(".", 1)[0]
        sent = await harness.deliver(event, json.loads(path.read_text()))
        assert sent.status == 202, (path.name, sent.body)
    await harness.settle()
    deliveries = await harness.deliveries()
    assert sorted(d.event for d in deliveries) == [
        "issue_comment",
        "ping",
        "pull_request",
        "pull_request",
        "push",
    ]
    assert {d.status for d in deliveries} == {"done"}, [d.error for d in deliveries if d.error]
    push = next(d for d in deliveries if d.event == "push")
    assert (push.repo, push.installation_id) == (REPO, 1)
    # No owners file on master: nobody to request; the push added no model; no comment asked
    # for anything. Nothing was written to GitHub and nothing went to Slack.
    assert caplog.text.count("no .github/review-owners on master: no reviewers requested") == 2
    assert harness.github.writes() == []
    assert harness.slack.messages == []
    assert await harness.runtime.store.call(lambda conn: outbox.list_outbox(conn)) == []
