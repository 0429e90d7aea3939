"""The real server against a misbehaving GitHub, in App mode, and with team owners."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.config import Settings
from tests.sandbox.harness import Harness

REPO = "acme/models"
OWNERS = "* @acme/core\n/model_lib/ @acme/models @alice\n"


def setup(harness: Harness, *, owners: str = OWNERS) -> int:
    github = harness.github
    github.create_repo(
        REPO,
        files={".github/review-owners": owners, "model_lib/a.py": "", "README.md": ""},
        collaborators={"alice": "write", "bob": "write"},
    )
    github.add_team("acme", "core", ["bob"])
    github.add_team("acme", "models", ["alice"])
    github.commit(REPO, "change", {"model_lib/a.py": "x\n" * 20, "README.md": "y\n"})
    return github.open_pull(REPO, "change", author="outsider")


async def opened(harness: Harness, number: int) -> None:
    payload = harness.github.pull_request_payload(REPO, number, "opened")
    await harness.deliver("pull_request", payload)


async def test_team_owners_are_requested_as_teams(harness):
    number = setup(harness)
    await opened(harness, number)
    await harness.settle()
    # model_lib/a.py (20 lines) -> @acme/models and @alice; README.md (1) -> @acme/core.
    # Ties are broken by name: @acme/models before @alice.
    assert harness.github.requested_reviewers(REPO, number) == (["alice"], ["models"])


async def test_github_errors_are_retried_until_the_delivery_succeeds(harness):
    number = setup(harness)
    harness.github.fail_next("GET", r"/pulls/\d+/files$", 502, times=6)
    await opened(harness, number)
    await harness.settle()
    (delivery,) = await harness.deliveries()
    # The client retries a 502 three times: the first delivery attempt gives up after four
    # answers, the retried delivery gets through after the last two.
    assert delivery.status == "done"
    assert delivery.attempts == 2
    assert harness.github.requested_reviewers(REPO, number) == (["alice"], ["models"])


async def test_github_down_for_good_ends_failed_with_the_error(tmp_path):
    settings = Settings(database=str(tmp_path / "bot.sqlite3"), max_attempts=2)
    harness = Harness(tmp_path, settings=replace(settings, retry_base_seconds=0.01))
    await harness.start()
    try:
        await _down_for_good(harness)
    finally:
        await harness.close()


async def _down_for_good(harness: Harness) -> None:
    number = setup(harness)
    harness.github.fail_next("GET", r"/pulls/\d+/files$", 503, times=1000)
    await opened(harness, number)
    await harness.settle()
    (delivery,) = await harness.deliveries()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert "GitHubBroken" in delivery.error
    assert "GitHub answered 503 to GET" in delivery.error


@pytest.fixture
async def app_harness(tmp_path):
    """The bot in GitHub App mode: it mints installation tokens with a real JWT."""
    settings = Settings(database=str(tmp_path / "bot.sqlite3"), retry_base_seconds=0.01)
    opened = Harness(tmp_path, settings=settings)
    await opened.start()
    await opened.stop_bot()
    opened.settings = replace(
        opened.settings,
        github_token=None,
        github_app_id=str(opened.github.app_id),
        github_private_key=opened.github.private_key_pem,
    )
    await opened.start_bot()
    yield opened
    await opened.close()


async def test_app_mode_mints_one_installation_token(app_harness):
    harness = app_harness
    number = setup(harness)
    for action in ("opened", "ready_for_review"):
        payload = harness.github.pull_request_payload(REPO, number, action)
        await harness.deliver("pull_request", payload)
    await harness.settle()
    mints = [r for r in harness.github.requests if r.path.endswith("/access_tokens")]
    assert [r.status for r in mints] == [201]  # cached for the second delivery
    assert harness.github.requested_reviewers(REPO, number) == (["alice"], ["models"])
