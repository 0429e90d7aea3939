"""Deliveries signed like GitHub's: a receiver checking them with gidgethub accepts them."""

from __future__ import annotations

import pytest
from aiohttp import web
from gidgethub import ValidationFailure
from gidgethub.sansio import Event

from tests.sandbox import send_webhook
from tests.sandbox.http import serve

SECRET = "s3cret"


@pytest.fixture
async def receiver():
    received: list[Event] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = Event.from_http(request.headers, body, secret=SECRET)
        except ValidationFailure:
            return web.Response(status=401, text="bad signature")
        received.append(event)
        return web.Response(status=202, text="queued")

    app = web.Application()
    app.router.add_post("/webhook", hook)
    runner, url = await serve(app, "127.0.0.1", 0)
    yield f"{url}/webhook", received
    await runner.cleanup()


async def test_a_delivery_is_signed_and_named_like_githubs(receiver, session):
    url, received = receiver
    sent = await send_webhook(
        session, url, "ping", {"zen": "Keep it simple."}, SECRET, delivery_id="d-1"
    )
    assert (sent.delivery_id, sent.status, sent.body) == ("d-1", 202, "queued")
    (event,) = received
    assert (event.event, event.delivery_id, event.data) == (
        "ping",
        "d-1",
        {"zen": "Keep it simple."},
    )


async def test_without_a_session_and_with_the_wrong_secret(receiver):
    url, received = receiver
    sent = await send_webhook(None, url, "push", {"ref": "refs/heads/main"}, "not-the-secret")
    assert sent.status == 401
    assert len(sent.delivery_id) == 36  # a uuid4, as GitHub sends
    assert received == []
    with pytest.raises(ValueError, match="secret"):
        await send_webhook(None, url, "push", {}, "")


async def test_the_body_is_the_json_of_the_payload(receiver, session):
    url, received = receiver
    payload = {"text": "naïve ✓", "n": [1, 2]}
    await send_webhook(session, url, "issue_comment", payload, SECRET)
    assert received[0].data == payload
