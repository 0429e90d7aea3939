"""The outbox against a scripted Slack: failures are retried, never lost, never doubled."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.clients.slack import SlackLog, SlackWebAPI, SlackWebhook
from bot.metrics import Metrics
from bot.server.outbox import Outbox
from bot.store import outbox as outbox_db
from bot.store.engine import Store


class ScriptedSlack:
    def __init__(self) -> None:
        self.script: list[tuple[int, dict, object]] = []
        self.received: list[dict] = []

    async def api(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        if self.script:
            status, headers, body = self.script.pop(0)
            if isinstance(body, str):
                return web.Response(status=status, headers=headers, text=body)
            return web.json_response(body, status=status, headers=headers)
        return web.json_response({"ok": True, "ts": "1.0"})


@pytest.fixture
async def slack(aiohttp_server):
    scripted = ScriptedSlack()
    app = web.Application()
    app.router.add_post("/api/chat.postMessage", scripted.api)
    app.router.add_post("/hook", scripted.api)
    server = await aiohttp_server(app)
    scripted.url = str(server.make_url("")).rstrip("/")
    return scripted


@pytest.fixture
async def store(tmp_path):
    opened = Store(str(tmp_path / "bot.sqlite3"))
    yield opened
    opened.close()


MESSAGE = {"channel": "c", "text": "New model: mamba", "blocks": []}


async def _run_until_delivered(outbox: Outbox, store: Store, timeout: float = 10.0) -> None:
    task = asyncio.create_task(outbox.run())
    try:
        async with asyncio.timeout(timeout):
            while await store.call(lambda c: outbox_db.list_outbox(c, status="pending")):
                await asyncio.sleep(0.02)
    finally:
        outbox.stop()
        await task


async def test_500_then_429_then_ok_delivers_once(slack, store):
    slack.script = [
        (500, {}, "oops"),
        (429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}),
    ]
    client = AsyncWebClient(token="xoxb-1", base_url=slack.url + "/api/")
    outbox = Outbox(store, SlackWebAPI(client), Metrics(), base_delay=0.01)
    assert await outbox.queue_slack("new-model:o/r:mamba", MESSAGE)
    start = time.monotonic()
    await _run_until_delivered(outbox, store)
    assert time.monotonic() - start >= 1.0  # Slack's Retry-After was honoured
    assert len(slack.received) == 3
    (item,) = await store.call(lambda c: outbox_db.list_outbox(c))
    assert (item.status, item.attempts) == ("delivered", 3)


async def test_the_same_key_is_queued_once_ever(slack, store):
    client = AsyncWebClient(token="xoxb-1", base_url=slack.url + "/api/")
    outbox = Outbox(store, SlackWebAPI(client), Metrics(), base_delay=0.01)
    assert await outbox.queue_slack("k", MESSAGE)
    await _run_until_delivered(outbox, store)
    assert not await outbox.queue_slack("k", MESSAGE)  # after delivery too
    await outbox.send_due()
    assert len(slack.received) == 1


async def test_a_permanent_error_is_kept_as_failed(slack, store):
    slack.script = [(200, {}, {"ok": False, "error": "channel_not_found"})]
    client = AsyncWebClient(token="xoxb-1", base_url=slack.url + "/api/")
    outbox = Outbox(store, SlackWebAPI(client), Metrics(), base_delay=0.01)
    await outbox.queue_slack("k", MESSAGE)
    await outbox.send_due()
    (item,) = await store.call(lambda c: outbox_db.list_outbox(c))
    assert item.status == "failed"
    assert "channel_not_found" in item.last_error
    assert await store.call(lambda c: outbox_db.retry_outbox(c, item.id))
    await outbox.send_due()
    (item,) = await store.call(lambda c: outbox_db.list_outbox(c))
    assert item.status == "delivered"


async def test_webhook_sender_and_its_failures(slack, store):
    slack.script = [(503, {"Retry-After": "0"}, "service unavailable")]
    sender = SlackWebhook(AsyncWebhookClient(slack.url + "/hook"))
    outbox = Outbox(store, sender, Metrics(), base_delay=0.01)
    await outbox.queue_slack("k", MESSAGE)
    await _run_until_delivered(outbox, store)
    assert [r["text"] for r in slack.received] == ["New model: mamba"] * 2
    assert "channel" not in slack.received[-1]  # a webhook posts to its own channel


async def test_unreachable_slack_is_retried_not_lost(store):
    client = AsyncWebClient(token="xoxb-1", base_url="http://127.0.0.1:9/api/")
    outbox = Outbox(store, SlackWebAPI(client), Metrics(), base_delay=0.01)
    await outbox.queue_slack("k", MESSAGE)
    await outbox.send_due()
    (item,) = await store.call(lambda c: outbox_db.list_outbox(c))
    assert (item.status, item.attempts) == ("pending", 1)
    assert "unreachable" in item.last_error


async def test_no_slack_configured_logs_the_message(store, caplog):
    outbox = Outbox(store, SlackLog(), Metrics())
    await outbox.queue_slack("k", MESSAGE)
    with caplog.at_level("INFO"):
        assert await outbox.send_due() == 1
    assert "New model: mamba" in caplog.text
