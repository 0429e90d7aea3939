"""The steps a command takes to become a run, shared by `run-slow` and `/style`.

A person asks on a pull request; the feature reads who they are, the pull request and its files
(`read_command`), refuses a person who may not ask and a closed pull request (`admit`), plans
its run, refuses where its runner cannot take the run here (the job system's answer, read with
the rest), and either replies once or creates the run (`carry_out`). The decisions between the
reads and the writes are the feature's own, pure: it returns a `Refusal` or a `NewRun`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.jobs.system import JobSystem
from bot.kit.conversation import Conversation, PullInfo, at_least, job_refusal

__all__ = [
    "Command",
    "CommandFacts",
    "NewRun",
    "Refusal",
    "admit",
    "carry_out",
    "may_ask",
    "read_command",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Command:
    """Who asked for a run on which pull request, and the key their one reply is posted under
    (so a redelivered request finds the reply it got before)."""

    repo: str
    number: int
    login: str
    reply_key: str

    @property
    def comments_url(self) -> str:
        """Where replies go: known before the pull request is read."""
        return f"/repos/{self.repo}/issues/{self.number}/comments"


@dataclass(frozen=True, slots=True)
class CommandFacts:
    """What every command reads before it decides: whether the person may ask, the pull request
    and its files, and why the feature's runner cannot take a run here (None: it can)."""

    authorised: bool
    pull: PullInfo
    files: tuple[Mapping[str, Any], ...] = ()
    runner_refusal: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Nothing runs; ``text`` is the one reply that says why."""

    text: str


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create, in the job system's terms; the person and pull request are the
    command's. ``key`` makes it once per request; ``summary`` is what the delivery's record
    says of it (`2 jobs`, `3 files`)."""

    kind: str
    head_sha: str
    key: str
    jobs: tuple[tuple[str, Mapping[str, Any]], ...]
    spec: Mapping[str, Any]
    #: the runner every job of the run goes to, and whether its pages are for readers of the
    #: repository only (what is not known to be public is private)
    runner: str
    private: bool
    requested_at: float
    summary: str
    base_ref: str | None = None
    #: end the older active runs of the same kind on the pull request
    supersede: bool = False


async def may_ask(
    github: Conversation, login: str, *, min_permission: str, allow: Sequence[str] = ()
) -> bool:
    """An allow-listed login (case-insensitively, asking GitHub nothing), else a role on the
    repository of at least ``min_permission``."""
    if login.casefold() in {name.casefold() for name in allow}:
        return True
    return at_least(await github.role(login), min_permission)


async def read_command(
    github: Conversation,
    jobs: JobSystem,
    command: Command,
    *,
    runner: str,
    hint: str,
    min_permission: str,
    allow: Sequence[str] = (),
) -> CommandFacts:
    """The first reads, together: a person is waiting for the answer. ``hint`` says what would
    let the runner take the run where it cannot (a setting, the server)."""
    authorised, pull, files = await asyncio.gather(
        may_ask(github, command.login, min_permission=min_permission, allow=allow),
        github.pull(command.number),
        github.changed_files(command.number),
    )
    return CommandFacts(authorised, pull, tuple(files), job_refusal(jobs, runner, hint))


def admit(facts: CommandFacts, *, not_authorised: str, closed: str) -> Refusal | None:
    """The refusals every command makes first, in this order: a person who may not ask (told
    before anything about the pull request), then a pull request that is not open."""
    if not facts.authorised:
        return Refusal(not_authorised)
    if facts.pull.state != "open":
        return Refusal(closed)
    return None


async def carry_out(
    github: Conversation,
    jobs: JobSystem,
    command: Command,
    outcome: Refusal | NewRun,
    *,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
) -> str:
    """Replies once, or creates the run; returns what happened, for the delivery's record.

    ``logger`` is the handler's (`ctx.log`), so the line carries the delivery's id."""
    if isinstance(outcome, Refusal):
        return await github.reply(command.comments_url, command.reply_key, outcome.text)
    run = await jobs.create_run(
        outcome.kind,
        repo=command.repo,
        number=command.number,
        head_sha=outcome.head_sha,
        private=outcome.private,
        runner=outcome.runner,
        base_ref=outcome.base_ref,
        requested_by=command.login,
        requested_at=outcome.requested_at,
        key=outcome.key,
        supersede=outcome.supersede,
        spec=outcome.spec,
        jobs=list(outcome.jobs),
    )
    logger.info(
        "%s on %s#%s: run %s, %s at %s",
        outcome.kind,
        command.repo,
        command.number,
        run.id,
        outcome.summary,
        outcome.head_sha[:12],
    )
    return f"run {run.id}: {outcome.summary} at {outcome.head_sha}"
