"""Runs every handler that the combined router names for an event, each on its own.

gidgethub's own `Router.dispatch` stops at the first exception; a failing feature must never
stop another, so each callback runs separately with its own error handling, log line and metric.
A retried delivery re-runs only the callbacks that failed before.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import CredentialsMissing
from bot.config import ConfigError
from bot.kit.context import Context, Services
from bot.logs import delivery_id_var
from bot.server.intake import shape_problem
from bot.server.scheduler import pushes_config
from bot.store.deliveries import Delivery

log = logging.getLogger("bot.server.dispatch")

#: Errors a retry cannot fix: a person must change configuration first, or the handler cannot
#: read the payload's shape (indexing a field that is missing or of another type), which a
#: retry of the same body cannot change either.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    CredentialsMissing,
    LookupError,
    TypeError,
    AttributeError,
)


def callback_name(callback: Callable[..., Any]) -> str:
    return f"{callback.__module__}.{callback.__qualname__}"


@dataclass
class DispatchResult:
    ran: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


def event_of(delivery: Delivery) -> Event:
    return Event(delivery.payload(), event=delivery.event, delivery_id=delivery.id)


async def dispatch(
    services: Services, router: Router, delivery: Delivery, *, skip: frozenset[str] = frozenset()
) -> DispatchResult:
    result = DispatchResult()
    token = delivery_id_var.set(delivery.id)
    try:
        event = event_of(delivery)
        if problem := shape_problem(delivery.event, event.data):
            result.errors["payload"] = f"the payload cannot be handled: {problem}\n"
            result.permanent = True
            log.warning("delivery %s: %s", delivery.id, problem, extra={"event": delivery.event})
            return result
        _refresh_config_on_push(services, event)
        limit = services.settings.handler_timeout_seconds
        callbacks = sorted(router.fetch(event), key=callback_name)
        if not callbacks:
            log.debug("no handler for %s.%s", delivery.event, delivery.action)
        for callback in callbacks:
            name = callback_name(callback)
            if name in skip:
                continue
            start = time.perf_counter()
            outcome = "ok"
            try:
                gh = await services.github.for_installation(delivery.installation_id)
                ctx = Context(services, event, gh, logging.getLogger(callback.__module__))
                async with asyncio.timeout(limit):
                    await callback(event, gh, ctx=ctx)
                result.ran.append(name)
            except TimeoutError as exc:
                # Cancelled at its limit: an error like any other, retried with backoff.
                outcome = "error"
                exc.add_note(f"{name} did not finish within {limit:g} s and was cancelled")
                result.errors[name] = traceback.format_exc()
                log.exception("handler %s timed out", name)
            except Exception as exc:
                outcome = "error"
                result.errors[name] = traceback.format_exc()
                result.permanent |= isinstance(exc, PERMANENT_ERRORS)
                log.exception("handler %s failed", name)
            elapsed = time.perf_counter() - start
            services.metrics.handler_runs.labels(name, outcome).inc()
            services.metrics.handler_seconds.labels(name).observe(elapsed)
            log.info(
                "handler %s: %s",
                name,
                outcome,
                extra={"event": delivery.event, "ms": round(elapsed * 1000, 1)},
            )
    finally:
        delivery_id_var.reset(token)
    return result


def _refresh_config_on_push(services: Services, event: Event) -> None:
    """A push to a default branch may change `bot.toml`: the cached config goes, and the
    scheduler reads that repository's schedules again where the push touched the file."""
    if event.event != "push":
        return
    repository = event.data.get("repository") or {}
    default = repository.get("default_branch") or repository.get("master_branch")
    if not default or event.data.get("ref") != f"refs/heads/{default}":
        return
    full_name = repository.get("full_name", "")
    services.configs.invalidate(full_name)
    if services.schedules is None or not full_name or event.data.get("deleted"):
        return
    installation = event.data.get("installation")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    services.schedules.default_branch_pushed(
        full_name,
        installation_id if isinstance(installation_id, int) else None,
        default,
        config_changed=pushes_config(event.data),
    )
