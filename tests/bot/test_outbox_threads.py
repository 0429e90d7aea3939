"""Threaded Slack replies through the outbox, against the sandbox Slack and the real slack_sdk
clients: a reply waits for its thread's first message, is sent under it (Slack's `ts`, kept in
the store across a restart), waits out that message's failure, and goes unthreaded where the
sender learns no `ts` (an incoming webhook)."""

from __future__ import annotations

import logging

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.clients.slack import SlackWebAPI, SlackWebhook
from bot.metrics import Metrics
from bot.server.outbox import Outbox
from bot.store import outbox as outbox_db
from bot.store.engine import Store
from tests.sandbox.slack_server import SandboxSlack

SUMMARY = {"channel": "ci-daily", "text": "Nightly: 3 failures out of 120 tests"}
BERT = {"channel": "ci-daily", "text": "bert: 2 failures"}
GPT2 = {"channel": "ci-daily", "text": "gpt2: 1 failure"}


@pytest.fixture
async def slack():
    sandbox = SandboxSlack()
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "bot.sqlite3")


def web_api(slack: SandboxSlack) -> SlackWebAPI:
    return SlackWebAPI(AsyncWebClient(token=slack.token, base_url=slack.api_url))


async def drain(outbox: Outbox, rounds: int = 5) -> None:
    for _ in range(rounds):
        await outbox.send_due()


async def items(store: Store) -> dict[str, outbox_db.OutboxItem]:
    return {i.key: i for i in await store.call(lambda c: outbox_db.list_outbox(c))}


async def test_a_reply_is_sent_after_its_thread_and_under_it(slack, path):
    store = Store(path)
    outbox = Outbox(store, web_api(slack), Metrics(), base_delay=0.01)
    # Queued before the message it replies to: it must still come second.
    assert await outbox.queue_slack("nightly:bert", BERT, thread_of="nightly:summary")
    assert await outbox.queue_slack("nightly:summary", SUMMARY)
    assert await outbox.queue_slack("nightly:gpt2", GPT2, thread_of="nightly:summary")
    await drain(outbox)
    summary, *replies = slack.messages
    assert summary["text"] == SUMMARY["text"] and summary["thread_ts"] is None
    assert sorted(r["text"] for r in replies) == ["bert: 2 failures", "gpt2: 1 failure"]
    assert {r["thread_ts"] for r in replies} == {summary["ts"]}
    assert {r["channel"] for r in replies} == {"ci-daily"}
    kept = await items(store)
    assert kept["nightly:summary"].sent_ts == summary["ts"]
    assert kept["nightly:bert"].thread_of == "nightly:summary"
    assert all(item.status == "delivered" for item in kept.values())
    store.close()


async def test_a_reply_goes_to_its_threads_channel(slack, path):
    store = Store(path)
    outbox = Outbox(store, web_api(slack), Metrics(), base_delay=0.01)
    await outbox.queue_slack("s", SUMMARY)
    await outbox.queue_slack("r", {"channel": "elsewhere", "text": "reply"}, thread_of="s")
    await drain(outbox)
    summary, reply = slack.messages
    assert (reply["channel"], reply["thread_ts"]) == ("ci-daily", summary["ts"])
    store.close()


async def test_replies_wait_while_their_thread_fails_and_follow_its_retry(slack, path):
    slack.auto_create = False  # ci-daily does not exist yet: Slack refuses the summary
    store = Store(path)
    outbox = Outbox(store, web_api(slack), Metrics(), base_delay=0.01)
    await outbox.queue_slack("nightly:summary", SUMMARY)
    await outbox.queue_slack("nightly:bert", BERT, thread_of="nightly:summary")
    await drain(outbox)
    kept = await items(store)
    assert kept["nightly:summary"].status == "failed"
    assert (kept["nightly:bert"].status, kept["nightly:bert"].attempts) == ("pending", 0)
    # Nothing is due: the reply waits for its thread, not for a time (the loop sleeps).
    assert await store.call(outbox_db.next_outbox_due_at) is None
    assert slack.messages == []

    slack.create_channel("ci-daily")  # an operator fixes the channel, then retries
    assert await store.call(lambda c: outbox_db.retry_outbox(c, kept["nightly:summary"].id))
    await drain(outbox)
    summary, reply = slack.messages
    assert reply["text"] == BERT["text"] and reply["thread_ts"] == summary["ts"]
    store.close()


async def test_a_reply_queued_after_a_restart_finds_its_threads_ts(slack, path):
    store = Store(path)
    await Outbox(store, web_api(slack), Metrics()).queue_slack("s", SUMMARY)
    await drain(Outbox(store, web_api(slack), Metrics()))
    store.close()
    store = Store(path)  # another process, the same file
    outbox = Outbox(store, web_api(slack), Metrics())
    await outbox.queue_slack("r", BERT, thread_of="s")
    await drain(outbox)
    summary, reply = slack.messages
    assert reply["thread_ts"] == summary["ts"]
    store.close()


async def test_with_an_incoming_webhook_a_reply_is_sent_on_its_own(slack, path):
    store = Store(path)
    sender = SlackWebhook(AsyncWebhookClient(slack.webhook_url))
    outbox = Outbox(store, sender, Metrics(), base_delay=0.01)
    await outbox.queue_slack("r", BERT, thread_of="s")
    await outbox.queue_slack("s", SUMMARY)
    await drain(outbox)
    summary, reply = slack.messages
    assert (summary["via"], summary["text"]) == ("webhook", SUMMARY["text"])
    assert reply["text"] == BERT["text"] and reply["thread_ts"] is None
    assert (await items(store))["s"].sent_ts is None
    store.close()


async def test_a_message_cannot_reply_in_its_own_thread(slack, path):
    store = Store(path)
    outbox = Outbox(store, web_api(slack), Metrics())
    with pytest.raises(ValueError, match="its own thread"):
        await outbox.queue_slack("s", SUMMARY, thread_of="s")
    assert await items(store) == {}
    store.close()


async def test_a_dry_run_shows_which_thread_a_reply_belongs_to_and_logs_it(path, caplog):
    store = Store(path)
    outbox = Outbox(store, web_api(SandboxSlack()), Metrics(), dry_run=True)
    with caplog.at_level(logging.INFO, logger="bot.server.outbox"):
        await outbox.queue_slack("r", BERT, thread_of="s")
    assert outbox.dry_run_messages == [{"key": "r", **BERT, "thread_of": "s"}]
    (record,) = [r for r in caplog.records if r.name == "bot.server.outbox"]
    assert record.getMessage() == "dry run: not queueing Slack message r"
    store.close()
