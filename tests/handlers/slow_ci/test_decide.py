"""`run-slow`'s decision as a table: "the bot read these facts -> it replies this, or runs that".

No GitHub, no store: each row is the facts a handler would have read, and what `decide` makes
of them. Every refusal has a row, in the order the handler meets them, and so does every kind
of run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.kit.command_job import CommandFacts, Refusal
from bot.kit.conversation import NO_JOBS_REPLY, PullInfo
from bot.store.deliveries import PushRecord
from handlers.slow_ci.config import SlowCiConfig
from handlers.slow_ci.decide import (
    Ask,
    Facts,
    PreviousRun,
    Repository,
    RunPlan,
    approved_head,
    decide,
    names_to_find,
    needs_test_merge,
)
from handlers.slow_ci.plan import (
    DroppedName,
    JobSpec,
    MergeCommit,
    SelectedFolder,
    Selection,
    Trigger,
    parse_trigger,
)
from handlers.slow_ci.render import (
    CLOSED_REPLY,
    NO_PREVIOUS_RUN_REPLY,
    NOTHING_FAILED_REPLY,
)

SHA = "a" * 40
OLDER = "c" * 40
REPO = "acme/models"
PUSHED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
COMMENTED = PUSHED + timedelta(minutes=5)
NOW = 1_800_000_000.0
TOY = SelectedFolder("toy", "models/toy", "model", "listed")


def _pull(**changes: Any) -> PullInfo:
    base = {
        "number": 7, "state": "open", "draft": False, "title": "Add toy", "html_url": "/p/7",
        "author": "carol", "head_sha": SHA, "head_ref": "feature", "head_repo": "carol/models",
        "head_clone_url": "/carol/models.git", "base_sha": "b" * 40, "base_ref": "main",
        "base_repo": REPO, "base_clone_url": "/acme/models.git", "maintainer_can_modify": True,
        "comments_url": "/c",
    }  # fmt: skip
    return PullInfo(**{**base, **changes})


def _comment(body: str = "run-slow: toy", at: datetime = COMMENTED) -> Ask:
    trigger = parse_trigger(body)
    assert trigger is not None
    return Ask(7, "maint", trigger, "comment-1", approved_at=at)


def _label(sha: str = SHA) -> Ask:
    """The label, on a head whose commit message reads `[run-slow] toy`."""
    return Ask(7, "maint", Trigger(("toy",)), f"label-{sha[:12]}", pinned_sha=sha)


def _button() -> Ask:
    return Ask(7, "maint", Trigger(failed_only=True), "check-9", pinned_sha=SHA)


def _facts(
    ask: Ask | None = None,
    *,
    authorised: bool = True,
    pull: PullInfo | None = None,
    files: tuple[dict[str, str], ...] = (),
    runner_refusal: str | None = None,
    pushes: tuple[PushRecord, ...] = (PushRecord(SHA, PUSHED.timestamp(), "carol", "opened"),),
    config: SlowCiConfig | None = None,
    **read: Any,
) -> Facts:
    """What the handler read for a comment by a maintainer on an open pull request whose head
    the bot saw pushed before the comment, with `tests/models/toy` at the head."""
    read.setdefault("test_folders", frozenset({"tests/models/toy"}))
    return Facts(
        repo=REPO,
        ask=ask or _comment(),
        config=config or SlowCiConfig(),
        command=CommandFacts(authorised, pull or _pull(), files, runner_refusal),
        now=NOW,
        repository=Repository(installation_id=5, private=False, default_branch="main"),
        pushes=pushes,
        **read,
    )


NOT_MERGED = MergeCommit("m" * 40, ("b" * 40, SHA), "GitHub", COMMENTED + timedelta(seconds=1))
FAILED_BEFORE = PreviousRun(Selection((TOY,)), ((JobSpec("models/toy", "single-gpu"), ("t::a",)),))

# --------------------------------------------------------------------------- every refusal


@pytest.mark.parametrize(
    ("facts", "reply"),
    [
        pytest.param(
            _facts(authorised=False),
            "@maint: slow tests run only for people with `write` permission",
            id="a person who may not ask",
        ),
        pytest.param(
            _facts(authorised=False, pull=_pull(state="closed"), runner_refusal="no runner"),
            "@maint: slow tests run only for",
            id="who asked is told first",
        ),
        pytest.param(_facts(pull=_pull(state="closed")), CLOSED_REPLY, id="a closed pull request"),
        pytest.param(
            _facts(_label(OLDER)),
            f"older than the pull request's latest commit `{SHA[:12]}`",
            id="the label's commit is no longer the head",
        ),
        pytest.param(
            _facts(pushes=(PushRecord(SHA, COMMENTED.timestamp() + 1, "carol", "opened"),)),
            "older than the pull request's latest commit",
            id="the head was pushed after the comment",
        ),
        pytest.param(
            _facts(pushes=()),
            f"run-slow: toy sha={SHA}",
            id="no record and no test merge: the reply asks for the sha",
        ),
        pytest.param(
            _facts(pushes=(), merge=NOT_MERGED),
            "cannot tell",
            id="a test merge newer than the comment does not tell",
        ),
        pytest.param(
            _facts(_comment(f"run-slow: toy sha={OLDER}"), pushes=()),
            "older than the pull request's latest commit",
            id="the comment names another commit",
        ),
        pytest.param(
            _facts(_comment(f"run-slow: toy sha={SHA[:7]}"), pushes=()),
            "at least 12 hexadecimal characters",
            id="seven characters of a sha are not enough",
        ),
        pytest.param(_facts(_button()), NO_PREVIOUS_RUN_REPLY, id="--failed without a run"),
        pytest.param(
            _facts(_button(), previous=PreviousRun(Selection((TOY,)))),
            NOTHING_FAILED_REPLY,
            id="--failed when nothing failed",
        ),
        pytest.param(
            _facts(_comment("run-slow: nope"), runner_refusal="no runner"),
            "Nothing to run: this `run-slow` names no model with a test folder",
            id="nothing selectable, said before the runner",
        ),
        pytest.param(
            _facts(runner_refusal=NO_JOBS_REPLY), NO_JOBS_REPLY, id="the runner cannot run here"
        ),
    ],
)
def test_every_refusal_is_one_reply(facts: Facts, reply: str) -> None:
    outcome = decide(facts)
    assert isinstance(outcome, Refusal)
    assert reply in outcome.text


def test_nothing_selectable_lists_every_dropped_name() -> None:
    outcome = decide(_facts(_comment("run-slow: nope, ../x")))
    assert isinstance(outcome, Refusal)
    assert "`nope`" in outcome.text and "`../x`" in outcome.text


# --------------------------------------------------------------------------- the plan


def _plan(facts: Facts) -> RunPlan:
    outcome = decide(facts)
    assert isinstance(outcome, RunPlan), outcome
    return outcome


def test_a_comment_runs_each_folder_on_each_machine_at_the_head() -> None:
    plan = _plan(_facts(_comment("run-slow: toy, nope")))
    assert plan.sha == SHA
    assert plan.jobs == (JobSpec("models/toy", "single-gpu"), JobSpec("models/toy", "multi-gpu"))
    assert plan.selection.folders == (TOY,)
    assert plan.selection.dropped == (
        DroppedName(
            "nope", f"no tests/models/nope, tests/quantization/nope or tests/nope at {SHA[:12]}"
        ),
    )
    run = plan.run
    assert (run.kind, run.head_sha, run.base_ref) == ("slow_ci", SHA, "main")
    assert run.key == f"{REPO}#7:comment-1"
    assert run.requested_at == COMMENTED.timestamp()  # the approval's time, GitHub's
    assert run.supersede and run.runner == "local" and run.private is False
    assert [name for name, _ in run.jobs] == [job.name for job in plan.jobs]
    assert run.jobs[0][1] == {
        "runner": "local",
        "folder": "models/toy",
        "machine_type": "single-gpu",
        "tests": [],
    }
    assert run.spec["selection"] == plan.selection.to_json()
    assert run.spec["installation_id"] == 5 and run.spec["comments_url"] == "/c"
    request = run.spec["request"]
    assert request["head_clone_url"] == "/carol/models.git"
    assert request["timeout_s"] == 3600.0 and request["options"] == {}
    assert run.summary == "2 jobs"


def test_the_label_runs_its_commit_at_the_time_it_was_read() -> None:
    plan = _plan(_facts(_label(), pushes=()))
    assert plan.sha == SHA and plan.run.requested_at == NOW
    assert plan.run.key == f"{REPO}#7:label-{SHA[:12]}"


def test_a_model_the_pull_request_adds_runs_unnamed_and_first() -> None:
    files = ({"filename": "model_lib/models/tiny/modeling_tiny.py", "status": "added"},)
    folders = frozenset({"tests/models/tiny", "tests/models/toy"})
    plan = _plan(_facts(files=files, test_folders=folders))
    assert [f.folder for f in plan.selection.folders] == ["models/tiny", "models/toy"]
    assert plan.selection.folders[0].reason == "added by this PR"


def test_failed_reruns_only_the_failed_jobs_and_their_tests() -> None:
    plan = _plan(_facts(_button(), previous=FAILED_BEFORE))
    assert plan.jobs == (JobSpec("models/toy", "single-gpu"),)
    assert plan.failed_tests == {"single-gpu_run_models_gpu_models_toy": ("t::a",)}
    assert plan.run.jobs[0][1]["tests"] == ["t::a"]
    assert plan.selection == FAILED_BEFORE.selection
    assert plan.run.spec["failed_only"] is True


def test_the_actions_runner_gets_the_workflow_on_the_default_branch() -> None:
    config = SlowCiConfig(runner="github-actions")
    run = _plan(_facts(config=config)).run
    assert run.runner == "github-actions" and run.jobs[0][1]["runner"] == "github-actions"
    options = run.spec["request"]["options"]
    assert options["workflow"] == "slow-tests.yml" and options["ref"] == "main"
    assert options["run_key"] == run.key
    assert options["labels"]["multi-gpu"] == ("self-hosted", "multi-gpu")


def test_a_deleted_fork_is_fetched_from_the_base_repository() -> None:
    run = _plan(_facts(pull=_pull(head_clone_url="", head_repo=""))).run
    assert run.spec["request"]["head_clone_url"] == "/acme/models.git"


def test_a_repository_not_known_to_be_public_runs_private() -> None:
    facts = replace(_facts(), repository=Repository())
    assert _plan(facts).run.private is True


# --------------------------------------------------------------------------- what to read


@pytest.mark.parametrize(
    ("facts", "needed"),
    [
        pytest.param(_facts(), False, id="the record decides"),
        pytest.param(_facts(pushes=()), True, id="no record"),
        pytest.param(_facts(pushes=(), merge=NOT_MERGED), False, id="already read"),
        pytest.param(_facts(_comment(f"run-slow sha={SHA}"), pushes=()), False, id="names a sha"),
        pytest.param(_facts(_label(), pushes=()), False, id="not a comment"),
    ],
)
def test_githubs_test_merge_is_read_only_when_it_would_decide(facts: Facts, needed: bool) -> None:
    assert needs_test_merge(facts) is needed


def test_only_names_that_can_be_folders_are_looked_for() -> None:
    files = ({"filename": "model_lib/models/tiny/modeling_tiny.py", "status": "added"},)
    facts = _facts(_comment("run-slow: toy, tiny, ../x, $(id), models, toy"), files=files)
    assert names_to_find(facts) == ("tiny", "toy")
    assert names_to_find(_facts(_button())) == ()


@pytest.mark.parametrize(
    ("facts", "approved"),
    [
        pytest.param(_facts(), SHA, id="a run"),
        pytest.param(_facts(_comment("run-slow: nope")), SHA, id="approved though nothing runs"),
        pytest.param(_facts(runner_refusal="no runner"), SHA, id="approved though no runner"),
        pytest.param(_facts(authorised=False), None, id="not a maintainer"),
        pytest.param(_facts(pushes=()), None, id="the bot cannot tell"),
        pytest.param(_facts(_label(OLDER)), None, id="not the head"),
    ],
)
def test_the_approval_recorded_is_the_maintainers_commit(
    facts: Facts, approved: str | None
) -> None:
    assert approved_head(facts) == approved
