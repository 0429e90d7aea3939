"""The new-model handler as a table: GitHub answers this, the handler queues that. No HTTP.

GitHub is `FakeGitHub`, standing in for `NewModelGitHub` (the handler's narrow client); the
context records the Slack messages the handler queues, once per key as the outbox does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.config import RepoConfig
from handlers.new_model.client import Comparison
from handlers.new_model.config import NewModelConfig
from handlers.new_model.handler import announce_new_models
from handlers.new_model.plan import NULL_SHA, FileChange, MergedPull

REPO = "acme/models"
BEFORE, AFTER = "a" * 40, "b" * 40
MAMBA = "model_lib/models/mamba/modeling_mamba.py"
GPT2 = "model_lib/models/gpt2/modeling_gpt2.py"
PULL = MergedPull(7, "Add mamba", "dev", f"https://github.com/{REPO}/pull/7")


@dataclass
class FakeGitHub:
    """What GitHub answers; `asked` is what the handler asked for."""

    files: list[FileChange] = field(default_factory=list)
    complete: bool = True
    commits: dict[str, list[FileChange]] = field(default_factory=dict)  # sha -> its files
    pulls: dict[str, MergedPull] = field(default_factory=dict)  # sha -> its merged PR
    asked: list[str] = field(default_factory=list)

    async def compare(self, before: str, after: str) -> Comparison:
        self.asked.append(f"compare {before[:1]}...{after[:1]}")
        return Comparison(self.files, self.complete, merge_base=None)

    async def commits_between(self, before: str, after: str) -> list[str]:
        self.asked.append("commits_between")
        return list(self.commits)

    async def commit_files(self, sha: str) -> list[FileChange]:
        self.asked.append(f"commit_files {sha}")
        return self.commits[sha]

    async def pull_for_commit(self, sha: str) -> MergedPull | None:
        self.asked.append(f"pull_for_commit {sha[:1]}")
        return self.pulls.get(sha)


@dataclass
class FakeContext:
    config: NewModelConfig = field(default_factory=NewModelConfig)
    queued: dict[str, dict[str, Any]] = field(default_factory=dict)
    repo: str = REPO
    log: Any = field(default_factory=lambda: logging.getLogger("tests.new_model"))

    async def repo_config(self) -> RepoConfig:
        return RepoConfig(new_model=self.config)

    async def queue_slack(self, key: str, message: dict[str, Any]) -> bool:
        if key in self.queued:
            return False
        self.queued[key] = message
        return True


def push(**extra: Any) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": BEFORE,
        "after": AFTER,
        "commits": [],
        "repository": {
            "full_name": REPO,
            "default_branch": "main",
            "html_url": f"https://github.com/{REPO}",
        },
        **extra,
    }


def added(path: str) -> FileChange:
    return FileChange(path, "added")


# id, push payload, GitHub answers, -> Slack texts queued (in order)
ROWS = [
    (
        "a-merge-adds-a-model",
        {},
        {"files": [added(MAMBA)], "pulls": {AFTER: PULL}},
        ["New model: mamba (#7 Add mamba by dev)"],
    ),
    ("a-model-without-a-merged-pr", {}, {"files": [added(MAMBA)]}, ["New model: mamba"]),
    (
        "two-models-two-alerts",
        {},
        {"files": [added("model_lib/models/zeta/modeling_zeta.py"), added(MAMBA)]},
        ["New model: zeta", "New model: mamba"],
    ),
    ("a-rename-is-not-new", {}, {"files": [FileChange(MAMBA, "renamed", GPT2)]}, []),
    ("a-change-to-a-model-is-not-new", {}, {"files": [FileChange(GPT2, "modified")]}, []),
    ("other-files-are-not-models", {}, {"files": [added("model_lib/models/mamba/x.py")]}, []),
    (
        "too-many-files-folds-the-commits",
        {},
        {"files": [], "complete": False, "commits": {"c1": [added(MAMBA)], "c2": []}},
        ["New model: mamba"],
    ),
    (
        "added-then-removed-in-one-push-is-nothing",
        {},
        {
            "complete": False,
            "commits": {"c1": [added(MAMBA)], "c2": [FileChange(MAMBA, "removed")]},
        },
        [],
    ),
    (
        "a-new-branch-uses-the-payload",
        {"before": NULL_SHA, "commits": [{"id": AFTER, "added": [MAMBA]}]},
        {"pulls": {AFTER: PULL}},
        ["New model: mamba (#7 Add mamba by dev)"],
    ),
    ("a-push-to-another-branch", {"ref": "refs/heads/feature"}, {"files": [added(MAMBA)]}, []),
    ("a-deleted-branch", {"deleted": True, "after": NULL_SHA}, {"files": [added(MAMBA)]}, []),
]


@pytest.mark.parametrize(
    ("payload", "answers", "texts"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
async def test_github_answers_this_the_handler_queues_that(payload, answers, texts):
    ctx = FakeContext()
    await announce_new_models(push(**payload), FakeGitHub(**answers), ctx)  # type: ignore[arg-type]
    assert [m["text"] for m in ctx.queued.values()] == texts


async def test_the_alert_names_the_commit_that_added_the_model():
    commits = [{"id": "c" * 40, "added": [MAMBA]}]
    github = FakeGitHub(files=[added(MAMBA)])
    ctx = FakeContext()
    await announce_new_models(push(commits=commits), github, ctx)  # type: ignore[arg-type]
    (message,) = ctx.queued.values()
    assert "pull_for_commit c" in github.asked
    assert f"commit SHA: `{'c' * 40}`" in message["blocks"][1]["text"]["text"]


async def test_one_alert_per_model_ever():
    ctx = FakeContext()
    for _ in range(2):
        await announce_new_models(push(), FakeGitHub(files=[added(MAMBA)]), ctx)  # type: ignore[arg-type]
    assert list(ctx.queued) == [f"new-model:{REPO}:mamba"]


async def test_turned_off_asks_github_nothing():
    github = FakeGitHub(files=[added(MAMBA)])
    ctx = FakeContext(config=NewModelConfig(enabled=False))
    await announce_new_models(push(), github, ctx)  # type: ignore[arg-type]
    assert (github.asked, ctx.queued) == ([], {})


async def test_the_channel_and_mentions_come_from_the_config():
    ctx = FakeContext(config=NewModelConfig(channel="models", mention=("U024BE7LH",)))
    await announce_new_models(push(), FakeGitHub(files=[added(MAMBA)]), ctx)  # type: ignore[arg-type]
    (message,) = ctx.queued.values()
    assert message["channel"] == "models"
    assert "<@U024BE7LH>" in message["blocks"][1]["text"]["text"]
