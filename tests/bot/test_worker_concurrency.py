"""The worker's concurrency: one at a time and in order per pull request, a time limit per
handler. Measured with events (what happened before what), never with wall-clock figures."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from gidgethub.routing import Router

from bot.store import deliveries
from tests.support.webhooks import module, payload, webhook_headers


async def test_deliveries_of_one_pull_request_run_in_order_and_one_at_a_time(make_client):
    events: list[str] = []
    first_started = asyncio.Event()
    release_first = asyncio.Event()
    other_done = asyncio.Event()
    router = Router()

    @router.register("issue_comment", action="created")
    async def record(event, gh, **_):
        name = event.data["comment"]["body"]
        events.append(f"start {name}")
        if name == "pr5-first":
            first_started.set()
            await release_first.wait()
        events.append(f"end {name}")
        if name == "pr6":
            other_done.set()

    client = await make_client(module(router))

    async def comment(number: int, body: str) -> None:
        data = json.dumps(
            {
                "action": "created",
                "repository": {"full_name": "acme/widgets"},
                "issue": {"number": number, "comments_url": "x"},
                "comment": {"id": 1, "body": body, "user": {"login": "someone"}},
            }
        ).encode()
        answer = await client.post(
            "/webhook", data=data, headers=webhook_headers("issue_comment", data)
        )
        assert answer.status == 202

    await comment(5, "pr5-first")
    async with asyncio.timeout(5):
        await first_started.wait()
    await comment(5, "pr5-second")
    await comment(6, "pr6")
    async with asyncio.timeout(5):
        await other_done.wait()  # PR 6 ran while PR 5's first delivery was still running
    assert "start pr5-second" not in events  # ... and PR 5's second one waited behind it
    release_first.set()
    async with asyncio.timeout(5):
        while "end pr5-second" not in events:
            await asyncio.sleep(0.01)
    assert events.index("end pr5-first") < events.index("start pr5-second")


async def test_a_handler_past_its_time_limit_is_cancelled_and_retried(make_client, settings):
    calls: list[int] = []
    router = Router()

    @router.register("issue_comment", action="created")
    async def slow_then_quick(event, gh, **_):
        calls.append(len(calls))
        if len(calls) == 1:
            await asyncio.sleep(60)

    client = await make_client(
        module(router), settings_=replace(settings, handler_timeout_seconds=0.2)
    )
    body = payload()
    await client.post(
        "/webhook", data=body, headers=webhook_headers("issue_comment", body, delivery="slow")
    )
    async with asyncio.timeout(10):
        while True:
            row = await client.runtime.store.call(
                lambda conn: deliveries.get_delivery(conn, "slow")
            )
            if row.status == "done":
                break
            await asyncio.sleep(0.02)
    assert row.attempts == 2
    assert calls == [0, 1]


async def test_a_burst_of_slow_pull_request_events_never_delays_a_comment(make_client, settings):
    release = asyncio.Event()
    started: list[int] = []
    answered = asyncio.Event()
    router = Router()

    @router.register("pull_request", action="opened")
    async def slow(event, gh, **_):
        started.append(event.data["pull_request"]["number"])
        await release.wait()

    @router.register("issue_comment", action="created")
    async def answer(event, gh, **_):
        answered.set()

    client = await make_client(module(router), settings_=replace(settings, worker_concurrency=2))
    for number in range(1, 6):  # more pull requests than slots, all stuck
        data = json.dumps(
            {
                "action": "opened",
                "repository": {"full_name": "acme/widgets"},
                "pull_request": {
                    "number": number, "user": {"login": "a"}, "base": {}, "head": {},
                },
            }
        ).encode()  # fmt: skip
        await client.post("/webhook", data=data, headers=webhook_headers("pull_request", data))
    body = payload(issue={"number": 99, "comments_url": "x"})  # another PR's comment
    await client.post("/webhook", data=body, headers=webhook_headers("issue_comment", body))
    try:
        async with asyncio.timeout(5):
            await answered.wait()
        assert len(started) == 2  # the events wait for their slots; the comment did not
    finally:
        release.set()
