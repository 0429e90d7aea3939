"""The webhook endpoint: signatures, malformed requests, duplicates, health, metrics, help."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest
from gidgethub.routing import Router

from bot.config import ConfigError, Settings
from bot.server.app import create_app
from bot.store import deliveries as deliveries_db
from bot.store.engine import Store
from tests.support.webhooks import SECRET, module, payload, sign, webhook_headers

GITHUB_EXAMPLE_SECRET = "It's a Secret to Everybody"
GITHUB_EXAMPLE_BODY = b"Hello, World!"
GITHUB_EXAMPLE_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


@pytest.fixture
def example_settings(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, webhook_secret=GITHUB_EXAMPLE_SECRET)


def _example_headers(signature: str | None) -> dict[str, str]:
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "example-1"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return headers


async def test_githubs_documented_example_signature_passes(make_client, example_settings):
    client = await make_client(settings_=example_settings)
    response = await client.post(
        "/webhook", data=GITHUB_EXAMPLE_BODY, headers=_example_headers(GITHUB_EXAMPLE_SIGNATURE)
    )
    # The signature is right; the body is not JSON, so the answer is 400 and not 401.
    assert response.status == 400
    assert "not JSON" in (await response.json())["error"]


@pytest.mark.parametrize("flip", ["body", "signature"])
async def test_one_flipped_byte_is_rejected(make_client, example_settings, flip):
    client = await make_client(settings_=example_settings)
    body, signature = GITHUB_EXAMPLE_BODY, GITHUB_EXAMPLE_SIGNATURE
    if flip == "body":
        body = b"Hello, World?"
    else:
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    response = await client.post("/webhook", data=body, headers=_example_headers(signature))
    assert response.status == 401


async def test_missing_signature_is_rejected(make_client, example_settings):
    client = await make_client(settings_=example_settings)
    response = await client.post(
        "/webhook", data=GITHUB_EXAMPLE_BODY, headers=_example_headers(None)
    )
    assert response.status == 401
    assert "X-Hub-Signature-256" in (await response.json())["error"]


async def test_signature_with_wrong_secret_or_scheme_is_rejected(make_client):
    client = await make_client()
    body = payload()
    headers = webhook_headers("issue_comment", body, secret="another-secret-entirely")
    assert (await client.post("/webhook", data=body, headers=headers)).status == 401
    headers["X-Hub-Signature-256"] = "md5=abc"
    assert (await client.post("/webhook", data=body, headers=headers)).status == 401


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
async def test_missing_event_or_delivery_header_is_400(make_client, missing):
    client = await make_client()
    body = payload()
    headers = webhook_headers("issue_comment", body)
    del headers[missing]
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == 400


@pytest.mark.parametrize("body", [b"[1, 2, 3]", b'"text"', b"null", b"\xff\xfe"])
async def test_non_object_payloads_are_400(make_client, body):
    client = await make_client()
    response = await client.post(
        "/webhook", data=body, headers=webhook_headers("issue_comment", body)
    )
    assert response.status == 400


async def test_oversized_body_is_413_and_not_stored(make_client):
    client = await make_client()
    body = b'{"a": "' + b"x" * (25 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/webhook", data=body, headers=webhook_headers("issue_comment", body)
    )
    assert response.status == 413
    stored = await client.runtime.store.call(lambda conn: deliveries_db.list_deliveries(conn))
    assert stored == []


async def test_form_encoded_delivery_is_accepted(make_client):
    import urllib.parse

    client = await make_client()
    body = urllib.parse.urlencode({"payload": payload().decode()}).encode()
    headers = webhook_headers("issue_comment", body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == 202


async def test_accepted_delivery_is_stored_before_202(make_client):
    client = await make_client()
    body = payload(installation={"id": 42})
    headers = webhook_headers("issue_comment", body, delivery="d-1")
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == 202
    assert (await response.json()) == {"status": "accepted", "delivery": "d-1"}
    # Read through a separate connection: the row must already be committed on disk.
    other = Store(client.runtime.settings.database)
    try:
        stored = other.call_sync(lambda conn: deliveries_db.get_delivery(conn, "d-1"))
    finally:
        other.close()
    assert stored is not None
    assert stored.body == body
    assert (stored.event, stored.action, stored.repo) == (
        "issue_comment",
        "created",
        "acme/widgets",
    )
    assert stored.installation_id == 42


async def test_duplicate_delivery_is_processed_once(make_client):
    calls: list[str] = []
    router = Router()

    @router.register("issue_comment", action="created")
    async def count(event, gh, **_):
        calls.append(event.delivery_id)

    client = await make_client(module(router))
    body = payload()
    headers = webhook_headers("issue_comment", body, delivery="same-id")
    first = await client.post("/webhook", data=body, headers=headers)
    second = await client.post("/webhook", data=body, headers=headers)
    assert (first.status, second.status) == (202, 200)
    assert (await second.json())["status"] == "duplicate"
    await _drain(client)
    await asyncio.sleep(0.05)
    assert calls == ["same-id"]


async def test_ping_is_answered_and_recorded(make_client):
    client = await make_client()
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    response = await client.post("/webhook", data=body, headers=webhook_headers("ping", body))
    assert response.status == 202
    await _drain(client)
    rows = await client.runtime.store.call(lambda conn: deliveries_db.list_deliveries(conn))
    assert [(r.event, r.status) for r in rows] == [("ping", "done")]


async def _drain(client, timeout: float = 5.0) -> None:
    async def depth() -> int:
        return await client.runtime.store.call(deliveries_db.queue_depth)

    async with asyncio.timeout(timeout):
        while await depth():
            await asyncio.sleep(0.01)


async def test_failing_handler_is_retried_then_failed_with_its_error(make_client):
    attempts: list[int] = []
    others: list[str] = []
    router = Router()

    @router.register("issue_comment")
    async def explode(event, gh, **_):
        attempts.append(1)
        raise RuntimeError("the handler broke on purpose")

    @router.register("issue_comment")
    async def fine(event, gh, **_):
        others.append(event.delivery_id)

    client = await make_client(module(router))
    body = payload()
    response = await client.post(
        "/webhook", data=body, headers=webhook_headers("issue_comment", body, delivery="boom")
    )
    assert response.status == 202
    await _drain(client)
    stored = await client.runtime.store.call(lambda conn: deliveries_db.get_delivery(conn, "boom"))
    assert stored.status == "failed"
    assert stored.attempts == 3 == len(attempts)
    assert "the handler broke on purpose" in stored.error
    assert "RuntimeError" in stored.error
    # The healthy handler ran once: a retry re-runs only what failed.
    assert others == ["boom"]


async def test_healthz_metrics_and_help(make_client):
    client = await make_client()
    body = payload()
    await client.post("/webhook", data=body, headers=webhook_headers("issue_comment", body))
    await client.post("/webhook", data=b"{}", headers={"X-GitHub-Event": "x"})
    await _drain(client)
    health = await client.get("/healthz")
    assert health.status == 200
    assert (await health.json()) == {
        "status": "ok",
        "worker_alive": True,
        "queue_depth": 0,
        "store_writable": True,
        "problems": [],
    }
    text = await (await client.get("/metrics")).text()
    assert 'bot_deliveries_total{event="issue_comment",outcome="accepted"} 1' in text
    # An unsigned request's event header is not GitHub's word: it never becomes a label.
    assert 'bot_deliveries_total{event="unverified",outcome="unsigned"} 1' in text
    assert "bot_queue_depth 0" in text
    assert 'bot_deliveries_stored{status="done"} 1' in text
    commits = next(line for line in text.splitlines() if line.startswith("bot_store_commits "))
    assert float(commits.split()[1]) >= 1
    features = (await (await client.get("/help")).json())["features"]
    assert "help" in [f["name"] for f in features]
    markdown = await (await client.get("/help?format=markdown")).text()
    assert "@bot /help" in markdown


def test_server_refuses_to_start_without_a_secret(settings):
    from dataclasses import replace

    with pytest.raises(ConfigError, match="GITHUB_WEBHOOK_SECRET"):
        create_app(replace(settings, webhook_secret=None))


def test_signature_helper_matches_githubs_example():
    assert sign(GITHUB_EXAMPLE_BODY, GITHUB_EXAMPLE_SECRET) == GITHUB_EXAMPLE_SIGNATURE
    assert sign(b"x") != sign(b"x", SECRET + "!")


async def test_a_backlog_waits_in_the_database_and_keeps_arrival_order(make_client, monkeypatch):
    import bot.server.worker

    monkeypatch.setattr(bot.server.worker, "MEMORY_LIMIT", 2)
    seen: list[str] = []
    router = Router()

    @router.register("issue_comment")
    async def slow(event, gh, **_):
        await asyncio.sleep(0.01)
        seen.append(event.delivery_id)

    client = await make_client(module(router))
    ids = [f"d-{i:02d}" for i in range(12)]
    for delivery_id in ids:
        body = payload()
        headers = webhook_headers("issue_comment", body, delivery=delivery_id)
        assert (await client.post("/webhook", data=body, headers=headers)).status == 202
    stored = await client.runtime.store.call(lambda conn: deliveries_db.list_deliveries(conn))
    assert any(d.status == "stored" for d in stored)  # more than fit in memory
    await _drain(client)
    assert seen == ids


async def test_the_same_delivery_twice_at_once_is_stored_once(make_client):
    client = await make_client()
    body = payload()
    headers = webhook_headers("issue_comment", body, delivery="twin")
    first, second = await asyncio.gather(
        client.post("/webhook", data=body, headers=headers),
        client.post("/webhook", data=body, headers=headers),
    )
    assert sorted([first.status, second.status]) == [200, 202]
    stored = await client.runtime.store.call(lambda conn: deliveries_db.list_deliveries(conn))
    assert [d.id for d in stored] == ["twin"]


async def test_a_stop_right_after_a_burst_leaves_every_outcome_on_disk(make_client, monkeypatch):
    # Outcomes are committed in the background while the next deliveries run; a graceful stop
    # must still wait for them, or a restart would handle those deliveries a second time.
    slow_commit = Store._commit

    def slow_disk(self):
        time.sleep(0.2)
        slow_commit(self)

    monkeypatch.setattr(Store, "_commit", slow_disk)
    import bot.server.worker

    monkeypatch.setattr(bot.server.worker, "FINISH_WINDOW", 4)  # the worker also waits for room
    seen: list[str] = []
    router = Router()

    @router.register("issue_comment")
    async def record(event, gh, **_):
        seen.append(event.delivery_id)

    client = await make_client(module(router))
    ids = [f"burst-{i:02d}" for i in range(40)]
    bodies = [payload() for _ in ids]
    answers = await asyncio.gather(
        *(
            client.post("/webhook", data=b, headers=webhook_headers("issue_comment", b, delivery=d))
            for b, d in zip(bodies, ids, strict=True)
        )
    )
    assert {a.status for a in answers} == {202}
    async with asyncio.timeout(5):
        while len(seen) < len(ids):
            await asyncio.sleep(0)
    await client.runtime.stop()
    processed = client.runtime.metrics.render().decode()
    assert 'bot_deliveries_processed_total{event="issue_comment",outcome="done"} 40' in processed
    reopened = Store(client.runtime.settings.database)
    try:
        stored = reopened.call_sync(lambda conn: deliveries_db.list_deliveries(conn, limit=100))
    finally:
        reopened.close()
    assert sorted(d.id for d in stored) == ids
    assert {d.status for d in stored} == {"done"}
    assert sorted(seen) == ids


async def test_an_outcome_that_cannot_be_written_leaves_the_delivery_in_memory(
    make_client, monkeypatch, caplog
):
    # The handlers ran, but the disk refused the outcome: the row stays `in_memory`, so the next
    # start handles it again, and the worker goes on with the deliveries behind it.
    real_finish = deliveries_db.finish_delivery

    def refuse_one(conn, delivery_id, **outcome):
        if delivery_id == "unlucky":
            raise sqlite3.OperationalError("disk I/O error")
        return real_finish(conn, delivery_id, **outcome)

    monkeypatch.setattr(deliveries_db, "finish_delivery", refuse_one)
    client = await make_client()
    for delivery_id in ("unlucky", "next"):
        body = payload()
        headers = webhook_headers("issue_comment", body, delivery=delivery_id)
        assert (await client.post("/webhook", data=body, headers=headers)).status == 202
    async with asyncio.timeout(5):
        while True:
            stored = await client.runtime.store.call(
                lambda conn: deliveries_db.list_deliveries(conn)
            )
            if {d.id: d.status for d in stored}.get("next") == "done":
                break
            await asyncio.sleep(0.01)
    assert {d.id: d.status for d in stored} == {"unlucky": "in_memory", "next": "done"}
    assert "could not record the outcome of delivery unlucky" in caplog.text
    assert (await client.get("/healthz")).status == 200
