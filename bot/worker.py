"""The background loop that turns stored deliveries into handler calls, in arrival order.

The web request only stores; this loop does the work, so a slow GitHub never slows GitHub's
webhook calls. A freshly accepted delivery is handed over in memory once its row is committed
(no database round trip on the hot path); deliveries waiting in the database (retries, replays,
and whatever a killed process had accepted) are claimed by a poller. A delivery whose handler
raised is retried with exponential backoff, then kept as `failed` with its traceback for
`bot deliveries --failed`, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback

from gidgethub.routing import Router

from bot import store as db
from bot.context import Services
from bot.dispatch import DispatchResult, dispatch
from bot.store import Delivery, StoreClosed

log = logging.getLogger("bot.worker")

BATCH = 32
#: Deliveries held in memory at most; past it they wait in the database, so a burst of
#: deliveries bounds the process's memory instead of growing it.
MEMORY_LIMIT = 256
#: Deliveries queued by another process (`bot replay`) are noticed within this many seconds.
IDLE_POLL = 5.0
#: Outcomes on their way to disk at most. The next delivery's handlers run while earlier
#: outcomes commit, so a backlog drains at handler speed rather than one fsync per delivery;
#: a crash in between leaves those rows `queued`, and they are handled again at the next start,
#: which handlers already allow for (they record what they did and skip it the second time).
FINISH_WINDOW = 64


class Worker:
    def __init__(self, services: Services, router: Router) -> None:
        self.services = services
        self.router = router
        self._queue: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._poll_now = asyncio.Event()
        self._stopping = False
        self._backlog = False
        self.alive = False
        self.in_flight: Delivery | None = None
        self._finishing: set[asyncio.Future[None]] = set()

    def has_room(self) -> bool:
        """Whether a new delivery may be held in memory (else it is stored as `pending`).

        While older deliveries wait in the database, new ones wait behind them, in order.
        """
        if not self._backlog and self._queue.qsize() < MEMORY_LIMIT:
            return True
        self._backlog = True
        return False

    def submit(self, delivery: Delivery) -> None:
        """Hands over a delivery whose row is committed with status `queued`."""
        self._queue.put_nowait(delivery)

    def wake(self) -> None:
        """Asks the poller to look at the database now (a replay or retry became due)."""
        self._poll_now.set()

    def stop(self) -> None:
        """Finishes the delivery in hand; the rest stay stored and are taken at the next start."""
        self._stopping = True
        self._poll_now.set()
        self._queue.put_nowait(None)

    async def recover(self) -> None:
        """Turns what a previous process had accepted but not finished into `pending` rows."""
        requeued = await self.services.store.call(db.requeue_unfinished, single=True)
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
                self.in_flight = delivery
                try:
                    await self.process(delivery)
                finally:
                    self.in_flight = None
                if self._backlog and self._queue.qsize() < MEMORY_LIMIT // 2:
                    self._poll_now.set()
        except StoreClosed:
            pass
        finally:
            self.alive = False
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await self.settled()

    async def settled(self) -> None:
        """Waits until every outcome recorded so far is committed (or has failed to be)."""
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)

    async def _claim_due(self) -> None:
        while (room := MEMORY_LIMIT - self._queue.qsize()) > 0:
            limit = min(BATCH, room)
            batch = await self.services.store.call(
                lambda conn, n=limit: db.claim_due_deliveries(conn, time.time(), n)
            )
            for delivery in batch:
                self._queue.put_nowait(delivery)
            if len(batch) < limit:
                self._backlog = False  # nothing due waits in the database any more
                return
        self._backlog = True  # the memory queue is full; claim the rest once it drains

    async def _poll(self) -> None:
        store = self.services.store
        while not self._stopping:
            self._poll_now.clear()
            try:
                await self._claim_due()
                next_at = await store.call(db.next_due_at, single=True)
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
                status = "pending"
                delay = settings.retry_base_seconds * 2 ** (attempts - 1)
                next_at = time.time() + delay * (1 + random.random() / 4)  # noqa: S311
                log.warning(
                    "delivery %s will be retried",
                    delivery.id,
                    extra={"attempt": attempts, "retry_in_s": round(next_at - time.time(), 1)},
                )
        while len(self._finishing) >= FINISH_WINDOW:
            await asyncio.wait(self._finishing, return_when=asyncio.FIRST_COMPLETED)
        future = self.services.store.submit(
            lambda conn: db.finish_delivery(
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
            return  # the row stays `queued` and is handled again at the next start
        if error is not None:
            log.error(
                "could not record the outcome of delivery %s; it stays queued and is handled"
                " again at the next start",
                delivery.id,
                exc_info=(type(error), error, error.__traceback__),
            )
            return
        if status == "pending":
            self.wake()
        self.services.metrics.inc(
            "bot_deliveries_processed_total", event=delivery.event, outcome=status
        )
