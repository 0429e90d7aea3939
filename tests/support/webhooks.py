"""Helpers for tests that talk to the webhook server."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.kit.feature import Feature

SECRET = "test-webhook-secret-0123456789"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_headers(
    event: str, body: bytes, *, delivery: str | None = None, secret: str = SECRET
) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": "application/json",
    }


def module(router: Any, name: str = "test-feature") -> Feature:
    """A feature made in a test: a router and its help, nothing else."""
    from bot.kit.feature import Feature
    from bot.kit.help import Help

    return Feature(
        name=name, title=name, router=router, help=Help(name=name, summary="test", who="anyone")
    )


def payload(**extra: Any) -> bytes:
    """A small `issue_comment` payload with the fields every handler may read."""
    data = {
        "action": "created",
        "repository": {"full_name": "acme/widgets"},
        "issue": {"number": 1, "comments_url": "/repos/acme/widgets/issues/1/comments"},
        "comment": {"id": 1, "body": "hello", "user": {"login": "someone"}},
        **extra,
    }
    return json.dumps(data).encode()
