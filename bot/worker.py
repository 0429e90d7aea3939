"""The background loop that turns stored deliveries into handler calls, in arrival order.

The web request only stores; this loop does the work, so a slow GitHub never slows GitHub's
webhook calls. A delivery whose handler raised is retried with exponential backoff, then kept as
`failed` with its traceback for `bot deliveries --failed`, never dropped. Deliveries that a
killed process had started are picked up again when the next process starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from gidgethub.routing import Router

from bot import store as db
from bot.context import Services
from bot.dispatch import dispatch
from bot.store import Delivery, StoreClosed

log = logging.getLogger("bot.worker")

BATCH = 32
#: Deliveries queued by another process (`bot replay`) are noticed within this many seconds.
IDLE_POLL = 5.0


class Worker:
    def __init__(self, services: Services, router: Router) -> None:
        self.services = services
        self.router = router
        self._wake = asyncio.Event()
        self._stopping = False
        self.alive = False
        self.last_beat = 0.0
        self.in_flight: Delivery | None = None

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finishes the delivery in hand, leaves the rest queued for the next start."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        store = self.services.store
        requeued = await store.call(db.requeue_unfinished)
        if requeued:
            log.warning("picked up %d deliveries left unfinished by a previous run", requeued)
        self.alive = True
        try:
            while not self._stopping:
                self.last_beat = time.time()
                self._wake.clear()
                batch = await store.call(
                    lambda conn: db.claim_due_deliveries(conn, time.time(), BATCH)
                )
                for position, delivery in enumerate(batch):
                    if self._stopping:
                        await self._requeue(batch[position:])
                        break
                    self.in_flight = delivery
                    try:
                        await self.process(delivery)
                    finally:
                        self.in_flight = None
                if batch:
                    continue
                next_at = await store.call(db.next_due_at)
                timeout = IDLE_POLL if next_at is None else max(0.01, next_at - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, IDLE_POLL))
        except StoreClosed:
            pass
        finally:
            self.alive = False

    async def _requeue(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            await self.services.store.call(
                lambda conn, d=delivery: db.finish_delivery(
                    conn,
                    d.seq,
                    status="pending",
                    attempts=d.attempts,
                    done_callbacks=d.done_callbacks,
                    error=d.error,
                )
            )

    async def process(self, delivery: Delivery) -> str:
        """Runs one delivery's handlers and records the outcome; returns the new status."""
        settings = self.services.settings
        result = await dispatch(
            self.services, self.router, delivery, skip=frozenset(delivery.done_callbacks)
        )
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
        await self.services.store.call(
            lambda conn: db.finish_delivery(
                conn,
                delivery.seq,
                status=status,
                attempts=attempts,
                done_callbacks=done,
                error=error,
                next_attempt_at=next_at,
            )
        )
        self.services.metrics.inc(
            "bot_deliveries_processed_total", event=delivery.event, outcome=status
        )
        return status
