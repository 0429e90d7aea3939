"""Whose approval runs which commit, end to end: the real server, the sandbox GitHub, real git.

A `run-slow` comment approves the head only when the bot saw the head become that commit before
the comment was written, a time GitHub (the comment) and the bot (its record of deliveries)
write, never the commit's dates, which the pull request's author writes. The label approves the
head it was added on, and each later push only when every push since an approved head was made
by someone who may approve. Each hostile test below is an attack that ran code before.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from tests.support.slow_ci import PAST, REPO, bot_comments, head

FILES = {
    "README.md": "toy\n",
    "tests/models/toy/test_toy.py": "def test_one():\n    assert 1 + 1 == 2\n",
}
#: Half an hour before now: a date the author wrote into a commit pushed after the approval.
BACKDATED = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _repo(harness) -> None:
    harness.github.create_repo(
        REPO,
        files={**FILES, ".github/bot.toml": "[slow_ci]\nreminder = false\n"},
        collaborators={"maint": "write", "reader": "read"},
    )


async def _open(harness, branch: str = "feature", *, message: str = "Update") -> int:
    """A PR from `branch`, opened with GitHub's `opened` delivery: the bot's first record."""
    harness.github.commit(
        REPO, branch, {"src.py": "x = 1\n"}, author="carol", message=message, date=PAST
    )
    number = harness.github.open_pull(REPO, branch, author="carol")
    await _deliver(
        harness, "pull_request", harness.github.pull_request_payload(REPO, number, "opened")
    )
    return number


async def _deliver(harness, event: str, payload: dict) -> None:
    assert (await harness.deliver(event, payload)).status == 202
    await harness.settle()


async def _push(
    harness, number: int, changes: dict, *, by: str, message: str = "Update", **kw
) -> str:
    """`by` pushes a commit to the PR's branch; GitHub's `synchronize` reaches the bot."""
    before = head(harness, number)
    after = harness.github.commit(REPO, "feature", changes, author=by, message=message, **kw)
    payload = harness.github.pull_request_payload(
        REPO, number, "synchronize", sender=by, before=before
    )
    await _deliver(harness, "pull_request", payload)
    return after


async def _next_second() -> None:
    """GitHub writes a comment's time to the second: a comment written after this was written
    after everything the bot received before it."""
    await asyncio.sleep(1.05 - time.time() % 1)


async def _runs(harness, number: int) -> list:
    return await harness.runtime.jobs.runs_of(REPO, number)


def _statuses(harness, sha: str) -> list[str]:
    return [s["state"] for s in harness.github.statuses(REPO, sha)]


# ---------------------------------------------------------------------- comments


async def test_a_comment_newer_than_the_bots_record_of_the_head_runs_it(harness):
    _repo(harness)
    number = await _open(harness)
    sha = head(harness, number)
    await _next_second()
    ask = harness.github.issue_comment_payload(REPO, number, "run-slow: toy", "maint")
    await _deliver(harness, "issue_comment", ask)
    await harness.settle_runs()
    (run,) = await _runs(harness, number)
    assert run.head_sha == sha
    (comment,) = bot_comments(harness, number)
    assert "Finished, passed" in comment
    assert _statuses(harness, sha)[0] == "success"


async def test_a_backdated_commit_pushed_after_the_approval_does_not_run(harness):
    _repo(harness)
    number = await _open(harness)
    await _next_second()
    # The maintainer approves what they reviewed; the worker is behind, so the comment's
    # delivery is handled after the push that follows it.
    ask = harness.github.issue_comment_payload(REPO, number, "run-slow: toy", "maint")
    evil = await _push(harness, number, {"src.py": "import os\n"}, by="carol", date=BACKDATED)
    await _deliver(harness, "issue_comment", ask)
    await harness.settle_runs()
    assert await _runs(harness, number) == []
    assert _statuses(harness, evil) == []
    (reply,) = bot_comments(harness, number)
    assert "older than the pull request's latest commit" in reply
    assert evil[:12] in reply


async def test_a_force_push_back_to_a_commit_never_reviewed_after_the_approval_does_not_run(
    harness,
):
    _repo(harness)
    github = harness.github
    evil = github.commit(
        REPO, "feature", {"src.py": "import os\n"}, author="carol", message="Evil", date=PAST
    )
    github.commit(REPO, "feature", {"src.py": "x = 1\n"}, author="carol", date=PAST)
    number = github.open_pull(REPO, "feature", author="carol")
    await _deliver(harness, "pull_request", github.pull_request_payload(REPO, number, "opened"))
    reviewed = head(harness, number)
    await _next_second()
    ask = github.issue_comment_payload(REPO, number, "run-slow: toy", "maint")
    github.force_push(REPO, "feature", evil)
    payload = github.pull_request_payload(
        REPO, number, "synchronize", sender="carol", before=reviewed
    )
    await _deliver(harness, "pull_request", payload)
    await _deliver(harness, "issue_comment", ask)
    await harness.settle_runs()
    assert head(harness, number) == evil
    assert await _runs(harness, number) == []
    assert _statuses(harness, evil) == []
    (reply,) = bot_comments(harness, number)
    assert "older than the pull request's latest commit" in reply


async def test_without_a_record_of_the_head_the_bot_asks_for_its_sha_and_runs_on_it(harness):
    _repo(harness)
    # pushed in the second the comment is written: GitHub's test merge is no older than it
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    harness.github.commit(
        REPO, "feature", {"src.py": "x = 1\n"}, author="carol", date=PAST, pushed_at=now
    )
    number = harness.github.open_pull(REPO, "feature", author="carol")  # before the bot was here
    sha = head(harness, number)
    ask = harness.github.issue_comment_payload(
        REPO, number, "run-slow: toy", "maint", created_at=now
    )
    await _deliver(harness, "issue_comment", ask)
    assert await _runs(harness, number) == []
    (reply,) = bot_comments(harness, number)
    assert f"run-slow: toy sha={sha}" in reply

    wrong = harness.github.issue_comment_payload(
        REPO, number, "run-slow: toy sha=0123456789ab", "maint"
    )
    await _deliver(harness, "issue_comment", wrong)
    assert await _runs(harness, number) == []
    assert "older than the pull request's latest commit" in bot_comments(harness, number)[-1]

    named = harness.github.issue_comment_payload(
        REPO, number, f"run-slow: toy sha={sha[:12]}", "maint"
    )
    await _deliver(harness, "issue_comment", named)
    await harness.settle_runs()
    (run,) = await _runs(harness, number)
    assert run.head_sha == sha
    assert _statuses(harness, sha)  # the run reported on the named commit


# ---------------------------------------------------------------------- the label


async def _label(harness, number: int, by: str = "maint") -> None:
    harness.github.add_label(REPO, number, "run-slow")
    payload = harness.github.pull_request_payload(
        REPO, number, "labeled", sender=by, label="run-slow"
    )
    await _deliver(harness, "pull_request", payload)
    await harness.settle_runs()


async def test_a_maintainers_push_on_top_of_a_refused_push_is_refused_too(harness):
    _repo(harness)
    number = await _open(harness, message="[run-slow] toy")
    approved = head(harness, number)
    await _label(harness, number)
    assert [run.head_sha for run in await _runs(harness, number)] == [approved]

    refused = await _push(
        harness, number, {"src.py": "import os\n"}, by="reader", message="[run-slow] toy"
    )
    (reply,) = [c for c in bot_comments(harness, number) if refused[:12] in c]
    assert "@reader" in reply

    on_top = await _push(harness, number, {"b.py": "y = 2\n"}, by="maint", message="[run-slow] toy")
    await harness.settle_runs()
    assert [run.head_sha for run in await _runs(harness, number)] == [approved]
    assert _statuses(harness, on_top) == []
    (reply,) = [c for c in bot_comments(harness, number) if on_top[:12] in c]
    assert "@reader" in reply and "maintainer" in reply


async def test_after_a_refused_push_a_maintainers_comment_approves_again(harness):
    _repo(harness)
    number = await _open(harness, message="[run-slow] toy")
    await _label(harness, number)
    await _push(harness, number, {"src.py": "x = 2\n"}, by="reader", message="[run-slow] toy")
    reviewed = head(harness, number)
    await _next_second()
    ask = harness.github.issue_comment_payload(REPO, number, "run-slow: toy", "maint")
    await _deliver(harness, "issue_comment", ask)
    await harness.settle_runs()
    assert (await _runs(harness, number))[0].head_sha == reviewed

    later = await _push(harness, number, {"b.py": "y = 2\n"}, by="maint", message="[run-slow] toy")
    await harness.settle_runs()
    assert (await _runs(harness, number))[0].head_sha == later
    assert _statuses(harness, later)


async def test_after_a_refused_push_adding_the_label_again_approves(harness):
    _repo(harness)
    number = await _open(harness, message="[run-slow] toy")
    await _label(harness, number)
    refused = await _push(
        harness, number, {"src.py": "x = 2\n"}, by="reader", message="[run-slow] toy"
    )
    harness.github.remove_label(REPO, number, "run-slow")
    await _label(harness, number)
    assert (await _runs(harness, number))[0].head_sha == refused
