"""The web server: accepts GitHub webhooks, reports health and metrics, serves the pages.

The webhook path only verifies, parses and stores; it never calls GitHub, Slack, git or pytest,
so GitHub's delivery timeout is never at risk and a burst of deliveries costs little.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.parse

from aiohttp import web
from gidgethub import ValidationFailure
from gidgethub.sansio import validate_event

from bot.config import ConfigError, Settings
from bot.metrics import CONTENT_TYPE, Metrics
from bot.server.runtime import RUNTIME, Runtime
from bot.server.serving import guard_app
from bot.store import deliveries as deliveries_db
from bot.store import engine as engine_db
from bot.store.deliveries import Delivery
from bot.web import routes
from bot.web.render import SECURITY_HEADERS

log = logging.getLogger("bot.server.app")

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
_KEPT_HEADERS = (
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-ID",
    "X-GitHub-Hook-Installation-Target-Type",
    "User-Agent",
)


#: GitHub's event names; anything else in the header is not from GitHub, and never a label.
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")
_SQLITE_INT = range(-(2**63), 2**63)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


class BodyBudget:
    """Bytes of request bodies being read at once, across all connections.

    Each body is read into memory before its signature can be checked; without a bound, a few
    clients sending large bodies at once grow the process without limit. Past the bound a
    request is answered 503 (GitHub retries a failed delivery when asked to redeliver it, and a
    burst of ordinary 10-40 KB deliveries never comes near it).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


BODY_BUDGET = web.AppKey("body_budget", BodyBudget)


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


async def _read_body(request: web.Request, budget: BodyBudget, deadline: float) -> bytes:
    """The body, within the size cap, the shared budget and the body deadline."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise _Refused(_error(413, f"payload larger than {MAX_BODY} bytes"))
    chunks: list[bytes] = []
    held = 0
    try:
        async with asyncio.timeout(deadline):
            # A declared length is reserved up front; a chunked or compressed body as it comes.
            if declared and not budget.take(declared):
                raise _Refused(_error(503, "too many request bodies in flight", **_RETRY))
            held = declared or 0
            size = 0
            while chunk := await request.content.read(256 * 1024):
                size += len(chunk)
                if size > MAX_BODY:
                    raise _Refused(_error(413, f"payload larger than {MAX_BODY} bytes"))
                if size > held:
                    if not budget.take(size - held):
                        raise _Refused(_error(503, "too many request bodies in flight", **_RETRY))
                    held = size
                chunks.append(chunk)
    except TimeoutError:
        raise _Refused(_error(408, f"body not received within {deadline:g} s")) from None
    finally:
        budget.give(held)
    return b"".join(chunks)


_RETRY = {"Retry-After": "1"}


def _count(metrics: Metrics, outcome: str, event: str = "unverified") -> None:
    metrics.deliveries.labels(event, outcome).inc()


def _text(value: object, limit: int) -> str | None:
    """A payload string fit for a column: SQLite stores UTF-8, which a lone surrogate is not."""
    if not isinstance(value, str) or len(value) > limit:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


async def webhook(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    metrics = runtime.metrics
    headers = request.headers
    # Everything that can be judged from the head is judged before the body is read.
    signature = headers.get("X-Hub-Signature-256")
    if not signature:
        _count(metrics, "unsigned")
        return _error(401, "missing X-Hub-Signature-256 header")
    if not _SIGNATURE.fullmatch(signature):
        _count(metrics, "bad_signature")
        return _error(401, "X-Hub-Signature-256 is not sha256=<64 hex digits>")
    event = headers.get("X-GitHub-Event", "")
    delivery_id = headers.get("X-GitHub-Delivery", "")
    if not event or not delivery_id:
        _count(metrics, "bad_headers")
        return _error(400, "missing X-GitHub-Event or X-GitHub-Delivery header")
    if not _EVENT_NAME.fullmatch(event):
        _count(metrics, "bad_headers")
        return _error(400, "X-GitHub-Event is not an event name")
    if len(delivery_id) > 100 or not (delivery_id.isascii() and delivery_id.isprintable()):
        _count(metrics, "bad_headers")
        return _error(400, "X-GitHub-Delivery is not a delivery id")
    try:
        body = await _read_body(
            request, request.app[BODY_BUDGET], runtime.settings.body_timeout_seconds
        )
    except _Refused as refused:
        _count(metrics, f"refused_{refused.response.status}")
        return refused.response
    try:
        validate_event(body, signature=signature, secret=runtime.settings.webhook_secret or "")
    except ValidationFailure:
        _count(metrics, "bad_signature")
        return _error(401, "signature does not match the payload")
    # Signed by GitHub from here on: the event name may be a label.
    if request.content_type == "application/x-www-form-urlencoded":
        # GitHub's other content type: the JSON sits in the `payload` form field.
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        body = form.get("payload", [""])[0].encode()
    try:
        data = json.loads(body)
    except RecursionError:
        _count(metrics, "bad_json", event)
        return _error(400, "payload is nested too deeply")
    except (ValueError, UnicodeDecodeError):
        _count(metrics, "bad_json", event)
        return _error(400, "payload is not JSON")
    if not isinstance(data, dict):
        _count(metrics, "bad_json", event)
        return _error(400, "payload is not a JSON object")
    installation = data.get("installation")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    if not isinstance(installation_id, int) or isinstance(installation_id, bool):
        installation_id = None
    elif installation_id not in _SQLITE_INT:
        _count(metrics, "bad_json", event)
        return _error(400, "installation.id is not a GitHub id")
    repository = data.get("repository")
    delivery = Delivery(
        id=delivery_id,
        event=event,
        headers={k: headers[k] for k in _KEPT_HEADERS if k in headers},
        body=body,
        # The row keeps what it can; a payload whose shape handlers cannot read is failed by
        # the worker with its reason, visible in `bot deliveries --failed`.
        action=_text(data.get("action"), 100),
        repo=_text(repository.get("full_name"), 300) if isinstance(repository, dict) else None,
        installation_id=installation_id,
        number=deliveries_db.delivery_number(data),
        received_at=time.time(),
        # Held in memory for the worker unless it is behind; then it waits in the database.
        status="in_memory" if runtime.worker.has_room() else "stored",
        data=data,
    )
    try:
        new = await runtime.store.ingest(delivery)
    except Exception:
        log.exception("could not store delivery %s", delivery_id)
        _count(metrics, "store_error", event)
        return _error(500, "the delivery could not be stored; ask GitHub to redeliver it")
    if not new:
        _count(metrics, "duplicate", event)
        return web.json_response({"status": "duplicate", "delivery": delivery_id}, status=200)
    _count(metrics, "accepted", event)
    if delivery.status == "in_memory":
        runtime.worker.submit(delivery)
    else:
        runtime.worker.wake()
    return web.json_response({"status": "accepted", "delivery": delivery_id}, status=202)


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    problems: list[str] = []
    depth = 0
    store = runtime.store
    try:
        if store.write_error is not None:
            # The last write failed: try one, so a disk that has room again is seen at once.
            await store.call(engine_db.heartbeat, single=True)
        depth = await store.call(deliveries_db.queue_depth, single=True)
    except Exception as exc:
        problems.append(f"store: {type(exc).__name__}: {exc}")
    else:
        if store.write_error is not None:
            problems.append(f"store cannot commit: {store.write_error}")
    worker_alive = runtime.tasks_alive() and runtime.worker.alive
    if not worker_alive:
        problems.append("worker is not running")
    body = {
        "status": "ok" if not problems else "unhealthy",
        "worker_alive": worker_alive,
        "queue_depth": depth,
        "store_writable": store.write_error is None,
        "problems": problems,
    }
    return web.json_response(body, status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]

    def read(conn: object) -> dict[str, dict[str, int]]:
        return {t: engine_db.count_by_status(conn, t) for t in ("deliveries", "jobs", "outbox")}  # type: ignore[arg-type]

    counts = await runtime.store.call(read)
    depth = counts["deliveries"].get("in_memory", 0) + counts["deliveries"].get("stored", 0)
    runtime.metrics.set_store_figures(counts, depth=depth, commits=runtime.store.commits)
    return web.Response(body=runtime.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The pages' policy on every answer: aiohttp's own 404 and 405, the webhook's refusals,
    the JSON and plain-text ones too, so no answer of this server is a page a browser would
    run a script in or load anything into. A handler's own value stays."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> web.Application:
    """The aiohttp application; refuses to exist without a webhook secret."""
    if not settings.webhook_secret:
        raise ConfigError(
            "GITHUB_WEBHOOK_SECRET is not set: the server would accept unsigned deliveries"
        )
    runtime = runtime or Runtime(settings)
    app = web.Application(client_max_size=MAX_BODY)
    app.on_response_prepare.append(_security_headers)
    app[RUNTIME] = runtime
    app[BODY_BUDGET] = BodyBudget(settings.body_bytes_in_flight)
    guard_app(
        app,
        max_connections=settings.max_connections,
        header_timeout=settings.header_timeout_seconds,
    )
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    routes.add_routes(app, runtime)

    async def start(_: web.Application) -> None:
        await runtime.start()
        log.info(
            "bot ready",
            extra={
                "github": runtime.services.github.mode,
                "slack": runtime.outbox.slack.name,
            },
        )

    async def stop(_: web.Application) -> None:
        await runtime.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
