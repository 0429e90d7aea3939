"""The scheduler: fires each feature's schedules when they are due, in any repository the bot
serves, and keeps them in step with each repository's `bot.toml`.

Schedules and their fire times live in the store (`bot.store.schedules`), so this loop holds
nothing a restart could lose. It sleeps until the next schedule is due (or a wake: a manual
fire, a changed config), claims what is due (which records each fire and moves its schedule to
its next time in one transaction), and hands each fire to its feature's `on_fire`, each on its
own task with the handlers' time limit: one feature that fails or hangs delays no other, and
its error becomes the fire's note. A fire whose schedule's previous run is still going starts
nothing and says so.

Schedules are learnt from the configs: at start, every repository of every installation (App
mode; with a token, the repositories that have schedules already), then again whenever a push
to a default branch touches `.github/bot.toml` (or reaches a repository this process has not
read yet). A config that cannot be read leaves that repository's schedules as they were; a
schedule whose cron does not parse is logged and skipped, and the others are kept in step.

A fire that a previous process claimed and never finished (it stopped in between) is handed to
its feature once more at start; a second interruption gives up on it with a note
(`bot.store.schedules.resume_unfinished`). Features key what a fire starts on the fire's id,
so handing it over again finds the run the first hand-over made instead of starting another.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import gidgethub.apps

from bot.clients.backoff import backoff_delay
from bot.clients.github import GitHubAPI
from bot.config import CONFIG_PATH
from bot.kit.context import Services
from bot.kit.cron import Cron, CronError, parse_cron
from bot.kit.feature import Feature, Fire, FireResult
from bot.store import schedules as schedules_db
from bot.store.engine import StoreClosed
from bot.store.schedules import FireRow, Key, SyncResult

log = logging.getLogger("bot.server.scheduler")

#: Fires claimed in one pass; when there are more, the next pass follows at once.
CLAIM_BATCH = 20
#: The longest sleep: a schedule another process added, or a stepped clock, is noticed within it.
MAX_SLEEP_S = 300.0
#: After the loop itself failed (the store refused a read), the wait before it tries again.
LOOP_RETRY_S = 5.0
#: The first wait after a start-up sync that GitHub did not answer; it doubles up to an hour.
SYNC_RETRY_S = 30.0
#: GitHub lists at most this many commits in a push; a push of more may not list the config.
PUSH_COMMITS_LISTED = 2048

STILL_GOING = "the previous run (#{run_id}) is still going"
NO_FEATURE = "no feature {feature!r} takes this schedule's fires"


@functools.lru_cache(maxsize=512)
def _parsed(text: str) -> Cron:
    return parse_cron(text)


def next_fire_after(cron: str, after: float) -> float:
    """The first time after `after` that `cron` names (what the store's claims advance by)."""
    return _parsed(cron).next_after(after)


def pushes_config(data: dict[str, Any]) -> bool:
    """Whether a push to a default branch may have changed `.github/bot.toml`: it lists a
    commit that touches it, or it cannot tell (a forced push, whose commits do not show what
    it dropped; a new branch; no commits listed; as many as GitHub lists at most)."""
    if data.get("forced") or data.get("created"):
        return True
    commits = data.get("commits")
    if not isinstance(commits, list) or not commits or len(commits) >= PUSH_COMMITS_LISTED:
        return True
    for commit in commits:
        if not isinstance(commit, dict):
            return True
        for change in ("added", "modified", "removed"):
            paths = commit.get(change)
            if isinstance(paths, list) and CONFIG_PATH in paths:
                return True
    return False


class Scheduler:
    """Runs schedules for one process; see the module's docstring."""

    def __init__(
        self,
        services: Services,
        features: Sequence[Feature],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.services = services
        self.features = {feature.name: feature for feature in features}
        #: Wall-clock seconds: cron times are wall-clock times. Tests move it.
        self.clock = clock
        self.running = False
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[Any]] = set()
        #: One fire of a schedule at a time, so two never both find its previous run ended.
        self._fire_locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._sync_lock = asyncio.Lock()
        #: Repositories (lower case) whose config this process has read.
        self._synced: set[str] = set()
        #: Set once the start-up read of every repository's schedules has gone through.
        self.read_at_start = asyncio.Event()
        self._start_read: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        self.running = True
        try:
            await self._resume()
            # Its own task: fires are claimed meanwhile, and `settle` does not wait for it.
            self._start_read = asyncio.create_task(self._sync_at_start(), name="schedules-read")
            while not self._stopping:
                # Cleared before the work, so a wake-up during the work is not lost.
                self._wake.clear()
                claimed: list[FireRow] = []
                try:
                    claimed = await self.tick()
                    next_at = await self.services.store.call(schedules_db.next_due_at, single=True)
                except StoreClosed:
                    return
                except Exception:
                    log.exception("scheduler loop error")
                    next_at = self.clock() + LOOP_RETRY_S
                if len(claimed) >= CLAIM_BATCH:
                    continue
                wait = MAX_SLEEP_S if next_at is None else next_at - self.clock()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), timeout=min(MAX_SLEEP_S, max(0.05, wait))
                    )
        finally:
            self.running = False
            if self._start_read is not None and not self._start_read.done():
                self._start_read.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._start_read
            await self.settle()

    async def tick(self) -> list[FireRow]:
        """Claims what is due now and hands each fire to its feature (without waiting for it:
        `settle` does)."""
        now = self.clock()
        claimed = await self.services.store.call(
            lambda conn: schedules_db.claim_due(conn, now, CLAIM_BATCH, next_after=next_fire_after)
        )
        for row in claimed:
            log.info(
                "schedule %s of %s fires",
                row.name,
                row.repo,
                extra={"feature": row.feature, "fire": row.id, "due_at": row.due_at},
            )
            self._spawn(self._fire(row))
        return claimed

    async def settle(self) -> None:
        """Waits for the fires, and the reads of pushed configs, in hand (a stop that cannot
        wait cancels them: a cancelled fire is handed over again at the next start)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    # ------------------------------------------------------------------ firing

    async def fire_now(self, repo: str, feature: str, name: str) -> FireRow | None:
        """Fires a schedule by hand (an operator's button); None when there is no such enabled
        schedule. The fire is handed over in the background, like a due one."""
        if not self.running:
            raise RuntimeError("the scheduler does not run in this process")
        now = self.clock()
        row = await self.services.store.call(
            lambda conn: schedules_db.fire_now(conn, repo, feature, name, now)
        )
        if row is not None:
            log.info(
                "schedule %s of %s fired by hand",
                name,
                repo,
                extra={"feature": feature, "fire": row.id},
            )
            self._spawn(self._fire(row))
        return row

    async def _resume(self) -> None:
        now = self.clock()
        retry, abandoned = await self.services.store.call(
            lambda conn: schedules_db.resume_unfinished(conn, now)
        )
        for row in abandoned:
            log.warning(
                "fire %s of schedule %s of %s was interrupted %s times; not tried again",
                row.id,
                row.name,
                row.repo,
                row.attempts,
                extra={"feature": row.feature},
            )
        for row in retry:
            log.info(
                "fire %s of schedule %s of %s was interrupted by a stop; handing it over again",
                row.id,
                row.name,
                row.repo,
                extra={"feature": row.feature},
            )
            self._spawn(self._fire(row))

    async def _fire(self, row: FireRow) -> None:
        key = (row.repo.lower(), row.feature, row.name)
        lock = self._fire_locks.setdefault(key, asyncio.Lock())
        async with lock:
            run_id, note = await self._hand_over(row)
            try:
                await self.services.store.call(
                    lambda conn: schedules_db.record_fire_result(conn, row.id, run_id, note)
                )
            except StoreClosed:
                log.warning("fire %s ended as the store closed; it is resumed at start", row.id)

    async def _hand_over(self, row: FireRow) -> tuple[int | None, str]:
        """Calls the feature's `on_fire`, unless its previous run is still going: the run it
        started, or why none."""
        feature = self.features.get(row.feature)
        if feature is None or feature.on_fire is None:
            log.warning("fire %s: %s", row.id, NO_FEATURE.format(feature=row.feature))
            return None, NO_FEATURE.format(feature=row.feature)
        schedule = await self.services.store.call(
            lambda conn: schedules_db.get_schedule(conn, row.repo, row.feature, row.name),
            single=True,
        )
        if schedule is not None and schedule.last_run_id is not None:
            previous = await self.services.jobs.get_run(schedule.last_run_id)
            if previous is not None and previous.active:
                log.info(
                    "schedule %s of %s: previous run %s still going; starting nothing",
                    row.name,
                    row.repo,
                    previous.id,
                    extra={"feature": row.feature, "fire": row.id},
                )
                return None, STILL_GOING.format(run_id=previous.id)
        fire = Fire(
            id=row.id,
            feature=row.feature,
            repo=row.repo,
            name=row.name,
            installation_id=row.installation_id,
            due_at=row.due_at,
            fired_at=row.fired_at,
            manual=row.manual,
        )
        limit = self.services.settings.handler_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                result = await feature.on_fire(self.services, fire)
        except TimeoutError:
            log.exception("%s's on_fire for fire %s timed out", feature.name, row.id)
            return None, f"{feature.name} did not finish starting within {limit:g} s"
        except Exception as exc:
            log.exception("%s's on_fire for fire %s failed", feature.name, row.id)
            return None, f"{feature.name} failed: {type(exc).__name__}: {exc}"
        if not isinstance(result, FireResult):
            return None, f"{feature.name} answered {type(result).__name__}, not a FireResult"
        log.info(
            "fire %s: %s",
            row.id,
            f"run {result.run_id}" if result.run_id is not None else result.note or "no run",
            extra={"feature": feature.name},
        )
        return result.run_id, result.note

    # ------------------------------------------------------------------ learning schedules

    def default_branch_pushed(
        self, repo: str, installation_id: int | None, default_branch: str, *, config_changed: bool
    ) -> None:
        """Reads `repo`'s schedules again, in the background, when its config may have changed
        or this process has not read it yet (a repository added since the start)."""
        if not self.running or self._stopping:
            return
        if not config_changed and repo.lower() in self._synced:
            return
        self._spawn(self._sync_pushed(repo, installation_id, default_branch))

    async def _sync_pushed(self, repo: str, installation_id: int | None, branch: str) -> None:
        try:
            gh = await self.services.github.for_installation(installation_id)
        except Exception:
            log.exception("schedules of %s not read: no GitHub client for it", repo)
            return
        await self.sync_repo(gh, repo, installation_id, branch)

    async def sync_repo(
        self, gh: GitHubAPI, repo: str, installation_id: int | None, default_branch: str
    ) -> SyncResult | None:
        """Makes `repo`'s stored schedules those its config asks for; None (and nothing
        changed) when its config cannot be read."""
        async with self._sync_lock:
            return await self._sync_repo(gh, repo, installation_id, default_branch)

    async def _sync_repo(
        self, gh: GitHubAPI, repo: str, installation_id: int | None, default_branch: str
    ) -> SyncResult | None:
        try:
            config = await self.services.configs.get(gh, repo, default_branch)
        except Exception as exc:  # unreadable, invalid, unreachable: keep what was there
            log.warning(
                "the config of %s cannot be read; its schedules stay as they were: %s",
                repo,
                exc,
                extra={"error": type(exc).__name__},
            )
            return None
        specs: dict[Key, str] = {}
        untouched: set[Key] = set()
        untouched_features: set[str] = set()
        for feature in self.features.values():
            if feature.schedules is None:
                continue
            try:
                asked = list(feature.schedules(config))
            except Exception:
                log.exception("%s's schedules for %s could not be read; kept", feature.name, repo)
                untouched_features.add(feature.name)
                continue
            for spec in asked:
                key = (feature.name, spec.name)
                if key in specs or key in untouched:
                    log.warning(
                        "%s: %s's schedule %r is named twice", repo, feature.name, spec.name
                    )
                    continue
                try:
                    _parsed(spec.cron)
                except CronError as exc:
                    log.warning(
                        "%s: schedule %r of %s skipped: cron %r: %s",
                        repo,
                        spec.name,
                        feature.name,
                        spec.cron,
                        exc,
                    )
                    untouched.add(key)
                    continue
                specs[key] = spec.cron
        now = self.clock()
        result = await self.services.store.call(
            lambda conn: schedules_db.sync_schedules(
                conn,
                repo,
                installation_id,
                specs,
                now,
                next_after=next_fire_after,
                untouched=untouched,
                untouched_features=untouched_features,
            )
        )
        self._synced.add(repo.lower())
        if result.added or result.changed or result.disabled:
            log.info(
                "schedules of %s updated",
                repo,
                extra={
                    "added": [f"{f}/{n}" for f, n in result.added],
                    "changed": [f"{f}/{n}" for f, n in result.changed],
                    "disabled": [f"{f}/{n}" for f, n in result.disabled],
                },
            )
            self.wake()
        return result

    async def sync_all(self) -> int:
        """Reads the schedules of every repository the bot serves; returns how many it read.

        App mode lists every installation's repositories; a repository none of them lists any
        more has its schedules disabled. With a token there is no such list, so the
        repositories that have schedules are read again (others are learnt from pushes).
        Raises when GitHub's lists cannot be read, so the caller can try again later.
        """
        github = self.services.github
        settings = self.services.settings
        listed: set[str] = set()
        if github.mode == "app":
            jwt = gidgethub.apps.get_jwt(
                app_id=str(settings.github_app_id), private_key=settings.github_private_key or ""
            )
            app = GitHubAPI(github.session, base_url=settings.github_api_url)
            async for installation in app.getiter("/app/installations", jwt=jwt):
                if installation.get("suspended_at"):
                    continue
                installation_id = int(installation["id"])
                gh = await github.for_installation(installation_id)
                async for repo in gh.getiter(
                    "/installation/repositories", iterable_key="repositories"
                ):
                    if repo.get("archived"):
                        continue
                    listed.add(repo["full_name"].lower())
                    branch = repo.get("default_branch") or "main"
                    await self.sync_repo(gh, repo["full_name"], installation_id, branch)
        stored = await self.services.store.call(schedules_db.scheduled_repos, single=True)
        for repo, installation_id in stored:
            if github.mode == "app":
                if repo.lower() not in listed:
                    await self._forget(repo, installation_id)
                continue
            try:
                gh = await github.for_installation(installation_id)
                answer = await gh.getitem(f"/repos/{repo}")
            except Exception as exc:  # one repository's answer never stops the others
                log.warning("schedules of %s not read: %s: %s", repo, type(exc).__name__, exc)
                continue
            branch = answer.get("default_branch") or "main"
            await self.sync_repo(gh, repo, installation_id, branch)
        return len(listed) if github.mode == "app" else len(stored)

    async def _forget(self, repo: str, installation_id: int | None) -> None:
        """Disables the schedules of a repository the App is no longer installed on."""
        now = self.clock()
        async with self._sync_lock:
            result = await self.services.store.call(
                lambda conn: schedules_db.sync_schedules(
                    conn, repo, installation_id, {}, now, next_after=next_fire_after
                )
            )
        if result.disabled:
            log.info("%s is no longer installed; its schedules are disabled", repo)

    async def _sync_at_start(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                count = await self.sync_all()
            except StoreClosed:
                return
            except Exception as exc:
                attempt += 1
                delay = backoff_delay(attempt, SYNC_RETRY_S, cap=3600.0)
                log.warning(
                    "schedules not read at start (%s: %s); trying again in %.0f s",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=delay)
                continue
            log.info("schedules read", extra={"repositories": count})
            self.read_at_start.set()
            return
