"""The steps `run-slow` and `/style` share when a command becomes a run: who may ask, the first
reads, the first refusals, and the one reply or the one run, over a fake narrow client."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from bot.kit.command_job import (
    Command,
    CommandFacts,
    NewRun,
    Refusal,
    admit,
    carry_out,
    may_ask,
    read_command,
)
from bot.kit.conversation import NO_JOBS_REPLY, PullInfo, pull_info

COMMAND = Command("o/r", 7, "ada", "feature:reply:comment-1")


def _pull(state: str = "open") -> PullInfo:
    return pull_info(
        {
            "number": 7,
            "state": state,
            "head": {"sha": "a" * 40, "ref": "f", "repo": None},
            "base": {"ref": "main", "repo": {"full_name": "o/r", "clone_url": "/o/r.git"}},
            "issue_url": "/repos/o/r/issues/7",
        }
    )


@dataclass
class FakeGitHub:
    roles: dict[str, str] = field(default_factory=dict)
    state: str = "open"
    asked: list[str] = field(default_factory=list)
    replies: list[tuple[str, str, str]] = field(default_factory=list)

    async def role(self, login: str) -> str:
        self.asked.append(f"role {login}")
        return self.roles.get(login, "none")

    async def pull(self, number: int) -> PullInfo:
        return _pull(self.state)

    async def changed_files(self, number: int) -> list[dict[str, str]]:
        return [{"filename": "a.py", "status": "added"}]

    async def reply(self, comments_url: str, key: str, text: str) -> str:
        self.replies.append((comments_url, key, text))
        return text.splitlines()[0]


class FakeJobs:
    def __init__(self, *, started: bool = True) -> None:
        self.started = started
        self.runners = {"local": object()}
        self.created: list[dict[str, Any]] = []

    async def create_run(self, kind: str, **fields: Any) -> Any:
        self.created.append({"kind": kind, **fields})
        return SimpleNamespace(id=41)


@pytest.mark.parametrize(
    ("login", "allow", "role", "wanted", "ok", "asked"),
    [
        ("Ada", ("ada",), None, "write", True, False),  # allow-listed: GitHub is not asked
        ("ada", (), "write", "write", True, True),
        ("ada", (), "maintain", "write", True, True),
        ("ada", (), "triage", "write", False, True),
        ("ada", (), "write", "admin", False, True),
        ("ada", (), None, "read", False, True),  # a stranger has no role
    ],
)
async def test_who_may_ask(login, allow, role, wanted, ok, asked):
    github = FakeGitHub(roles={} if role is None else {login: role})
    assert await may_ask(github, login, min_permission=wanted, allow=allow) is ok  # type: ignore[arg-type]
    assert bool(github.asked) is asked


async def test_the_first_reads_carry_the_runners_refusal():
    github = FakeGitHub(roles={"ada": "admin"})
    facts = await read_command(
        github,  # type: ignore[arg-type]
        FakeJobs(started=False),  # type: ignore[arg-type]
        COMMAND,
        runner="local",
        hint="",
        min_permission="admin",
    )
    assert facts.authorised and facts.pull.number == 7
    assert facts.files == ({"filename": "a.py", "status": "added"},)
    assert facts.runner_refusal == NO_JOBS_REPLY


@pytest.mark.parametrize(
    ("authorised", "state", "expected"),
    [
        (True, "open", None),
        (False, "open", Refusal("who")),
        (False, "closed", Refusal("who")),  # who may not ask hears nothing about the PR
        (True, "closed", Refusal("closed")),
    ],
)
def test_the_first_refusals(authorised, state, expected):
    facts = CommandFacts(authorised, _pull(state))
    assert admit(facts, not_authorised="who", closed="closed") == expected


async def test_a_refusal_is_one_reply_under_the_commands_key():
    github, jobs = FakeGitHub(), FakeJobs()
    outcome = await carry_out(github, jobs, COMMAND, Refusal("Nothing ran.\nBecause."))  # type: ignore[arg-type]
    assert outcome == "Nothing ran."
    assert github.replies == [
        ("/repos/o/r/issues/7/comments", "feature:reply:comment-1", "Nothing ran.\nBecause.")
    ]
    assert jobs.created == []


async def test_a_run_is_created_for_the_person_and_pull_request_of_the_command():
    github, jobs = FakeGitHub(), FakeJobs()
    run = NewRun(
        kind="feature",
        head_sha="a" * 40,
        key="feature:o/r#7:comment-1",
        jobs=(("one", {"x": 1}),),
        spec={"y": 2},
        runner="local",
        private=False,
        requested_at=5.0,
        summary="1 thing",
        base_ref="main",
        supersede=True,
    )
    outcome = await carry_out(github, jobs, COMMAND, run)  # type: ignore[arg-type]
    assert outcome == f"run 41: 1 thing at {'a' * 40}"
    assert github.replies == []
    (created,) = jobs.created
    assert created == {
        "kind": "feature",
        "repo": "o/r",
        "number": 7,
        "head_sha": "a" * 40,
        "private": False,
        "runner": "local",
        "base_ref": "main",
        "requested_by": "ada",
        "requested_at": 5.0,
        "key": "feature:o/r#7:comment-1",
        "supersede": True,
        "spec": {"y": 2},
        "jobs": [("one", {"x": 1})],
    }
