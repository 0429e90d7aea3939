"""Reviewer requests end to end: real server, sandbox GitHub, this project's own owners file."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPO = "maintainer-bot/maintainer-bot"
OWNERS = (ROOT / ".github" / "review-owners").read_text()
TEAMMATES = (
    "mb-lead mb-core mb-infra mb-models mb-gpt2 mb-llama mb-bert mb-owners mb-testing mb-docs"
)
TEAM = dict.fromkeys(TEAMMATES.split(), "write")
GPT2 = "model_lib/models/gpt2/modeling_gpt2.py"
GPT2_TEST = "tests/models/gpt2/test_modeling_gpt2.py"


def _lines(n: int) -> str:
    return "".join(f"line {i}\n" for i in range(n))


def make_repo(harness, collaborators):
    harness.github.create_repo(
        REPO,
        files={
            ".github/review-owners": OWNERS,
            GPT2: "",
            GPT2_TEST: "",
            "bot/server/app.py": "",
            "README.md": "",
        },
        collaborators=collaborators,
    )


def open_pr(harness, author: str, *, draft: bool = False) -> int:
    harness.github.commit(
        REPO,
        "add-cache",
        {GPT2: _lines(50), GPT2_TEST: _lines(10), "bot/server/app.py": _lines(5)},
        author=author,
        message="Add a KV cache to gpt2",
    )
    return harness.github.open_pull(REPO, "add-cache", author=author, draft=draft)


async def opened(harness, number: int, action: str = "opened") -> None:
    payload = harness.github.pull_request_payload(REPO, number, action)
    sent = await harness.deliver("pull_request", payload)
    assert sent.status == 202
    await harness.settle()


async def test_outside_contributor_gets_the_two_top_owners(harness):
    make_repo(harness, TEAM)
    number = open_pr(harness, "outsider")
    await opened(harness, number)
    # gpt2's model file (50 lines) and its test (10) -> @mb-gpt2 60, @mb-models 50;
    # bot/server/app.py (5) -> @mb-infra 5, @mb-lead 5.
    assert harness.github.requested_reviewers(REPO, number) == (["mb-gpt2", "mb-models"], [])
    posts = [r for r in harness.github.writes() if r.path.endswith("/requested_reviewers")]
    assert len(posts) == 1
    assert posts[0].json == {"reviewers": ["mb-gpt2", "mb-models"], "team_reviewers": []}


async def test_a_non_collaborator_owner_falls_through_to_the_next(harness):
    make_repo(harness, {k: v for k, v in TEAM.items() if k != "mb-gpt2"})
    number = open_pr(harness, "outsider")
    await opened(harness, number)
    # @mb-gpt2 is refused (422); the next owners by lines, ties by name: @mb-infra, @mb-lead.
    assert harness.github.requested_reviewers(REPO, number) == (["mb-models", "mb-infra"], [])
    statuses = [r.status for r in harness.github.writes() if r.path.endswith("reviewers")]
    assert 422 in statuses
    assert [d.status for d in await harness.deliveries()] == ["done"]


async def test_an_internal_author_gets_none(harness):
    make_repo(harness, TEAM)
    number = open_pr(harness, "mb-bert")
    await opened(harness, number)
    assert harness.github.requested_reviewers(REPO, number) == ([], [])
    # Nothing but `run-slow`'s one reminder (the PR changes gpt2's model code).
    assert [w.path for w in harness.github.writes()] == [f"/repos/{REPO}/issues/{number}/comments"]


async def test_drafts_wait_for_ready_and_redeliveries_request_nothing_again(harness):
    make_repo(harness, TEAM)
    number = open_pr(harness, "outsider", draft=True)
    await opened(harness, number)
    assert harness.github.requested_reviewers(REPO, number) == ([], [])
    harness.github.repos[REPO].issues[number].draft = False
    payload = harness.github.pull_request_payload(REPO, number, "ready_for_review")
    for delivery in ("ready-1", "ready-1", "ready-2"):
        await harness.deliver("pull_request", payload, delivery_id=delivery)
    await harness.settle()
    posts = [r for r in harness.github.writes() if r.path.endswith("/requested_reviewers")]
    assert len(posts) == 1
    assert harness.github.requested_reviewers(REPO, number) == (["mb-gpt2", "mb-models"], [])


async def test_the_owners_file_comes_from_the_base_branch(harness):
    make_repo(harness, TEAM)
    harness.github.commit(
        REPO,
        "sneaky",
        {".github/review-owners": "* @outsider-friend\n", GPT2: _lines(3)},
        author="outsider",
    )
    number = harness.github.open_pull(REPO, "sneaky", author="outsider")
    await opened(harness, number)
    # The base branch's file decides: the owners file itself is owned by `*` (@mb-lead,
    # @mb-core), and the PR's own copy naming @outsider-friend is ignored.
    assert harness.github.requested_reviewers(REPO, number) == (["mb-core", "mb-lead"], [])


@pytest.mark.parametrize("config", ["[reviewers]\nenabled = false\n"])
async def test_configuration_turns_it_off(harness, config):
    make_repo(harness, TEAM)
    harness.github.commit(REPO, "main", {".github/bot.toml": config})
    number = open_pr(harness, "outsider")
    await opened(harness, number)
    assert harness.github.requested_reviewers(REPO, number) == ([], [])


async def test_a_broken_configuration_fails_visibly(harness):
    make_repo(harness, TEAM)
    harness.github.commit(REPO, "main", {".github/bot.toml": "[reviewers]\ncount = 'two'\n"})
    number = open_pr(harness, "outsider")
    await opened(harness, number)
    (delivery,) = await harness.deliveries()
    assert delivery.status == "failed"
    assert delivery.attempts == 1  # a retry cannot fix a config error
    assert "'reviewers.count' must be an integer" in delivery.error
