"""Whether a `run-slow` runs, and what: one pure decision over everything read first.

The handler reads the facts (who asked and whether they may, the pull request and its files,
the bot's record of pushes and GitHub's test merge, the test folders at the commit, the previous
run, whether the runner can take a run here), calls :func:`decide`, and carries out what it
returns: a reply (`Refusal`) or a run (`RunPlan`). The refusals come in this order, each with its
own reply: a person who may not ask, a closed pull request, a commit that is no longer the head,
a comment that does not approve the head (stale, or the bot cannot tell), nothing to re-run or
nothing selectable, and a runner that cannot take the run here.

A read is made only once the decision has got that far (`request_refusal`, `needs_test_merge`,
`approval_refusal`, `names_to_find`), so a stranger's comment costs no folder look-ups and a
comment the bot's records decide costs no test merge; these functions, not the reader, say which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.kit.command_job import CommandFacts, NewRun, Refusal, admit
from handlers.slow_ci.config import DEFAULT_RUNNER_LABELS, SlowCiConfig
from handlers.slow_ci.plan import (
    Approval,
    JobSpec,
    MergeCommit,
    Push,
    Selection,
    Trigger,
    comment_approval,
    models_added,
    plan_jobs,
    runnable,
    select_folders,
)
from handlers.slow_ci.render import (
    CLOSED_REPLY,
    NO_PREVIOUS_RUN_REPLY,
    NOTHING_FAILED_REPLY,
    cannot_tell_reply,
    not_authorised_reply,
    nothing_selectable_reply,
    stale_comment_reply,
)

__all__ = [
    "KIND",
    "Ask",
    "Facts",
    "PreviousRun",
    "Refusal",
    "Repository",
    "RunPlan",
    "admitted",
    "approval",
    "approval_refusal",
    "approved_head",
    "decide",
    "names_to_find",
    "needs_test_merge",
    "request_refusal",
]

KIND = "slow_ci"


@dataclass(frozen=True, slots=True)
class Ask:
    """A request for a run, however it came: a comment, the label, a push, the Re-run button.

    ``source`` names the request in its keys (`comment-<id>`, `label-<sha>`, `check-<id>`): a
    redelivery finds the same reply and the same run. ``approved_at`` is a comment's time (the
    head must have been seen before it); ``pinned_sha`` the commit the label or the button is
    for (else the head is).
    """

    number: int
    login: str
    trigger: Trigger
    source: str
    approved_at: datetime | None = None
    pinned_sha: str | None = None

    @property
    def reply_key(self) -> str:
        return f"slow_ci:reply:{self.source}"


@dataclass(frozen=True, slots=True)
class Repository:
    """What the event says of the repository: the installation that fetches its code, whether
    its runs are private (what is not known to be public is), and its default branch."""

    installation_id: int | None = None
    private: bool = True
    default_branch: str | None = None


@dataclass(frozen=True, slots=True)
class PreviousRun:
    """The pull request's last finished run, as `run-slow --failed` reads it: what it selected,
    and each job that did not pass with the tests that failed in it (empty: the whole job)."""

    selection: Selection
    failed: tuple[tuple[JobSpec, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the decision reads, read before it.

    ``command`` is what every command reads first (who may ask, the pull request, its files,
    the runner's refusal). ``pushes`` and ``merge`` are the evidence a comment is judged by;
    ``test_folders`` the folders found at the commit among those looked for; ``previous`` the
    last finished run, for `--failed`. ``now`` stands for the time of a request that has none.
    """

    repo: str
    ask: Ask
    config: SlowCiConfig
    command: CommandFacts
    now: float
    repository: Repository = Repository()
    pushes: tuple[Push, ...] = ()
    merge: MergeCommit | None = None
    test_folders: frozenset[str] = frozenset()
    previous: PreviousRun | None = None

    @property
    def sha(self) -> str:
        """The commit that runs: the one pinned, else the head."""
        return self.ask.pinned_sha or self.command.pull.head_sha


@dataclass(frozen=True, slots=True)
class RunPlan:
    """A run to create: what it tests and why, on which commit, and the run as stored."""

    selection: Selection
    jobs: tuple[JobSpec, ...]
    run: NewRun
    #: `--failed`: the tests each job re-runs, by job name (none listed: the whole job)
    failed_tests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        return self.run.head_sha


def approval(facts: Facts) -> Approval | None:
    """A comment's verdict on the head, from the bot's record of pushes (and GitHub's test
    merge where the record cannot tell); None for a request that is not a comment."""
    if facts.ask.approved_at is None:
        return None
    return comment_approval(
        head_sha=facts.sha,
        commented_at=facts.ask.approved_at,
        pushes=facts.pushes,
        merge=facts.merge,
        named_sha=facts.ask.trigger.sha,
    )


def needs_test_merge(facts: Facts) -> bool:
    """Whether GitHub's test merge would decide the comment (it costs two requests): only when
    the record of pushes cannot tell and the comment names no commit."""
    if facts.ask.trigger.sha is not None or facts.merge is not None:
        return False
    verdict = approval(facts)
    return verdict is not None and verdict.verdict == "unknown"


def request_refusal(facts: Facts) -> Refusal | None:
    """The refusals that need only the first reads: who asked, the pull request's state, and
    a pinned commit that is no longer its head."""
    config, pull = facts.config, facts.command.pull
    refusal = admit(
        facts.command,
        not_authorised=not_authorised_reply(facts.ask.login, config.allow, config.min_permission),
        closed=CLOSED_REPLY,
    )
    if refusal is None and facts.sha != pull.head_sha:
        refusal = Refusal(stale_comment_reply(pull.head_sha))
    return refusal


def approval_refusal(facts: Facts) -> Refusal | None:
    """A comment that does not approve the head: it predates it, or the bot cannot tell."""
    verdict = approval(facts)
    if verdict is None or verdict.approved:
        return None
    if verdict.verdict == "stale":  # what was approved is not what would run
        return Refusal(stale_comment_reply(facts.sha))
    return Refusal(cannot_tell_reply(facts.sha, facts.ask.trigger, verdict.reason))


def admitted(facts: Facts) -> bool:
    """Whether the request gets past who asked, the pull request's state and the approval of
    its commit: from here on the request is a maintainer's for this commit."""
    return request_refusal(facts) is None and approval_refusal(facts) is None


def approved_head(facts: Facts) -> str | None:
    """The commit a maintainer approved with this request, recorded even when nothing runs,
    so that the label's later pushes chain back to it; None when it approves nothing."""
    return facts.sha if admitted(facts) else None


def names_to_find(facts: Facts) -> tuple[str, ...]:
    """The names whose test folders are looked for at the commit: the models the pull request
    adds, then those listed, once each; a name that cannot be a folder is never asked about."""
    if facts.ask.trigger.failed_only:
        return ()
    added = models_added(facts.command.files, facts.config.models_dir)
    names = dict.fromkeys((*added, *facts.ask.trigger.names))
    return tuple(name for name in names if runnable(name) is None)


def decide(facts: Facts) -> Refusal | RunPlan:
    """The one reply, or the run, for a request and what was read about it."""
    refusal = request_refusal(facts) or approval_refusal(facts)
    if refusal is not None:
        return refusal
    trigger, config = facts.ask.trigger, facts.config
    failed_tests: dict[str, tuple[str, ...]] = {}
    if trigger.failed_only:
        if facts.previous is None:
            return Refusal(NO_PREVIOUS_RUN_REPLY)
        if not facts.previous.failed:
            return Refusal(NOTHING_FAILED_REPLY)
        selection = facts.previous.selection
        jobs = tuple(job for job, _ in facts.previous.failed)
        failed_tests = {job.name: tests for job, tests in facts.previous.failed}
    else:
        added = models_added(facts.command.files, config.models_dir)
        selection = select_folders(added, trigger.names, facts.test_folders, at=facts.sha[:12])
        if selection.empty:
            return Refusal(nothing_selectable_reply(selection).strip())
        jobs = plan_jobs(selection, config.machine_types)
    if facts.command.runner_refusal is not None:
        return Refusal(facts.command.runner_refusal)
    return RunPlan(selection, jobs, _new_run(facts, selection, jobs, failed_tests), failed_tests)


def _new_run(
    facts: Facts,
    selection: Selection,
    jobs: tuple[JobSpec, ...],
    failed_tests: Mapping[str, tuple[str, ...]],
) -> NewRun:
    config, pull, ask = facts.config, facts.command.pull, facts.ask
    key = f"{facts.repo}#{ask.number}:{ask.source}"
    spec = {
        "installation_id": facts.repository.installation_id,
        "comments_url": pull.comments_url,
        "title": pull.title,
        "html_url": pull.html_url,
        "failed_only": ask.trigger.failed_only,
        "selection": selection.to_json(),
        "channel": config.channel,
        "reruns": config.reruns,
        "request": {
            "head_clone_url": pull.head_clone_url or pull.base_clone_url,  # a deleted fork
            "head_ref": pull.head_ref,
            "base_clone_url": pull.base_clone_url,
            "timeout_s": float(config.job_timeout_seconds),
            "network": config.network,
            "limits": config.limits.as_json(),
            "extras": None if config.extras is None else list(config.extras),
            "options": _runner_options(facts, key),
        },
    }
    rows = tuple(
        (
            job.name,
            {
                "runner": config.runner,
                "folder": job.folder,
                "machine_type": job.machine_type,
                "tests": list(failed_tests.get(job.name, ())),
            },
        )
        for job in jobs
    )
    return NewRun(
        kind=KIND,
        head_sha=facts.sha,
        key=key,
        jobs=rows,
        spec=spec,
        runner=config.runner,
        private=facts.repository.private,
        requested_at=ask.approved_at.timestamp() if ask.approved_at else facts.now,
        summary=f"{len(jobs)} jobs",
        base_ref=pull.base_ref,
        supersede=True,
    )


def _runner_options(facts: Facts, run_key: str) -> dict[str, Any]:
    """What the Actions runner needs besides the job: the workflow, on the default branch (the
    reviewed one, never the PR's), the labels per machine type, and the run's stable key."""
    config = facts.config
    if config.runner != "github-actions":
        return {}
    return {
        "workflow": config.workflow,
        "ref": facts.repository.default_branch or facts.command.pull.base_ref or "main",
        "labels": {**DEFAULT_RUNNER_LABELS, **config.runner_labels},
        "run_key": run_key,
    }
