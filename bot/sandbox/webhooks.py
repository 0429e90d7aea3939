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
    delivery_id: str
    status: int
    body: str


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def send_webhook(
    session: aiohttp.ClientSession,
    url: str,
    event: str,
    payload: dict[str, Any],
    secret: str,
    *,
    delivery_id: str | None = None,
) -> Sent:
    body = json.dumps(payload).encode()
    delivery_id = delivery_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/sandbox",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-GitHub-Hook-ID": "1",
        "X-Hub-Signature-256": signature(body, secret),
    }
    async with session.post(url, data=body, headers=headers) as response:
        return Sent(delivery_id, response.status, await response.text())
