"""The reviewers handler as a table: GitHub answers this, the handler does that. No HTTP.

GitHub is `FakeGitHub`, standing in for `ReviewersGitHub` (the handler's narrow client); the
context records the effects the handler marks done, so a row also says what a redelivery sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bot.config import RepoConfig
from codeowners import MAX_BYTES
from handlers.reviewers.client import Refused
from handlers.reviewers.config import ReviewersConfig
from handlers.reviewers.handler import request_reviewers
from handlers.reviewers.plan import Candidate, ChangedFile

REPO = "acme/widgets"
OWNERS = "/a.py @alice\n/b.py @bob\n/c.py @carol\n/docs/ @acme/docs\n"
FILES = [ChangedFile("a.py", 30), ChangedFile("b.py", 20), ChangedFile("c.py", 10)]
KEY = f"reviewers:{REPO}#7"


@dataclass
class FakeGitHub:
    """What GitHub answers; `asked` and `requests` are what the handler did with it."""

    owners: str | None = OWNERS
    files: list[ChangedFile] = field(default_factory=lambda: list(FILES))
    reviews: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    load: dict[str, int] = field(default_factory=dict)
    refuses: frozenset[str] = frozenset()  # owners GitHub answers 422 for
    asked: list[str] = field(default_factory=list)
    requests: list[tuple[str, ...]] = field(default_factory=list)

    async def owners_file(self, path: str, ref: str) -> str | None:
        self.asked.append(f"owners_file {path}@{ref}")
        return self.owners

    async def changed_files(self, number: int) -> list[ChangedFile]:
        self.asked.append("changed_files")
        return self.files

    async def reviewers_so_far(self, number: int) -> tuple[list[str], list[str]]:
        self.asked.append("reviewers_so_far")
        return self.reviews, self.requested

    async def open_review_load(self) -> dict[str, int]:
        self.asked.append("open_review_load")
        return self.load

    async def request_reviews(self, number: int, batch: list[Candidate]) -> None:
        owners = tuple(c.owner for c in batch)
        self.requests.append(owners)
        if self.refuses & set(owners):
            raise Refused("422: not a collaborator")


@dataclass
class FakeContext:
    config: ReviewersConfig = field(default_factory=ReviewersConfig)
    effects: dict[str, str] = field(default_factory=dict)
    repo: str = REPO
    default_branch: str = "main"
    log: Any = field(default_factory=lambda: logging.getLogger("tests.reviewers"))

    async def repo_config(self) -> RepoConfig:
        return RepoConfig(reviewers=self.config)

    async def already_done(self, key: str) -> bool:
        return key in self.effects

    async def mark_done(self, key: str, detail: str = "") -> None:
        self.effects[key] = detail


def pull(**extra: Any) -> dict[str, Any]:
    return {
        "number": 7,
        "state": "open",
        "draft": False,
        "base": {"ref": "main"},
        "user": {"login": "outsider"},
        **extra,
    }


TOP_TWO = "@alice: 50% of changed lines (30 of 60); @bob: 33% of changed lines (20 of 60)"

# id, GitHub answers, config, pull request, -> requests made, effect recorded (None: none)
ROWS = [
    ("top-two-owners", {}, {}, {}, [("@alice", "@bob")], TOP_TWO),
    (
        "refused-owner-falls-through",
        {"refuses": frozenset({"@bob"})},
        {},
        {},
        [("@alice", "@bob"), ("@alice",), ("@bob",), ("@carol",)],
        "@alice: 50% of changed lines (30 of 60); @carol: 17% of changed lines (10 of 60)",
    ),
    (
        "everyone-refused",
        {"refuses": frozenset({"@alice", "@bob", "@carol"})},
        {},
        {},
        [("@alice", "@bob"), ("@alice",), ("@bob",), ("@carol",)],
        "nobody could be requested",
    ),
    (
        "already-reviewed",
        {"reviews": ["dave"]},
        {},
        {},
        [],
        "the pull request already has a review (from @dave)",
    ),
    (
        "a-review-by-the-author-does-not-count",
        {"reviews": ["outsider", "ci[bot]"]},
        {},
        {},
        [("@alice", "@bob")],
        TOP_TWO,
    ),
    (
        "already-requested",
        {"requested": ["erin"]},
        {},
        {},
        [],
        "reviewers are already requested (@erin)",
    ),
    (
        "author-owns-a-file",
        {},
        {},
        {"user": {"login": "carol"}},
        [],
        "the author @carol is listed in the owners file (line 3) and picks their own reviewers",
    ),
    (
        "overloaded-owner-goes-last",
        {"load": {"alice": 4}},
        {"max_open_reviews": 3},
        {},
        [("@bob", "@carol")],
        "@bob: 33% of changed lines (20 of 60); @carol: 17% of changed lines (10 of 60)",
    ),
    ("no-owners-file-is-retried-later", {"owners": None}, {}, {}, [], None),
    (
        "owners-file-too-large",
        {"owners": "* @x\n" * (MAX_BYTES // 4 + 1)},
        {},
        {},
        [],
        "owners file unusable: owners file is larger than 3 MB, the size GitHub reads; split it"
        " or remove rules",
    ),
    ("draft", {}, {}, {"draft": True}, [], None),
    ("closed", {}, {}, {"state": "closed"}, [], None),
    ("another-branch", {}, {}, {"base": {"ref": "release"}}, [], None),
    (
        "configured-branch",
        {},
        {"branches": ("release",)},
        {"base": {"ref": "release"}},
        [("@alice", "@bob")],
        TOP_TWO,
    ),
    ("turned-off", {}, {"enabled": False}, {}, [], None),
]


@pytest.mark.parametrize(
    ("answers", "config", "pr", "requests", "effect"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
async def test_github_answers_this_the_handler_does_that(answers, config, pr, requests, effect):
    github = FakeGitHub(**answers)
    ctx = FakeContext(config=replace(ReviewersConfig(), **config))
    await request_reviewers(pull(**pr), github, ctx)  # type: ignore[arg-type]
    assert github.requests == requests
    assert ctx.effects.get(KEY) == effect


async def test_a_redelivery_asks_github_nothing():
    github, ctx = FakeGitHub(), FakeContext(effects={KEY: TOP_TWO})
    await request_reviewers(pull(), github, ctx)  # type: ignore[arg-type]
    assert (github.asked, github.requests) == ([], [])


async def test_the_owners_file_is_read_from_the_base_branch():
    github = FakeGitHub()
    await request_reviewers(pull(base={"ref": "main"}), github, FakeContext())  # type: ignore[arg-type]
    assert github.asked[0] == "owners_file .github/review-owners@main"


async def test_review_load_is_read_only_when_load_balancing_is_on():
    github = FakeGitHub()
    await request_reviewers(pull(), github, FakeContext())  # type: ignore[arg-type]
    assert "open_review_load" not in github.asked
    github = FakeGitHub()
    ctx = FakeContext(config=ReviewersConfig(max_open_reviews=2))
    await request_reviewers(pull(), github, ctx)  # type: ignore[arg-type]
    assert "open_review_load" in github.asked
