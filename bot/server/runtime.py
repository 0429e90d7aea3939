"""Builds the bot's services and runs its background loops; shared by the server and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.clients.github import GitHubClients, new_session
from bot.clients.repo_config import RepoConfigCache
from bot.clients.slack import make_sender
from bot.config import RepoConfig, Settings
from bot.jobs.runners import EnvCache, EnvConfig, GpuPool, LocalRunner, LocalRunnerConfig, confine
from bot.jobs.runners.actions import NAME, ActionsConfig, ActionsRunner
from bot.jobs.system import JobSystem
from bot.kit.context import Services
from bot.kit.feature import Feature
from bot.kit.records import Records
from bot.metrics import Metrics
from bot.server.outbox import Outbox
from bot.server.routing import (
    FEATURES,
    all_help,
    combined_router,
    feature_runners,
    register_feature_jobs,
)
from bot.server.scheduler import Scheduler
from bot.server.worker import Worker
from bot.store.engine import Store
from bot.store.retention import run_retention

log = logging.getLogger("bot.server.runtime")


def local_runner(settings: Settings) -> LocalRunner:
    """Jobs on this machine: clean checkouts under the work folder, environments cached per
    repository (or the configured interpreter), GPUs handed out one job at a time, each job
    confined (or refused, where this host cannot confine)."""
    confinement = confine.detect()
    if confinement.mode == "unavailable":
        log.error("pull-request jobs will be refused: %s", confinement.refusal)
    elif confinement.mode == "unconfined":
        log.warning("pull-request jobs run UNCONFINED: %s", confinement.reason)
    envs = EnvConfig(cache_dir=Path(settings.env_cache_dir), python=settings.test_python)
    return LocalRunner(
        EnvCache(envs, confinement),
        GpuPool(),
        LocalRunnerConfig(work_dir=Path(settings.job_work_dir)),
    )


def _absolute(path: str) -> str:
    return path if path == ":memory:" else str(Path(path).absolute())


class Runtime:
    """Owns the store, the HTTP session, the worker, the outbox and the scheduler for one
    process."""

    def __init__(
        self,
        settings: Settings,
        *,
        features: Sequence[Feature] | None = None,
        dry_run: bool = False,
        store: Store | None = None,
        config_override: RepoConfig | None = None,
        one_shot: bool = False,
    ) -> None:
        self.settings = settings
        #: `bot handle` in a workflow: jobs run only on GitHub Actions, never in this process,
        #: which holds the workflow's token.
        self.one_shot = one_shot
        self.features = features  # None: the bot's own (`handlers.FEATURES`)
        self.dry_run = dry_run
        self.store = store or Store(settings.database)
        self.metrics = Metrics()
        self.router = combined_router(features)
        self.config_override = config_override
        self.session: aiohttp.ClientSession | None = None
        self._services: Services | None = None
        self._worker: Worker | None = None
        self._outbox: Outbox | None = None
        self._scheduler: Scheduler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._retention: asyncio.Task[None] | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the runtime has not been started")
        return self._services

    @property
    def outbox(self) -> Outbox:
        """The outbox's sender: the server's to run, wake and drain (features only queue)."""
        if self._outbox is None:
            raise RuntimeError("the runtime has not been started")
        return self._outbox

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            raise RuntimeError("the runtime has not been started")
        return self._worker

    @property
    def scheduler(self) -> Scheduler:
        """The schedules' loop; `scheduler.running` is False where this process runs none (a
        one-shot run, a dry run, or without background tasks)."""
        if self._scheduler is None:
            raise RuntimeError("the runtime has not been started")
        return self._scheduler

    async def start(self, *, background: bool = True) -> None:
        self._log_paths()
        self.session = new_session()
        outbox = Outbox(
            self.store,
            make_sender(self.settings, self.session),
            self.metrics,
            base_delay=self.settings.retry_base_seconds,
            dry_run=self.dry_run,
        )
        actions = ActionsRunner(
            ActionsConfig(
                api_url=self.settings.github_api_url,
                poll_s=self.settings.actions_poll_seconds,
                always_find=self.one_shot,
            )
        )
        runners = (
            {NAME: actions}
            if self.one_shot
            else {
                "local": local_runner(self.settings),
                NAME: actions,
                **feature_runners(self.settings, self.features),
            }
        )
        self.jobs = JobSystem(self.store, runners, concurrency=self.settings.job_concurrency)
        self._outbox = outbox
        self._services = Services(
            settings=self.settings,
            store=self.store,
            github=GitHubClients(self.session, self.settings, dry_run=self.dry_run),
            outbox=outbox,
            configs=RepoConfigCache(override=self.config_override),
            metrics=self.metrics,
            jobs=self.jobs,
            records=Records(self.store),
            help=all_help(self.features),
            dry_run=self.dry_run,
        )
        self._scheduler = Scheduler(self._services, self.features or FEATURES)
        register_feature_jobs(self.jobs, self._services, self.features)
        self._worker = Worker(self._services, self.router)
        # Before the server takes a request: rows this process accepts must not be mistaken
        # for what a previous process left unfinished.
        await self._worker.recover()
        if background:
            self._tasks = [
                asyncio.create_task(self._worker.run(), name="worker"),
                asyncio.create_task(outbox.run(), name="outbox"),
            ]
            # Fires start runs and write records: not from a dry run, nor from a one-shot run
            # in a workflow, which handles its one event and ends.
            if not self.dry_run and not self.one_shot:
                self._services.schedules = self._scheduler
                self._tasks.append(asyncio.create_task(self._scheduler.run(), name="scheduler"))
            if self.settings.retention_days > 0:  # 0: everything is kept for ever
                # Not one of the tasks health depends on, and nothing of it to finish at a stop.
                self._retention = asyncio.create_task(
                    run_retention(self.store, self.settings, self.metrics), name="retention"
                )
            if not self.dry_run:
                await self.jobs.start()  # re-reports what a previous process left running

    def _log_paths(self) -> None:
        """Every file and folder the process will use, absolute: an operator reading the log
        of a service started elsewhere sees where its store and jobs really are."""
        settings = self.settings
        paths = {
            "database": settings.database,
            "job_dir": settings.job_work_dir,
            "env_cache": settings.env_cache_dir,
            "test_python": settings.test_python,
            "private_key_path": settings.github_private_key_path,
        }
        log.info(
            "paths",
            extra={
                name: value if name == "test_python" else _absolute(value)
                for name, value in paths.items()
                if value
            },
        )

    def tasks_alive(self) -> bool:
        return bool(self._tasks) and all(not task.done() for task in self._tasks)

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """Lets the worker finish the delivery in hand; whatever is left stays queued."""
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
            self._retention = None
        if self._worker is not None:
            self._worker.stop()
        if self._scheduler is not None:
            self._scheduler.stop()
        if self._services is not None:
            self._services.outbox.stop()
            await self.jobs.stop()  # running jobs go back to the queue for the next start
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if pending:
                log.warning("stopped with work in flight; it will be picked up at next start")
        if self.session is not None:
            await self.session.close()
        self.store.close()


#: Where the web application keeps its runtime, for every request handler.
RUNTIME = web.AppKey("runtime", Runtime)
