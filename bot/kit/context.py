"""What a handler is given besides the event: services shared by all, and a per-call context.

A feature reads the bot's own records through the context (the idempotency keys it recorded, the
pushes the bot saw) and the job system's records by their names here, never through the store.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI, GitHubClients
from bot.clients.repo_config import RepoConfigCache
from bot.config import RepoConfig, Settings
from bot.jobs.records import JobRecord, ReportState, RunRecord
from bot.jobs.system import JobSystem
from bot.kit.comments import post_once
from bot.kit.help import Help
from bot.kit.records import Records
from bot.metrics import Metrics
from bot.store import deliveries, effects
from bot.store.deliveries import PushRecord
from bot.store.engine import Store

__all__ = [
    "Context",
    "JobRecord",
    "JobSystem",
    "PushRecord",
    "Records",
    "ReportState",
    "RunRecord",
    "Services",
]


class SlackQueue(Protocol):
    """What a feature may do with the outbox: queue a Slack message to be sent once per key.

    The sender itself belongs to the server; features see only this, so they cannot reach its
    loop or its rows."""

    async def queue_slack(
        self,
        key: str,
        message: Mapping[str, Any],
        *,
        delivery_id: str | None = None,
        thread_of: str | None = None,
    ) -> bool: ...


class ScheduleSync(Protocol):
    """What the core tells the scheduler: a repository's default branch moved, so the
    schedules its `bot.toml` asks for may have changed (the scheduler reads it again when
    `config_changed`, or when it has not read that repository since it started)."""

    def default_branch_pushed(
        self, repo: str, installation_id: int | None, default_branch: str, *, config_changed: bool
    ) -> None: ...


class RunLocks:
    """One report of a run at a time: the job system reports a run after each change, and a
    report that read the rows earlier must never land after one that read them later."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, run_id: int) -> asyncio.Lock:
        found = self._locks.get(run_id)
        if found is None:
            found = self._locks[run_id] = asyncio.Lock()
        return found


@dataclass
class Services:
    """Long-lived collaborators, built once per process."""

    settings: Settings
    store: Store
    github: GitHubClients
    outbox: SlackQueue
    configs: RepoConfigCache
    metrics: Metrics
    jobs: JobSystem
    records: Records
    help: tuple[Help, ...] = ()
    dry_run: bool = False
    #: The scheduler, where this process runs one (not in a one-shot run or a dry run).
    schedules: ScheduleSync | None = None

    def page_url(self, path: str) -> str:
        """A page of this bot as a message links it: absolute under `BOT_PUBLIC_URL`, else the
        bare path (which Slack and the Checks API will not take as a link)."""
        base = self.settings.public_url
        return f"{base}{path}" if base else path


@dataclass
class Context:
    """Handed to every handler as `ctx`; one per (delivery, handler) call."""

    services: Services
    event: Event
    gh: GitHubAPI
    log: logging.Logger | logging.LoggerAdapter[logging.Logger]

    @property
    def delivery_id(self) -> str:
        return self.event.delivery_id

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def dry_run(self) -> bool:
        return self.services.dry_run

    @property
    def help(self) -> tuple[Help, ...]:
        return self.services.help

    @property
    def repo(self) -> str:
        return self.event.data["repository"]["full_name"]

    @property
    def default_branch(self) -> str:
        return self.event.data["repository"].get("default_branch") or "main"

    async def repo_config(self) -> RepoConfig:
        """The repository's configuration from its default branch (cached)."""
        return await self.services.configs.get(self.gh, self.repo, self.default_branch)

    async def queue_slack(
        self, key: str, message: Mapping[str, Any], *, thread_of: str | None = None
    ) -> bool:
        """Queues a Slack message once per key, ever; it is retried until Slack takes it. With
        `thread_of` (another message's key) it is sent after that one, as a reply in its
        thread."""
        return await self.services.outbox.queue_slack(
            key, message, delivery_id=self.delivery_id, thread_of=thread_of
        )

    async def comment_once(self, comments_url: str, key: str, body: str) -> bool:
        """Posts a comment once per key, ever; True when it posted one now."""
        if await self.already_done(key):
            return False
        posted = await post_once(self.gh, comments_url, key, body)
        await self.mark_done(key)
        return posted

    async def already_done(self, key: str) -> bool:
        """Whether a side effect with this idempotency key was recorded before."""
        if self.dry_run:
            return False
        return await self.store.call(lambda conn: effects.effect_done(conn, key))

    async def done_of(self, keys: Iterable[str]) -> set[str]:
        """Which of these idempotency keys were recorded before, in one read."""
        wanted = list(keys)
        return await self.store.call(lambda conn: effects.effects_done(conn, wanted), single=True)

    async def push_records(self, number: int) -> list[PushRecord]:
        """The deliveries that moved this pull request's head, in arrival order, as the bot
        stored them: times the bot and GitHub wrote, where the author's commit dates are not."""
        repo = self.repo
        return await self.store.call(
            lambda conn: deliveries.push_records(conn, repo, number), single=True
        )

    async def mark_done(self, key: str, detail: str = "") -> None:
        """Records a side effect so a redelivery of the same event does not repeat it."""
        if not self.dry_run:
            await self.store.call(lambda conn: effects.record_effect(conn, key, detail))
