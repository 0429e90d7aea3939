"""`run-slow`'s handler over a fake narrow client: "GitHub answers this -> the bot does that".

The bot's own record of pushes is a real store: the deliveries GitHub would have sent, stored as
the server stores them.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from bot.kit.context import Context
from bot.kit.conversation import PullInfo
from bot.store import deliveries as deliveries_db
from bot.store import effects as effects_db
from bot.store.engine import Store
from handlers.slow_ci.config import SlowCiConfig
from handlers.slow_ci.decide import Ask
from handlers.slow_ci.handler import _push_approval, start_run
from handlers.slow_ci.plan import MergeCommit, PushApproval, parse_trigger

SHA = "a" * 40
OLDER = "c" * 40
REPO = "acme/models"
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
    merge: MergeCommit | None = None
    asked: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)

    async def role(self, login: str) -> str:
        return self.roles.get(login, "none")

    async def pull(self, number: int) -> PullInfo:
        return self.pull_answer

    async def changed_files(self, number: int) -> list[dict[str, str]]:
        return self.files

    async def commit_message(self, sha: str) -> str:
        return "a message"

    async def test_merge(self, number: int) -> MergeCommit | None:
        self.asked.append("test merge")
        return self.merge

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

    async def runs_of(self, repo: str, number: int, *, kind: str) -> list[Any]:
        return [SimpleNamespace(head_sha=run["head_sha"]) for run in reversed(self.runs)]


@pytest.fixture
async def store(tmp_path):
    opened = Store(str(tmp_path / "bot.sqlite3"))
    yield opened
    opened.close()


@pytest.fixture
def ctx(store):
    return _ctx(FakeJobs(), store)


def _ctx(jobs: FakeJobs, store: Store) -> Context:
    event = SimpleNamespace(
        data={"installation": {"id": 5}, "repository": {"full_name": REPO}}, delivery_id="d"
    )
    services = SimpleNamespace(jobs=jobs, store=store, dry_run=False)
    return Context(services, event, None, logging.getLogger("test"))  # type: ignore[arg-type]


async def _delivered(
    store: Store,
    action: str,
    sha: str,
    at: datetime,
    *,
    sender: str = "carol",
    before: str | None = None,
    number: int = 7,
) -> None:
    """GitHub's `pull_request` delivery, as the server stores it when it arrives at `at`."""
    data: dict[str, Any] = {
        "action": action,
        "number": number,
        "pull_request": {"number": number, "head": {"sha": sha}},
        "repository": {"full_name": REPO},
        "sender": {"login": sender},
    }
    if action == "synchronize":
        data |= {"before": before, "after": sha}
    delivery = deliveries_db.Delivery(
        id=str(uuid.uuid4()),
        event="pull_request",
        headers={},
        body=json.dumps(data).encode(),
        action=action,
        repo=REPO,
        number=deliveries_db.delivery_number(data),
        received_at=at.timestamp(),
        status="done",
    )
    await store.call(lambda conn: deliveries_db.insert_deliveries(conn, [delivery]))


async def _start(
    store: Store,
    github: FakeGitHub,
    body: str,
    *,
    login: str = "maint",
    jobs: FakeJobs | None = None,
    source: str = "comment-1",
    approved_at: datetime | None = LATER,
    pushed_at: datetime | None = COMMITTED,
    **config: Any,
):
    """Starts a run as a comment written at `approved_at` does, the bot having received the
    head's `opened` at `pushed_at` (None: no record)."""
    jobs = jobs or FakeJobs()
    if pushed_at is not None:
        await _delivered(store, "opened", SHA, pushed_at)
    trigger = parse_trigger(body)
    assert trigger is not None
    ask = Ask(7, login, trigger, source, approved_at=approved_at)
    ctx = _ctx(jobs, store)
    outcome = await start_run(github, ctx, SlowCiConfig(**config), ask)  # type: ignore[arg-type]
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
async def test_who_may_ask(store, login, roles, allow, runs):
    github = FakeGitHub(roles=roles)
    _, created = await _start(store, github, "run-slow: toy", login=login, allow=allow)
    assert len(created) == runs
    assert bool(github.replies) == (runs == 0)


async def test_a_stranger_costs_no_look_up_of_folders_or_merges(store):
    github = FakeGitHub()
    _, runs = await _start(store, github, "run-slow: toy, a, b, c", login="eve", pushed_at=None)
    assert runs == [] and github.asked == []
    assert "slow tests run only for" in github.replies[0]


async def test_a_closed_pull_request_runs_nothing(store):
    github = FakeGitHub(pull_answer=_pull(state="closed"))
    outcome, runs = await _start(store, github, "run-slow: toy")
    assert runs == [] and "closed" in outcome


async def test_a_comment_written_before_the_bot_saw_the_head_runs_nothing(store):
    github = FakeGitHub()
    _, runs = await _start(store, github, "run-slow: toy", pushed_at=LATER + timedelta(seconds=1))
    assert runs == []
    assert "older than the pull request's latest commit" in github.replies[0]


async def test_a_comment_in_the_same_second_as_the_push_runs_nothing(store):
    github = FakeGitHub()  # GitHub's comment time is to the second: the push may be after it
    _, runs = await _start(store, github, "run-slow: toy", pushed_at=LATER + timedelta(seconds=0.5))
    assert runs == []
    assert "older than the pull request's latest commit" in github.replies[0]


async def test_a_push_back_to_the_head_after_the_comment_runs_nothing(store):
    github = FakeGitHub()
    await _delivered(store, "synchronize", OLDER, COMMITTED, before=SHA)
    await _delivered(store, "synchronize", SHA, LATER + timedelta(minutes=1), before=OLDER)
    _, runs = await _start(store, github, "run-slow: toy")  # SHA was opened at COMMITTED too
    assert runs == []
    assert "older than the pull request's latest commit" in github.replies[0]


async def test_the_commits_own_dates_are_never_asked_for(store):
    github = FakeGitHub()
    _, (run,) = await _start(store, github, "run-slow: toy")
    assert run["head_sha"] == SHA
    assert "test merge" not in github.asked  # the record told: no request for the merge


async def test_without_a_record_githubs_test_merge_older_than_the_comment_approves(store):
    merge = MergeCommit("m" * 40, ("b" * 40, SHA), "GitHub", COMMITTED)
    github = FakeGitHub(merge=merge)
    _, (run,) = await _start(store, github, "run-slow: toy", pushed_at=None)
    assert run["head_sha"] == SHA


async def test_without_a_record_or_an_older_test_merge_the_reply_asks_for_the_sha(store):
    merge = MergeCommit("m" * 40, ("b" * 40, SHA), "GitHub", LATER)
    for source, github in enumerate((FakeGitHub(), FakeGitHub(merge=merge))):
        _, runs = await _start(
            store, github, "run-slow: toy, gpt2", pushed_at=None, source=f"c{source}"
        )
        assert runs == []
        (reply,) = github.replies
        assert f"run-slow: toy, gpt2 sha={SHA}" in reply
        assert "cannot tell" in reply


async def test_a_comment_naming_the_head_runs_it_without_a_record(store):
    github = FakeGitHub()
    _, (run,) = await _start(store, github, f"run-slow: toy sha={SHA[:12]}", pushed_at=None)
    assert run["head_sha"] == SHA
    assert "test merge" not in github.asked


async def test_a_comment_naming_another_commit_gets_the_stale_reply(store):
    github = FakeGitHub()
    _, runs = await _start(store, github, f"run-slow: toy sha={OLDER}", pushed_at=None)
    assert runs == []
    assert "older than the pull request's latest commit" in github.replies[0]


async def test_a_seven_character_sha_is_not_enough(store):
    github = FakeGitHub()
    _, runs = await _start(store, github, f"run-slow: toy sha={SHA[:7]}", pushed_at=None)
    assert runs == []
    assert "at least 12" in github.replies[0]


async def test_an_approval_is_recorded_for_the_labels_later_pushes(store):
    github = FakeGitHub()
    await _start(store, github, "run-slow: toy")
    done = await store.call(
        lambda conn: effects_db.effect_done(conn, f"slow_ci:approved:{REPO}#7:{SHA}")
    )
    assert done


async def test_the_run_is_pinned_to_the_head_and_has_a_job_per_folder_and_machine(store):
    github = FakeGitHub()
    _, (run,) = await _start(store, github, "run-slow: toy, nope")
    assert run["head_sha"] == SHA
    assert [name for name, _ in run["jobs"]] == [
        "single-gpu_run_models_gpu_models_toy",
        "multi-gpu_run_models_gpu_models_toy",
    ]
    assert run["supersede"] is True
    assert [d["name"] for d in run["spec"]["selection"]["dropped"]] == ["nope"]


async def test_invalid_names_are_never_asked_about(store):
    github = FakeGitHub()
    await _start(store, github, "run-slow: toy, ../../x, $(id), bert;rm")
    assert github.asked == ["tests/models/toy"]  # found at the first place it looked


async def test_nothing_selectable_is_a_reply_and_no_run(store):
    github = FakeGitHub(folders=set())
    outcome, runs = await _start(store, github, "run-slow: nope")
    assert runs == []
    assert "nope" in github.replies[0]
    assert outcome


async def test_a_model_the_pr_adds_runs_without_being_named(store):
    github = FakeGitHub(
        files=[{"filename": "model_lib/models/tiny/modeling_tiny.py", "status": "added"}],
        folders={"tests/models/tiny"},
    )
    _, (run,) = await _start(store, github, "run-slow")
    assert run["jobs"][0][1]["folder"] == "models/tiny"


async def test_without_a_job_loop_a_run_is_refused_rather_than_left_pending(store):
    github = FakeGitHub()
    jobs = FakeJobs(started=False)
    await _start(store, github, "run-slow: toy", jobs=jobs)
    assert jobs.runs == []
    assert "without its server" in github.replies[0]


async def test_without_a_server_only_the_actions_runner_takes_a_run(store):
    github = FakeGitHub()
    jobs = FakeJobs(runners=("github-actions",))  # a one-shot `bot handle`
    _, runs = await _start(store, github, "run-slow: toy", jobs=jobs)
    assert runs == []
    assert 'runner = "github-actions"' in github.replies[0]
    await _start(
        store, github, "run-slow: toy", jobs=jobs, source="comment-2", runner="github-actions"
    )
    (run,) = jobs.runs
    options = run["spec"]["request"]["options"]
    assert options["workflow"] == "slow-tests.yml" and options["run_key"].endswith(":comment-2")
    assert options["labels"]["single-gpu"] == ("self-hosted", "single-gpu")


# ---------------------------------------------------------------------- the label's pushes

H0, H1, H2 = "0" * 40, "1" * 40, "2" * 40


async def _push_verdict(store: Store, jobs: FakeJobs | None = None, head: str = H2) -> PushApproval:
    github = FakeGitHub(roles={"maint": "write", "reader": "read"})
    ctx = _ctx(jobs or FakeJobs(), store)
    return await _push_approval(github, ctx, SlowCiConfig(), 7, head)  # type: ignore[arg-type]


async def _approve(store: Store, sha: str) -> None:
    key = f"slow_ci:approved:{REPO}#7:{sha}"
    await store.call(lambda conn: effects_db.record_effect(conn, key))


async def test_a_maintainers_push_on_an_approved_head_runs(store):
    await _delivered(store, "opened", H0, COMMITTED)
    await _delivered(store, "synchronize", H2, LATER, sender="maint", before=H0)
    await _approve(store, H0)
    assert await _push_verdict(store) == PushApproval("approved")


async def test_a_maintainers_push_on_a_refused_push_is_refused(store):
    await _delivered(store, "opened", H0, COMMITTED)
    await _delivered(store, "synchronize", H1, LATER, sender="reader", before=H0)
    await _delivered(store, "synchronize", H2, LATER, sender="maint", before=H1)
    await _approve(store, H0)
    assert await _push_verdict(store) == PushApproval("refused", ("reader",))
    await _approve(store, H1)  # a maintainer approved the refused push since
    assert await _push_verdict(store) == PushApproval("approved")


async def test_a_run_on_a_head_approves_it_for_the_pushes_after(store):
    jobs = FakeJobs()
    jobs.runs.append({"head_sha": H1})
    await _delivered(store, "synchronize", H1, COMMITTED, sender="reader", before=H0)
    await _delivered(store, "synchronize", H2, LATER, sender="maint", before=H1)
    assert await _push_verdict(store, jobs) == PushApproval("approved")


async def test_pushes_the_bot_has_no_record_of_refuse_the_push(store):
    await _delivered(store, "synchronize", H2, LATER, sender="maint", before=H1)
    await _approve(store, H0)
    assert await _push_verdict(store) == PushApproval("unknown")


async def test_an_approved_head_whose_push_went_unrecorded_still_anchors(store):
    await _delivered(store, "synchronize", H2, LATER, sender="maint", before=H1)
    await _approve(store, H1)  # the label was added on H1, pushed before the bot was here
    assert await _push_verdict(store) == PushApproval("approved")


async def test_another_pull_requests_pushes_are_not_this_ones(store):
    await _delivered(store, "opened", H0, COMMITTED)
    await _delivered(store, "synchronize", H1, LATER, sender="maint", before=H0, number=70)
    await _delivered(store, "synchronize", H2, LATER, sender="maint", before=H1)
    await _approve(store, H0)
    assert await _push_verdict(store) == PushApproval("unknown")
