"""Side effects that must happen exactly once even when their target is down: the outbox.

A handler queues a message under an idempotency key in the same database as the delivery; this
loop delivers it, retrying with backoff (and Slack's own `Retry-After`) until it gets through.
The key is unique forever, so a redelivered webhook or a restart never sends a second alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from bot.clients.backoff import backoff_delay
from bot.clients.slack import SlackDeliveryError, SlackSender
from bot.metrics import Metrics
from bot.store import outbox
from bot.store.engine import Store, StoreClosed

log = logging.getLogger("bot.server.outbox")

MAX_DELAY = 3600.0


class Outbox:
    def __init__(
        self,
        store: Store,
        slack: SlackSender,
        metrics: Metrics,
        *,
        base_delay: float = 2.0,
        dry_run: bool = False,
    ) -> None:
        self.store = store
        self.slack = slack
        self.metrics = metrics
        self.base_delay = base_delay
        self.dry_run = dry_run
        self.dry_run_messages: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._stopping = False

    async def queue_slack(
        self,
        key: str,
        message: Mapping[str, Any],
        *,
        delivery_id: str | None = None,
        thread_of: str | None = None,
    ) -> bool:
        """Queues a Slack message once per key; False when that key was queued before.

        With `thread_of` (the key of another message) it is sent after that one was delivered,
        as a reply in its thread where Slack told the sender the message's `ts` (the Web API;
        an incoming webhook learns none, and the reply is sent on its own)."""
        if self.dry_run:
            shown = {"key": key, **message, **({"thread_of": thread_of} if thread_of else {})}
            self.dry_run_messages.append(shown)
            log.info("dry run: not queueing Slack message %s", key, extra={"slack": dict(message)})
            return True
        new = await self.store.call(
            lambda conn: outbox.enqueue_outbox(
                conn,
                key=key,
                kind="slack",
                payload=message,
                delivery_id=delivery_id,
                thread_of=thread_of,
            )
        )
        if new:
            self._wake.set()
        else:
            log.info("Slack message %s was queued before; not queueing again", key)
        return new

    def delay(self, attempts: int, retry_after: float | None) -> float:
        return max(backoff_delay(attempts, self.base_delay, cap=MAX_DELAY), retry_after or 0.0)

    async def send_due(self) -> int:
        """Attempts every due item once; returns how many were delivered."""
        items = await self.store.call(lambda conn: outbox.due_outbox(conn, time.time()))
        delivered = 0
        for item in items:
            if self._stopping:
                break
            try:
                if item.kind != "slack":
                    raise SlackDeliveryError(f"unknown outbox kind {item.kind!r}", permanent=True)
                try:
                    sent_ts = await self.slack.send(_in_thread(item))
                except SlackDeliveryError:
                    raise
                except Exception as exc:  # an unexpected failure must not lose the message
                    log.exception("sending outbox item %s raised", item.key)
                    raise SlackDeliveryError(f"{type(exc).__name__}: {exc}") from exc
            except SlackDeliveryError as exc:
                status = "failed" if exc.permanent else "pending"
                wait = self.delay(item.attempts + 1, exc.retry_after)
                await self.store.call(
                    lambda conn, i=item, s=status, e=str(exc), w=wait: outbox.mark_outbox(
                        conn, i.id, status=s, error=e, next_attempt_at=time.time() + w
                    )
                )
                self.metrics.outbox_sends.labels(item.kind, status).inc()
                log.warning(
                    "outbox item %s not delivered: %s",
                    item.key,
                    exc,
                    extra={"retry_in_s": None if exc.permanent else round(wait, 1)},
                )
                continue
            await self.store.call(
                lambda conn, i=item, ts=sent_ts: outbox.mark_outbox(
                    conn, i.id, status="delivered", sent_ts=ts if isinstance(ts, str) else None
                )
            )
            self.metrics.outbox_sends.labels(item.kind, "delivered").inc()
            log.info("outbox item %s delivered via %s", item.key, self.slack.name)
            delivered += 1
        return delivered

    async def run(self) -> None:
        while not self._stopping:
            # Cleared before the work, so a wake-up (or stop) during the work is not lost.
            self._wake.clear()
            try:
                await self.send_due()
                next_at = await self.store.call(outbox.next_outbox_due_at)
            except StoreClosed:
                return
            except Exception:
                log.exception("outbox loop error")
                next_at = time.time() + self.base_delay
            timeout = 60.0 if next_at is None else max(0.05, next_at - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 60.0))

    def wake(self) -> None:
        """Sends what is due now (an operator asked for a retry) instead of at the next tick."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()


def _in_thread(item: outbox.OutboxItem) -> dict[str, Any]:
    """The message to send: a thread's reply goes to its first message's channel, under it."""
    message = dict(item.payload)
    if item.thread_of is not None and item.thread_ts:
        message["thread_ts"] = item.thread_ts
        if item.thread_channel:
            message["channel"] = item.thread_channel
    return message
