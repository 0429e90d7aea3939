"""What the `run-slow` end-to-end tests share: a served repository with a pull request whose
head was pushed an hour ago, so GitHub's test merge of it predates a comment made now and the
comment approves it, and reading back the result."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from bot.kit.comments import MARKER_PREFIX

REPO = "acme/models"
PAST = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_slow_pull(
    harness, files: Mapping[str, str], *, config: str = "", reruns: int | None = 0
) -> int:
    """The repository with `files` (the reminder off), and a PR from `feature`, both pushed an
    hour ago (the bot is sent no `opened`: the test merge is what dates the head); its number.

    A failed run's failures are re-run `reruns` times (None: the default), none unless a test
    is about those checks: each costs jobs the test would only wait for."""
    if reruns is not None:
        config = f"reruns = {reruns}\n" + config
    harness.github.create_repo(
        REPO,
        files={**files, ".github/bot.toml": "[slow_ci]\nreminder = false\n" + config},
        collaborators={"maint": "write", "reader": "read"},
        pushed_at=PAST,
    )
    harness.github.commit(
        REPO, "feature", {"src.py": "x = 1\n"}, author="carol", date=PAST, pushed_at=PAST
    )
    return harness.github.open_pull(REPO, "feature", author="carol")


def head(harness, number: int) -> str:
    """The PR branch's tip now."""
    pull = harness.github.pull(REPO, number)
    return harness.github.git(REPO).resolve(pull.head_ref)


def bot_comments(harness, number: int) -> list[str]:
    return [c["body"] for c in harness.github.comments(REPO, number) if MARKER_PREFIX in c["body"]]
