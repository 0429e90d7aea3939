"""A pull-request author who writes the bot's marker into a comment of their own gets nothing for
it: the bot finds its comments among the ones it wrote, never edits the author's, and never
takes the author's for a reply it already gave. Through the sandbox GitHub, with the bot's real
client."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from bot.clients.github import GitHubAPI
from bot.kit.comments import Author, bot_author, find_marked_comment, marker, post_once
from bot.kit.conversation import Conversation
from tests.sandbox import SandboxGitHub
from tests.support.slow_ci import REPO, bot_comments, open_slow_pull

FILES = {
    "README.md": "toy\n",
    "tests/models/toy/test_toy.py": "def test_one():\n    assert 1 + 1 == 2\n",
}
FAKE = "Finished, passed: every slow test of this PR passed (not really)."


def _patches_of(hub: SandboxGitHub, comment_id: int) -> list[str]:
    return [
        r.path
        for r in hub.requests
        if r.method == "PATCH" and r.path.endswith(f"/issues/comments/{comment_id}")
    ]


# ---------------------------------------------------------------------- the bot as it runs


async def test_a_marker_planted_before_a_run_does_not_get_the_authors_comment_edited(harness):
    number = open_slow_pull(harness, FILES)
    # Run ids count up from 1: the author can write the first run's marker before it exists.
    planted = harness.github.add_comment(
        REPO, number, f"{marker('slow_ci:run:1')}\n{FAKE}", "carol"
    )
    opened = harness.github.pull_request_payload(REPO, number, "opened")
    assert (await harness.deliver("pull_request", opened)).status == 202
    await harness.settle()  # the bot has seen the head it is about to be asked to test
    await asyncio.sleep(1.05 - time.time() % 1)  # GitHub dates a comment to the second
    payload = harness.github.issue_comment_payload(REPO, number, "run-slow: toy", "maint")
    assert (await harness.deliver("issue_comment", payload)).status == 202
    await harness.settle_runs()
    comments = {c["id"]: c for c in harness.github.comments(REPO, number)}
    assert comments[planted["id"]]["body"] == planted["body"]
    assert _patches_of(harness.github, planted["id"]) == []
    ours = [c for c in comments.values() if c["user"]["login"] == harness.github.bot_login]
    (result,) = [c for c in ours if marker("slow_ci:run:1") in c["body"]]
    assert "This comment contains run-slow" in result["body"]
    (run,) = await harness.runtime.jobs.runs_of(REPO, number)
    assert (await harness.runtime.jobs.report_state(run.id)).comment_id == result["id"]


async def test_a_marker_planted_before_the_reminder_does_not_silence_it(harness):
    harness.github.create_repo(REPO, files=FILES, collaborators={"maint": "write"})
    harness.github.commit(
        REPO, "tune", {"tests/models/toy/test_toy.py": "def test_two():\n    pass\n"},
        author="carol",
    )  # fmt: skip
    number = harness.github.open_pull(REPO, "tune", author="carol")
    harness.github.add_comment(
        REPO, number, f"{marker(f'slow_ci:reminder:{REPO}#{number}')}\nnothing to see", "carol"
    )
    await harness.deliver(
        "pull_request", harness.github.pull_request_payload(REPO, number, "opened")
    )
    await harness.settle()
    reminders = [
        c
        for c in harness.github.comments(REPO, number)
        if c["user"]["login"] == harness.github.bot_login and "run-slow: toy" in c["body"]
    ]
    assert len(reminders) == 1
    assert len(bot_comments(harness, number)) == 2  # the author's planted one, and the bot's


# ---------------------------------------------------------------------- the functions themselves


@pytest.fixture
async def hub(tmp_path):
    github = SandboxGitHub(tmp_path / "github")
    await github.start()
    github.create_repo(REPO, files={"README.md": "x\n"}, collaborators={"maint": "write"})
    github.commit(REPO, "feature", {"a.py": "x = 1\n"}, author="carol")
    yield github
    await github.close()


@pytest.fixture
async def gh(hub):
    async with aiohttp.ClientSession() as session:
        yield GitHubAPI(session, oauth_token=hub.token, base_url=hub.url)


async def test_every_way_of_finding_a_marked_comment_skips_the_authors(hub, gh):
    number = hub.open_pull(REPO, "feature", author="carol")
    url = f"/repos/{REPO}/issues/{number}/comments"
    planted = {
        key: hub.add_comment(REPO, number, f"quoting the bot:\n{marker(key)}", "carol")
        for key in ("a", "b", "c", "d")
    }
    # Another App's bot account quoting the marker is not this bot either.
    hub.add_comment(REPO, number, marker("a"), "other-app[bot]")
    conversation = Conversation(gh, REPO)

    assert await find_marked_comment(gh, url, "a") is None
    upserted = await conversation.upsert_comment(url, "a", f"{marker('a')}\nthe result")
    commented = await conversation.comment(url, "b", f"{marker('b')}\nonce")
    assert await conversation.reply(url, "c", "a reply") == "a reply"
    assert await post_once(gh, url, "d", "posted once") is True

    mine = {c["id"]: c for c in hub.comments(REPO, number) if c["user"]["login"] == hub.bot_login}
    assert upserted in mine and commented in mine and len(mine) == 4
    for key, comment in planted.items():
        assert _patches_of(hub, comment["id"]) == [], key
    # Its own comments it still finds: nothing is posted twice, a changed body is an edit.
    assert await conversation.upsert_comment(url, "a", f"{marker('a')}\nnew result") == upserted
    assert await conversation.comment(url, "b", "again") == commented
    assert await post_once(gh, url, "d", "posted once") is False
    found = await find_marked_comment(gh, url, "a")
    assert found is not None and found["id"] == upserted and found["body"].endswith("new result")
    assert len([c for c in hub.comments(REPO, number) if c["user"]["login"] == hub.bot_login]) == 4


async def test_the_bots_identity_comes_from_github(hub, gh):
    # The sandbox's token writes as the App's bot account, as GitHub Actions' token does: GitHub
    # answers `GET /user` with 403 for it.
    assert await bot_author(gh) == Author()
    async with aiohttp.ClientSession() as session:
        token = hub.auth.mint_user_token("maint")["access_token"]
        person = GitHubAPI(session, oauth_token=token, base_url=hub.url)
        assert await bot_author(person) == Author(login="maint")
        asked = [r for r in hub.requests if r.path == "/user"]
        assert len(asked) == 2  # once per token, however many comments are looked for
        assert await bot_author(person) == Author(login="maint")
        anonymous = GitHubAPI(session, base_url=hub.url)  # a dry run without credentials
        assert await bot_author(anonymous) == Author()
        assert [r for r in hub.requests if r.path == "/user"] == asked
    assert await bot_author(gh, app_id="1") == Author(app_id="1")


@pytest.mark.parametrize(
    ("author", "comment", "wrote"),
    [
        (Author(login="Maint"), {"user": {"login": "maint", "type": "User"}}, True),
        (Author(login="maint"), {"user": {"login": "carol", "type": "User"}}, False),
        (
            Author(login="maint"),
            {"user": {"login": "maint[bot]", "type": "Bot"}, "performed_via_github_app": {"id": 1}},
            False,
        ),
        (
            Author(),
            {"user": {"login": "x[bot]", "type": "Bot"}, "performed_via_github_app": {"id": 7}},
            True,
        ),
        (Author(), {"user": {"login": "x[bot]", "type": "Bot"}}, False),
        (
            Author(),
            {"user": {"login": "carol", "type": "User"}, "performed_via_github_app": {"id": 7}},
            False,  # a person's comment through an App's sign-in is still the person's
        ),
        (
            Author(app_id="7"),
            {"user": {"login": "x[bot]", "type": "Bot"}, "performed_via_github_app": {"id": 7}},
            True,
        ),
        (
            Author(app_id="7"),
            {"user": {"login": "y[bot]", "type": "Bot"}, "performed_via_github_app": {"id": 8}},
            False,
        ),
        (Author(), {"user": None, "performed_via_github_app": None}, False),
        (Author(login="ghost"), {}, False),
    ],
)
def test_who_wrote_a_comment(author, comment, wrote):
    assert author.wrote(comment) is wrote
