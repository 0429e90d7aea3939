"""One bad delivery never stops or loses the others: poison payloads, group commits, hostile
requests, slow clients, a full disk. Every request goes over a real loopback socket to the real
app; the ones no polite client would send are written by hand (`tests.support.rawhttp`)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import replace

import pytest
from gidgethub.routing import Router

from bot.server import serving
from bot.server.app import create_app
from bot.server.routing import FEATURES
from bot.server.runtime import Runtime
from bot.store import deliveries
from bot.store.engine import Store
from tests.support import rawhttp
from tests.support.webhooks import SECRET, module, payload, webhook_headers


def _counting_module(calls: list[str]):
    router = Router()

    @router.register("issue_comment", action="created")
    async def count(event, gh, **_):
        calls.append(event.delivery_id)

    return module(router, "counter")


async def _drain(runtime: Runtime, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while await runtime.store.call(deliveries.queue_depth) or runtime.worker.busy:
            await asyncio.sleep(0.01)


async def _stored(runtime: Runtime, delivery_id: str) -> deliveries.Delivery | None:
    return await runtime.store.call(lambda conn: deliveries.get_delivery(conn, delivery_id))


def _address(client) -> tuple[str, int]:
    return client.server.host, client.server.port


# ------------------------------------------------------------------ 1. poison deliveries


@pytest.mark.parametrize("repository", ["x", 5, ["x"], {"full_name": ["a", "b"]}])
async def test_a_poison_push_is_failed_once_and_the_worker_keeps_going(make_client, repository):
    calls: list[str] = []
    client = await make_client(_counting_module(calls), *FEATURES)
    poison = json.dumps({"ref": "refs/heads/main", "repository": repository}).encode()
    answer = await client.post(
        "/webhook", data=poison, headers=webhook_headers("push", poison, delivery="poison")
    )
    assert answer.status == 202
    good = payload()
    await client.post("/webhook", data=good, headers=webhook_headers("issue_comment", good))
    await _drain(client.runtime)
    failed = await _stored(client.runtime, "poison")
    # Failed for good at the first try (a retry cannot change the body), with the reason.
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "repository" in failed.error
    assert len(calls) == 1
    health = await client.get("/healthz")
    assert health.status == 200
    assert (await health.json())["worker_alive"] is True


async def test_a_poison_row_left_by_a_previous_process_does_not_stop_the_next_start(
    make_client, settings
):
    store = Store(settings.database)
    body = json.dumps({"ref": "refs/heads/main", "repository": "x"}).encode()
    store.call_sync(
        lambda conn: deliveries.insert_deliveries(
            conn,
            [
                deliveries.Delivery(
                    id="poison",
                    event="push",
                    headers={},
                    body=body,
                    status="in_memory",
                    received_at=time.time(),
                )
            ],
        )
    )
    store.close()
    calls: list[str] = []
    client = await make_client(_counting_module(calls), *FEATURES)
    good = payload()
    await client.post("/webhook", data=good, headers=webhook_headers("issue_comment", good))
    await _drain(client.runtime)
    assert (await _stored(client.runtime, "poison")).status == "failed"
    assert len(calls) == 1
    assert (await client.get("/healthz")).status == 200


async def test_a_handler_that_cannot_read_the_payload_fails_it_without_retries(make_client):
    router = Router()

    @router.register("issue_comment", action="created")
    async def reads_a_missing_field(event, gh, **_):
        return event.data["issue"]["pull_request"]["url"]

    client = await make_client(module(router))
    body = payload()
    await client.post(
        "/webhook", data=body, headers=webhook_headers("issue_comment", body, delivery="d")
    )
    await _drain(client.runtime)
    stored = await _stored(client.runtime, "d")
    assert (stored.status, stored.attempts) == ("failed", 1)
    assert "KeyError" in stored.error


# ------------------------------------------------------------------ 2. group commits


@pytest.mark.parametrize(
    "bad",
    [
        {"repo": ["acme", "widgets"]},
        {"installation_id": 2**63},
        {"action": "\ud800"},
        {"event": "issue\udcffcomment"},
    ],
    ids=["repo-list", "huge-installation", "lone-surrogate", "undecodable-event"],
)
async def test_a_row_sqlite_refuses_fails_alone_and_its_group_is_stored(settings, bad):
    store = Store(settings.database)
    try:
        good = [
            deliveries.Delivery(
                id=f"good-{i}", event="ping", headers={}, body=b"{}", received_at=1.0
            )
            for i in range(60)
        ]
        poison = replace(
            deliveries.Delivery(id="bad", event="ping", headers={}, body=b"{}", received_at=1.0),
            **bad,
        )
        results = await asyncio.gather(
            *(store.ingest(d) for d in [*good[:30], poison, *good[30:]]), return_exceptions=True
        )
        assert isinstance(results[30], Exception)
        assert [r for i, r in enumerate(results) if i != 30] == [True] * 60
        assert store.call_sync(lambda conn: deliveries.count_deliveries(conn)) == 60
    finally:
        store.close()


async def test_good_deliveries_sent_with_bad_ones_are_all_stored(make_client):
    client = await make_client()
    host, port = _address(client)
    bad_bodies = [
        (b"issue\xffcomment", payload()),
        (b"issue_comment", payload(installation={"id": 2**63})),
        (b"issue_comment", json.dumps({"repository": {"full_name": ["a"]}}).encode()),
        (b"issue_comment", b'{"action": "\\ud800"}'),
    ]
    good_ids = [f"good-{i}" for i in range(60)]
    sends = [
        rawhttp.post(host, port, rawhttp.signed_headers(payload(), delivery=i.encode()), payload())
        for i in good_ids
    ]
    for event, body in bad_bodies:
        sends.insert(
            len(sends) // 2, rawhttp.post(host, port, rawhttp.signed_headers(body, event), body)
        )
    answers = await asyncio.gather(*sends)
    assert all(a.status < 500 for a in answers)
    stored = await client.runtime.store.call(
        lambda conn: deliveries.list_deliveries(conn, limit=500)
    )
    assert set(good_ids) <= {d.id for d in stored}


# ------------------------------------------------------------------ 3 and 4. clear 4xx


async def test_json_nested_thousands_deep_is_400(make_client):
    client = await make_client()
    body = b'{"a": ' + b"[" * 6000 + b"]" * 6000 + b"}"
    answer = await client.post("/webhook", data=body, headers=webhook_headers("push", body))
    assert answer.status == 400
    assert "nested too deeply" in (await answer.json())["error"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"X-Hub-Signature-256", b"sha256=\xc3\xa9" + b"0" * 62),
        (b"X-GitHub-Event", b"issue_\xff\xfecomment"),
        (b"X-GitHub-Delivery", b"id-\xc3\xa9"),
    ],
    ids=["signature", "event", "delivery"],
)
async def test_headers_with_non_ascii_bytes_are_4xx(make_client, name, value):
    client = await make_client()
    body = payload()
    headers = [(k, value if k == name else v) for k, v in rawhttp.signed_headers(body)]
    answer = await rawhttp.post(*_address(client), headers, body)
    assert answer.status in (400, 401)


@pytest.mark.parametrize("installation_id", [2**63, 2**64, -(2**63) - 1])
async def test_an_installation_id_sqlite_cannot_hold_is_400(make_client, installation_id):
    client = await make_client()
    body = payload(installation={"id": installation_id})
    answer = await client.post(
        "/webhook", data=body, headers=webhook_headers("issue_comment", body)
    )
    assert answer.status == 400


async def test_a_sha1_signature_in_the_sha256_header_is_refused(make_client):
    import hashlib
    import hmac

    client = await make_client()
    body = payload()
    headers = webhook_headers("issue_comment", body)
    headers["X-Hub-Signature-256"] = (
        "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    )
    answer = await client.post("/webhook", data=body, headers=headers)
    assert answer.status == 401


# ------------------------------------------------------------------ 5. unauthenticated memory


async def test_unsigned_requests_never_grow_the_metrics(make_client):
    client = await make_client()
    for i in range(300):
        await client.post("/webhook", data=b"{}", headers={"X-GitHub-Event": f"evil-{i}" * 50})
    text = await (await client.get("/metrics")).text()
    assert "evil" not in text
    assert 'bot_deliveries_total{event="unverified",outcome="unsigned"} 300' in text


async def test_a_request_without_a_signature_is_refused_before_its_body_is_read(make_client):
    client = await make_client()
    reader, writer = await asyncio.open_connection(*_address(client))
    # Declares 24 MB and sends none of it: the answer comes without waiting for the body.
    writer.write(
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
        b"X-GitHub-Delivery: d\r\nContent-Length: 25165824\r\n\r\n"
    )
    await writer.drain()
    async with asyncio.timeout(5):
        line = await reader.readline()
    writer.close()
    assert b" 401 " in line


async def test_bodies_read_at_once_are_bounded(make_client, settings):
    client = await make_client(settings_=replace(settings, body_bytes_in_flight=1_000_000))
    host, port = _address(client)
    body = b'{"a": "' + b"x" * 600_000 + b'"}'
    headers = rawhttp.signed_headers(body)
    # One slow sender holds 600 kB of the 1 MB budget ...
    reader, writer = await asyncio.open_connection(host, port)
    head = rawhttp.request_bytes(headers, body)
    writer.write(head[: len(head) - len(body) + 1000])
    await writer.drain()
    await asyncio.sleep(0.1)
    # ... so a second body of the same size waits for it: 503 with Retry-After.
    second = await rawhttp.post(host, port, rawhttp.signed_headers(body), body)
    assert second.status == 503
    writer.write(head[len(head) - len(body) + 1000 :])
    await writer.drain()
    first = await rawhttp.read_answer(reader)
    writer.close()
    assert first.status == 202
    # Budget given back: the same body now goes through.
    third = await rawhttp.post(host, port, rawhttp.signed_headers(body), body)
    assert third.status == 202


# ------------------------------------------------------------------ 6. slow clients


@pytest.fixture
async def guarded(settings):
    """The real app served through `bot.server.serving`, with short deadlines and few
    connections."""
    quick = replace(
        settings, header_timeout_seconds=0.5, body_timeout_seconds=0.5, max_connections=8
    )
    runtime = Runtime(quick)
    runner, url = await serving.start(create_app(quick, runtime=runtime), "127.0.0.1", 0)
    host, port = url.removeprefix("http://").split(":")
    yield host, int(port), runtime
    await runner.cleanup()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    async with asyncio.timeout(seconds):
        return await reader.read()


async def test_a_client_trickling_its_request_head_is_cut_off(guarded):
    host, port, _ = guarded
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    for _ in range(3):
        writer.write(b"X")
        await asyncio.sleep(0.2)
    assert await _closed_within(reader, 3) == b""
    writer.close()


async def test_a_stalled_body_is_answered_408(guarded):
    host, port, _ = guarded
    body = payload()
    reader, writer = await asyncio.open_connection(host, port)
    data = rawhttp.request_bytes(rawhttp.signed_headers(body), body)
    writer.write(data[:-10])
    await writer.drain()
    answer = await asyncio.wait_for(rawhttp.read_answer(reader), 3)
    writer.close()
    assert answer.status == 408


async def test_connections_past_the_cap_are_refused_and_served_again_once_closed(guarded):
    host, port, _ = guarded
    held = [await asyncio.open_connection(host, port) for _ in range(8)]
    refused = await rawhttp.send(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert refused.status == 503
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.05)
    answer = await rawhttp.send(
        host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert answer.status == 200


async def test_idle_connections_are_closed_and_normal_deliveries_still_go_through(guarded):
    host, port, _ = guarded
    idle = [await asyncio.open_connection(host, port) for _ in range(5)]
    body = payload()
    answer = await rawhttp.post(host, port, rawhttp.signed_headers(body), body)
    assert answer.status == 202
    for reader, writer in idle:
        assert await _closed_within(reader, 3) == b""
        writer.close()


# ------------------------------------------------------------------ 7. health on a full disk


async def test_healthz_reports_a_store_that_cannot_commit_and_its_recovery(make_client):
    client = await make_client()
    conn = client.runtime.store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    # SQLite's own size cap answers SQLITE_FULL exactly as a full disk does.
    body = b'{"a": "' + os.urandom(100_000).hex().encode() + b'"}'  # incompressible
    answer = await client.post("/webhook", data=body, headers=webhook_headers("push", body))
    assert answer.status == 500  # never a false 202
    health = await client.get("/healthz")
    assert health.status == 503
    report = await health.json()
    assert report["store_writable"] is False
    assert any("full" in p for p in report["problems"]), report["problems"]
    conn.execute("PRAGMA max_page_count = 1073741823")
    health = await client.get("/healthz")
    assert health.status == 200, await health.json()
    answer = await client.post("/webhook", data=body, headers=webhook_headers("push", body))
    assert answer.status == 202
