"""The web server: accepts GitHub webhooks, reports health and metrics, serves help.

The webhook path only verifies, parses and stores; it never calls GitHub, Slack, git or pytest,
so GitHub's delivery timeout is never at risk and a burst of deliveries costs little.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse

from aiohttp import web
from gidgethub import ValidationFailure
from gidgethub.sansio import validate_event

from bot import store as db
from bot.config import ConfigError, Settings
from bot.help import render_markdown
from bot.runtime import Runtime
from bot.store import Delivery

log = logging.getLogger("bot.app")

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
_KEPT_HEADERS = (
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-ID",
    "X-GitHub-Hook-Installation-Target-Type",
    "User-Agent",
)

RUNTIME = web.AppKey("runtime", Runtime)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def webhook(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    metrics = runtime.metrics
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.inc("bot_deliveries_total", event="unknown", outcome="too_large")
        return _error(413, f"payload larger than {MAX_BODY} bytes")
    headers = request.headers
    event = headers.get("X-GitHub-Event", "")
    signature = headers.get("X-Hub-Signature-256")
    if not signature:
        metrics.inc("bot_deliveries_total", event=event or "unknown", outcome="unsigned")
        return _error(401, "missing X-Hub-Signature-256 header")
    try:
        validate_event(body, signature=signature, secret=runtime.settings.webhook_secret or "")
    except ValidationFailure:
        metrics.inc("bot_deliveries_total", event=event or "unknown", outcome="bad_signature")
        return _error(401, "signature does not match the payload")
    delivery_id = headers.get("X-GitHub-Delivery", "")
    if not event or not delivery_id:
        metrics.inc("bot_deliveries_total", event=event or "unknown", outcome="bad_headers")
        return _error(400, "missing X-GitHub-Event or X-GitHub-Delivery header")
    if len(delivery_id) > 100 or not delivery_id.isprintable():
        metrics.inc("bot_deliveries_total", event=event, outcome="bad_headers")
        return _error(400, "X-GitHub-Delivery is not a delivery id")
    if request.content_type == "application/x-www-form-urlencoded":
        # GitHub's other content type: the JSON sits in the `payload` form field.
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        body = form.get("payload", [""])[0].encode()
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        metrics.inc("bot_deliveries_total", event=event, outcome="bad_json")
        return _error(400, "payload is not JSON")
    if not isinstance(data, dict):
        metrics.inc("bot_deliveries_total", event=event, outcome="bad_json")
        return _error(400, "payload is not a JSON object")
    action = data.get("action")
    repository = data.get("repository")
    installation = data.get("installation")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    delivery = Delivery(
        id=delivery_id,
        event=event,
        headers={k: headers[k] for k in _KEPT_HEADERS if k in headers},
        body=body,
        action=action if isinstance(action, str) else None,
        repo=repository.get("full_name") if isinstance(repository, dict) else None,
        installation_id=installation_id if isinstance(installation_id, int) else None,
        received_at=time.time(),
        # Held in memory for the worker unless it is behind; then it waits in the database.
        status="queued" if runtime.worker.has_room() else "pending",
        data=data,
    )
    if not await runtime.store.ingest(delivery):
        metrics.inc("bot_deliveries_total", event=event, outcome="duplicate")
        return web.json_response({"status": "duplicate", "delivery": delivery_id}, status=200)
    metrics.inc("bot_deliveries_total", event=event, outcome="accepted")
    if delivery.status == "queued":
        runtime.worker.submit(delivery)
    else:
        runtime.worker.wake()
    return web.json_response({"status": "accepted", "delivery": delivery_id}, status=202)


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    problems: list[str] = []
    depth = 0
    try:
        depth = await runtime.store.call(db.queue_depth, single=True)
    except Exception as exc:
        problems.append(f"store: {type(exc).__name__}: {exc}")
    worker_alive = runtime.tasks_alive() and runtime.worker.alive
    if not worker_alive:
        problems.append("worker is not running")
    body = {
        "status": "ok" if not problems else "unhealthy",
        "worker_alive": worker_alive,
        "queue_depth": depth,
        "problems": problems,
    }
    return web.json_response(body, status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]

    def read(conn: object) -> dict[str, dict[str, int]]:
        return {t: db.count_by_status(conn, t) for t in ("deliveries", "jobs", "outbox")}  # type: ignore[arg-type]

    counts = await runtime.store.call(read)
    depth = counts["deliveries"].get("queued", 0) + counts["deliveries"].get("pending", 0)
    gauges = {
        "bot_queue_depth": ("Deliveries waiting or being processed.", {(): float(depth)}),
        "bot_deliveries_stored": (
            "Stored deliveries, by status.",
            {(("status", s),): float(n) for s, n in counts["deliveries"].items()},
        ),
        "bot_jobs": (
            "Jobs, by status.",
            {(("status", s),): float(n) for s, n in counts["jobs"].items()},
        ),
        "bot_store_commits": (
            "Transactions committed since start; many deliveries share one under load.",
            {(): float(runtime.store.commits)},
        ),
        "bot_outbox_items": (
            "Outbox items, by status.",
            {(("status", s),): float(n) for s, n in counts["outbox"].items()},
        ),
    }
    return web.Response(
        text=runtime.metrics.render(gauges), content_type="text/plain", charset="utf-8"
    )


async def help_page(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    helps = runtime.services.help
    if request.query.get("format") == "markdown":
        return web.Response(text=render_markdown(helps, runtime.settings.handle))
    return web.json_response(
        {"handle": runtime.settings.handle, "features": [h.as_dict() for h in helps]}
    )


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> web.Application:
    """The aiohttp application; refuses to exist without a webhook secret."""
    if not settings.webhook_secret:
        raise ConfigError(
            "GITHUB_WEBHOOK_SECRET is not set: the server would accept unsigned deliveries"
        )
    runtime = runtime or Runtime(settings)
    app = web.Application(client_max_size=MAX_BODY)
    app[RUNTIME] = runtime
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/help", help_page)

    async def start(_: web.Application) -> None:
        await runtime.start()
        log.info(
            "bot ready",
            extra={
                "github": runtime.services.github.mode,
                "slack": runtime.services.outbox.slack.name,
            },
        )

    async def stop(_: web.Application) -> None:
        await runtime.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
