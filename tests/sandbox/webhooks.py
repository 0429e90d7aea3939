"""Sending webhook deliveries the way GitHub does: signed, with GitHub's headers."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Sent:
    """How the receiver answered one delivery."""

    delivery_id: str
    status: int
    body: str


def signature(body: bytes, secret: str) -> str:
    """`X-Hub-Signature-256`: the HMAC-SHA256 of the exact body, hex, with GitHub's prefix."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(
    event: str,
    body: bytes,
    secret: str,
    *,
    delivery_id: str,
    hook_id: int = 1,
    app_id: int = 1,
) -> dict[str, str]:
    """The headers GitHub sends with an App's delivery (both signatures, as GitHub does)."""
    legacy = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/sandbox",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Hook-ID": str(hook_id),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-GitHub-Hook-Installation-Target-ID": str(app_id),
        "X-Hub-Signature": legacy,
        "X-Hub-Signature-256": signature(body, secret),
    }


async def send_webhook(
    session: aiohttp.ClientSession | None,
    url: str,
    event: str,
    payload: dict[str, Any],
    secret: str,
    *,
    delivery_id: str | None = None,
    hook_id: int = 1,
    app_id: int = 1,
) -> Sent:
    """POSTs one delivery to `url`; without a session, one is opened for this call."""
    if not event:
        raise ValueError("a delivery needs an event name")
    if not secret:
        raise ValueError("GitHub signs every App delivery: a secret is required")
    body = json.dumps(payload).encode()
    delivery_id = delivery_id or str(uuid.uuid4())
    headers = delivery_headers(
        event, body, secret, delivery_id=delivery_id, hook_id=hook_id, app_id=app_id
    )
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await _post(own, url, body, headers, delivery_id)
    return await _post(session, url, body, headers, delivery_id)


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], delivery: str
) -> Sent:
    async with session.post(url, data=body, headers=headers) as response:
        return Sent(delivery, response.status, await response.text())
