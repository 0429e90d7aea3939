"""The background loop that turns stored deliveries into handler calls: concurrently, and in
arrival order per pull request.

The web request only stores; this loop does the work, so a slow GitHub never slows GitHub's
webhook calls. A freshly accepted delivery is handed over in memory once its row is committed
(no database round trip on the hot path); deliveries waiting in the database (retries, replays,
and whatever a killed process had accepted) are claimed by a poller.

Deliveries run concurrently (`Settings.worker_concurrency`, 16), serialised per ordering key
(`ordering_key`): two deliveries of one pull request never run at once and keep their arrival
order, while a slow handler on one pull request (a 3,000-file diff, a rate-limit wait) delays
no other. A delivery whose handler raised is retried with exponential backoff, then kept as
`failed` with its traceback for `bot deliveries --failed`, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import traceback
from collections import deque
from typing import Any

from gidgethub.routing import Router

from bot.clients.backoff import backoff_delay
from bot.kit.context import Services
from bot.server.dispatch import DispatchResult, dispatch
from bot.store import deliveries
from bot.store.deliveries import Delivery
from bot.store.engine import StoreClosed

log = logging.getLogger("bot.server.worker")

BATCH = 32
#: Deliveries held in memory at most; past it they wait in the database, so a burst of
#: deliveries bounds the process's memory instead of growing it.
MEMORY_LIMIT = 256
#: Deliveries queued by another process (`bot replay`) are noticed within this many seconds.
IDLE_POLL = 5.0
#: Outcomes on their way to disk at most. The next delivery's handlers run while earlier
#: outcomes commit, so a backlog drains at handler speed rather than one fsync per delivery;
#: a crash in between leaves those rows `in_memory`, and they are handled again at the next
#: start, which handlers already allow for (they record what they did and skip it the second
#: time).
FINISH_WINDOW = 64

#: Comments have `worker_concurrency` slots of their own, apart from every other event's: a
#: person waiting for the answer to a command never queues behind a burst of pull-request
#: events (twenty 3,000-file diffs). So does a click on a check run's button; the other
#: `check_run` actions (every CI's check runs, created and completed) are not commands.
_COMMAND_EVENTS = frozenset({"issue_comment", "pull_request_review_comment"})
_COMMAND_ACTIONS = frozenset({("check_run", "requested_action")})


def _pool(delivery: Delivery) -> str:
    if delivery.event in _COMMAND_EVENTS or (delivery.event, delivery.action) in _COMMAND_ACTIONS:
        return "commands"
    return "events"


#: Events about one pull request or issue, whose number orders them.
_NUMBERED_EVENTS = frozenset(
    {
        "issue_comment",
        "issues",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
    }
)
#: Events about a repository's branches, ordered per repository.
_REPOSITORY_EVENTS = frozenset({"push", "create", "delete"})


def ordering_key(delivery: Delivery, data: Any) -> str:
    """What a delivery must wait for: `repo#number` for a PR or issue (or a check run of a
    PR's commit), `repo` for a push."""
    if isinstance(data, dict) and delivery.repo:
        if delivery.event in _NUMBERED_EVENTS:
            subject = data.get("pull_request") or data.get("issue") or {}
            number = subject.get("number") if isinstance(subject, dict) else None
            if isinstance(number, int):
                return f"{delivery.repo}#{number}"
        elif delivery.event in _REPOSITORY_EVENTS:
            return delivery.repo
        elif delivery.event == "check_run":
            # A check run names the open pull requests of its commit (none for a fork's).
            check = data.get("check_run")
            pulls = check.get("pull_requests") if isinstance(check, dict) else None
            first = pulls[0] if isinstance(pulls, list) and pulls else None
            number = first.get("number") if isinstance(first, dict) else None
            if isinstance(number, int):
                return f"{delivery.repo}#{number}"
    return delivery.id


class Worker:
    def __init__(self, services: Services, router: Router) -> None:
        self.services = services
        self.router = router
        self.concurrency = services.settings.worker_concurrency
        self._queue: asyncio.Queue[Delivery | None] = asyncio.Queue()
        #: Per ordering key: the delivery running (first) and the ones waiting behind it.
        self._lanes: dict[str, deque[Delivery]] = {}
        self._lane_tasks: set[asyncio.Task[None]] = set()
        #: Free slots per pool, and the lanes waiting for one (oldest first).
        self._free = {"commands": self.concurrency, "events": self.concurrency}
        self._waiting: dict[str, deque[str]] = {"commands": deque(), "events": deque()}
        self._held = 0  # in memory: handed over, waiting in a lane, or running
        self._poll_now = asyncio.Event()
        self._stopping = False
        self._backlog = False
        self.alive = False
        self._finishing: set[asyncio.Future[None]] = set()

    @property
    def busy(self) -> bool:
        """Whether any delivery is being handled or waits in memory."""
        return self._held > 0

    def has_room(self) -> bool:
        """Whether a new delivery may be held in memory (else it is stored as `stored`).

        While older deliveries wait in the database, new ones wait behind them, in order.
        """
        if not self._backlog and self._held < MEMORY_LIMIT:
            return True
        self._backlog = True
        return False

    def submit(self, delivery: Delivery) -> None:
        """Hands over a delivery whose row is committed with status `in_memory`."""
        self._held += 1
        self._queue.put_nowait(delivery)

    def wake(self) -> None:
        """Asks the poller to look at the database now (a replay or retry became due)."""
        self._poll_now.set()

    def stop(self) -> None:
        """Finishes the deliveries in hand; the rest stay stored and are taken at next start."""
        self._stopping = True
        self._poll_now.set()
        self._queue.put_nowait(None)

    async def recover(self) -> None:
        """Turns what a previous process had accepted but not finished into `stored` rows."""
        requeued = await self.services.store.call(deliveries.requeue_unfinished, single=True)
        if requeued:
            log.warning("picked up %d deliveries left unfinished by a previous run", requeued)

    async def run(self) -> None:
        """Handles deliveries until stopped; `recover()` must have run first."""
        # Claim the backlog before taking new work, so arrival order holds across a restart.
        # A store that cannot answer yet (a full disk) is waited for, not given up on.
        while True:
            try:
                await self._claim_due()
                break
            except StoreClosed:
                return
            except Exception:
                log.exception("could not read the delivery queue; trying again")
                await asyncio.sleep(IDLE_POLL / 5)
        poller = asyncio.create_task(self._poll(), name="worker-poller")
        self.alive = True
        try:
            while not self._stopping:
                delivery = await self._queue.get()
                if delivery is None or self._stopping:
                    break
                await self._start(delivery)
        finally:
            self.alive = False
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            # Each lane finishes the delivery in hand; cancelling `run` cancels them too.
            await asyncio.gather(*self._lane_tasks, return_exceptions=True)
            await self.settled()

    async def _start(self, delivery: Delivery) -> None:
        data = delivery.data
        if data is None:
            # Parsed once here and carried along, so the dispatcher does not parse it again.
            with contextlib.suppress(ValueError, RecursionError):
                data = delivery.payload()
                delivery = dataclasses.replace(delivery, data=data)
        key = ordering_key(delivery, data)
        if (lane := self._lanes.get(key)) is not None:
            lane.append(delivery)  # runs after the ones before it, in arrival order
            return
        self._lanes[key] = deque([delivery])
        pool = _pool(delivery)
        if self._free[pool]:
            self._free[pool] -= 1
            self._spawn(key, pool)
        else:
            self._waiting[pool].append(key)  # never blocks the intake of other lanes

    def _spawn(self, key: str, pool: str) -> None:
        task = asyncio.create_task(self._run_lane(key, pool), name=f"lane {key}")
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_tasks.discard)

    async def _run_lane(self, key: str, pool: str) -> None:
        lane = self._lanes[key]
        try:
            while lane and not self._stopping:
                try:
                    await self.process(lane[0])
                except StoreClosed:
                    return
                except Exception:
                    log.exception(
                        "delivery %s could not be recorded; it is handled again at the next start",
                        lane[0].id,
                    )
                finally:
                    lane.popleft()
                    self._held -= 1
                if self._backlog and self._held < MEMORY_LIMIT // 2:
                    self._poll_now.set()
        finally:
            # What is left (on stop) stays `in_memory` on disk and is taken at the next start.
            self._held -= len(lane)
            del self._lanes[key]
            if self._waiting[pool] and not self._stopping:
                self._spawn(self._waiting[pool].popleft(), pool)  # the slot passes on
            else:
                self._free[pool] += 1

    async def settled(self) -> None:
        """Waits until every outcome recorded so far is committed (or has failed to be)."""
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)

    async def _claim_due(self) -> None:
        while (room := MEMORY_LIMIT - self._held) > 0:
            limit = min(BATCH, room)
            batch = await self.services.store.call(
                lambda conn, n=limit: deliveries.claim_due_deliveries(conn, time.time(), n)
            )
            for delivery in batch:
                self.submit(delivery)
            if len(batch) < limit:
                self._backlog = False  # nothing due waits in the database any more
                return
        self._backlog = True  # memory is full; claim the rest once it drains

    async def _poll(self) -> None:
        store = self.services.store
        while not self._stopping:
            self._poll_now.clear()
            try:
                await self._claim_due()
                next_at = await store.call(deliveries.next_due_at, single=True)
            except StoreClosed:
                return
            except Exception:
                log.exception("could not read the delivery queue")
                next_at = None
            wait = IDLE_POLL if next_at is None else max(0.01, next_at - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), timeout=min(wait, IDLE_POLL))

    async def process(self, delivery: Delivery) -> str:
        """Runs one delivery's handlers and starts recording the outcome; returns the new status.

        The outcome is committed in the background (see FINISH_WINDOW); `settled()` waits for it.
        """
        settings = self.services.settings
        try:
            result = await dispatch(
                self.services, self.router, delivery, skip=frozenset(delivery.done_callbacks)
            )
        except Exception:
            # Whatever one delivery holds, the worker outlives it: the delivery is failed with
            # the traceback, for `bot deliveries --failed`, and the next one is taken.
            log.exception("delivery %s could not be dispatched", delivery.id)
            result = DispatchResult(errors={"dispatch": traceback.format_exc()}, permanent=True)
        done = (*delivery.done_callbacks, *result.ran)
        attempts = delivery.attempts + 1
        if result.ok:
            status, error, next_at = "done", None, 0.0
        else:
            error = "\n".join(f"{name}:\n{tb}" for name, tb in result.errors.items())
            if result.permanent or attempts >= settings.max_attempts:
                status, next_at = "failed", 0.0
                log.error(
                    "delivery %s failed for good after %d attempt(s)",
                    delivery.id,
                    attempts,
                    extra={"event": delivery.event, "handlers": sorted(result.errors)},
                )
            else:
                status = "stored"
                next_at = time.time() + backoff_delay(attempts, settings.retry_base_seconds)
                log.warning(
                    "delivery %s will be retried",
                    delivery.id,
                    extra={"attempt": attempts, "retry_in_s": round(next_at - time.time(), 1)},
                )
        while len(self._finishing) >= FINISH_WINDOW:
            await asyncio.wait(self._finishing, return_when=asyncio.FIRST_COMPLETED)
        future = self.services.store.submit(
            lambda conn: deliveries.finish_delivery(
                conn,
                delivery.id,
                status=status,
                attempts=attempts,
                done_callbacks=done,
                error=error,
                next_attempt_at=next_at,
            ),
            single=True,
        )
        self._finishing.add(future)
        future.add_done_callback(lambda f: self._recorded(delivery, status, f))
        return status

    def _recorded(self, delivery: Delivery, status: str, future: asyncio.Future[None]) -> None:
        self._finishing.discard(future)
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or isinstance(error, StoreClosed):
            return  # the row stays `in_memory` and is handled again at the next start
        if error is not None:
            log.error(
                "could not record the outcome of delivery %s; it stays in_memory and is handled"
                " again at the next start",
                delivery.id,
                exc_info=(type(error), error, error.__traceback__),
            )
            return
        if status == "stored":
            self.wake()
        self.services.metrics.processed.labels(delivery.event, status).inc()
