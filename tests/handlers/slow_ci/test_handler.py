"""`run-slow`'s handler over a fake narrow client: "GitHub answers this -> the bot does that"."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from bot.config import SlowCiConfig
from bot.conversation import PullInfo
from handlers.slow_ci.handler import start_run
from handlers.slow_ci.plan import parse_trigger

SHA = "a" * 40
COMMITTED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)


def _pull(**changes: Any) -> PullInfo:
    base = {
        "number": 7, "state": "open", "draft": False, "title": "t", "html_url": "",
        "author": "carol", "head_sha": SHA, "head_ref": "feature", "head_repo": "acme/models",
        "head_clone_url": "/h", "base_sha": "b" * 40, "base_ref": "main",
        "base_repo": "acme/models", "base_clone_url": "/b", "maintainer_can_modify": False,
        "comments_url": "/c",
    }  # fmt: skip
    return PullInfo(**{**base, **changes})


@dataclass
class FakeGitHub:
    """What GitHub answers, and what the handler asked and wrote."""

    roles: dict[str, str] = field(default_factory=lambda: {"maint": "write"})
    pull_answer: PullInfo = field(default_factory=_pull)
    files: list[dict[str, str]] = field(default_factory=list)
    folders: set[str] = field(default_factory=lambda: {"tests/models/toy"})
    asked: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)

    async def role(self, login: str) -> str:
        return self.roles.get(login, "none")

    async def pull(self, number: int) -> PullInfo:
        return self.pull_answer

    async def changed_files(self, number: int) -> list[dict[str, str]]:
        return self.files

    async def commit(self, sha: str) -> tuple[datetime, str]:
        return COMMITTED, "a message"

    async def is_folder(self, path: str, ref: str) -> bool:
        self.asked.append(path)
        return path in self.folders

    async def reply(self, comments_url: str, key: str, text: str) -> str:
        self.replies.append(text)
        return text.splitlines()[0]


class FakeJobs:
    def __init__(self, started: bool = True, runners: tuple[str, ...] = ("local",)) -> None:
        self.runs: list[dict[str, Any]] = []
        self.started = started
        self.runners = dict.fromkeys(runners)

    async def create_run(self, kind: str, **run: Any) -> Any:
        self.runs.append({"kind": kind, **run})
        return SimpleNamespace(id=len(self.runs))


def _ctx(jobs: FakeJobs) -> Any:
    event = SimpleNamespace(data={"installation": {"id": 5}})
    return SimpleNamespace(
        repo="acme/models", event=event, services=SimpleNamespace(jobs=jobs),
        log=logging.getLogger("test"),
    )  # fmt: skip


async def _start(
    github: FakeGitHub,
    body: str,
    *,
    login: str = "maint",
    jobs: FakeJobs | None = None,
    source: str = "comment-1",
    **config: Any,
):
    jobs = jobs or FakeJobs()
    outcome = await start_run(
        github,  # type: ignore[arg-type]
        _ctx(jobs),
        SlowCiConfig(**config),
        number=7,
        login=login,
        trigger=parse_trigger(body),  # type: ignore[arg-type]
        approved_at=LATER,
        source=source,
    )
    return outcome, jobs.runs


@pytest.mark.parametrize(
    ("login", "roles", "allow", "runs"),
    [
        ("maint", {"maint": "write"}, (), 1),
        ("reader", {"reader": "read"}, (), 0),
        ("stranger", {}, (), 0),
        ("stranger", {}, ("Stranger",), 1),  # the allow-list, case-insensitively
        ("admin", {"admin": "admin"}, (), 1),
    ],
)
async def test_who_may_ask(login, roles, allow, runs):
    github = FakeGitHub(roles=roles)
    _, created = await _start(github, "run-slow: toy", login=login, allow=allow)
    assert len(created) == runs
    assert bool(github.replies) == (runs == 0)


async def test_a_closed_pull_request_runs_nothing():
    github = FakeGitHub(pull_answer=_pull(state="closed"))
    outcome, runs = await _start(github, "run-slow: toy")
    assert runs == [] and "closed" in outcome


async def test_a_comment_not_newer_than_the_head_commit_runs_nothing():
    github = FakeGitHub()
    jobs = FakeJobs()
    await start_run(
        github, _ctx(jobs), SlowCiConfig(), number=7, login="maint",  # type: ignore[arg-type]
        trigger=parse_trigger("run-slow: toy"), approved_at=COMMITTED,  # type: ignore[arg-type]
        source="comment-1",
    )  # fmt: skip
    assert jobs.runs == []
    assert "older than the pull request's latest commit" in github.replies[0]


async def test_the_run_is_pinned_to_the_head_and_has_a_job_per_folder_and_machine():
    github = FakeGitHub()
    _, (run,) = await _start(github, "run-slow: toy, nope")
    assert run["head_sha"] == SHA
    assert [name for name, _ in run["jobs"]] == [
        "single-gpu_run_models_gpu_models_toy",
        "multi-gpu_run_models_gpu_models_toy",
    ]
    assert run["supersede"] is True
    assert [d["name"] for d in run["spec"]["selection"]["dropped"]] == ["nope"]


async def test_invalid_names_are_never_asked_about():
    github = FakeGitHub()
    await _start(github, "run-slow: toy, ../../x, $(id), bert;rm")
    assert github.asked == ["tests/models/toy"]  # found at the first place it looked


async def test_nothing_selectable_is_a_reply_and_no_run():
    github = FakeGitHub(folders=set())
    outcome, runs = await _start(github, "run-slow: nope")
    assert runs == []
    assert "nope" in github.replies[0]
    assert outcome


async def test_a_model_the_pr_adds_runs_without_being_named():
    github = FakeGitHub(
        files=[{"filename": "model_lib/models/tiny/modeling_tiny.py", "status": "added"}],
        folders={"tests/models/tiny"},
    )
    _, (run,) = await _start(github, "run-slow")
    assert run["jobs"][0][1]["folder"] == "models/tiny"


async def test_without_a_job_loop_a_run_is_refused_rather_than_left_pending():
    github = FakeGitHub()
    jobs = FakeJobs(started=False)
    await start_run(
        github, _ctx(jobs), SlowCiConfig(), number=7, login="maint",  # type: ignore[arg-type]
        trigger=parse_trigger("run-slow: toy"), approved_at=LATER,  # type: ignore[arg-type]
        source="comment-1",
    )  # fmt: skip
    assert jobs.runs == []
    assert "without its server" in github.replies[0]


async def test_without_a_server_only_the_actions_runner_takes_a_run():
    github = FakeGitHub()
    jobs = FakeJobs(runners=("github-actions",))  # a one-shot `bot handle`
    _, runs = await _start(github, "run-slow: toy", jobs=jobs)
    assert runs == []
    assert 'runner = "github-actions"' in github.replies[0]
    await _start(github, "run-slow: toy", jobs=jobs, source="comment-2", runner="github-actions")
    (run,) = jobs.runs
    options = run["spec"]["request"]["options"]
    assert options["workflow"] == "slow-tests.yml" and options["run_key"].endswith(":comment-2")
    assert options["labels"]["single-gpu"] == ("self-hosted", "single-gpu")
