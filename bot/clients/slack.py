"""Slack access: a bot token (Web API), an incoming-webhook URL, or the log when neither is set.

Senders only deliver one message and say how it went; retrying is the outbox's job, so an
alert survives Slack outages and bot restarts alike (see `bot.server.outbox`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.clients.backoff import retry_after as retry_after_header
from bot.config import Settings


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters escaped: nothing a value holds (a PR title, a test's
    name, an error line) becomes a link, a mention or a `<!channel>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


log = logging.getLogger("bot.clients.slack")

#: Slack errors that no retry can fix: the message itself or the channel must change.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_payload",
        "too_many_attachments",
    }
)


class SlackDeliveryError(Exception):
    """A message was not delivered; `retry_after` is Slack's own wait when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class SlackSender(Protocol):
    name: str

    async def send(self, message: Mapping[str, Any]) -> str | None:
        """Delivers the message; returns Slack's `ts` for it where the sender learns one (the
        Web API does, so replies can be threaded under it; a webhook does not)."""
        ...


@dataclass
class SlackWebAPI:
    """Posts with `chat.postMessage` as the Slack app's bot user."""

    client: AsyncWebClient
    name: str = "web-api"

    async def send(self, message: Mapping[str, Any]) -> str | None:
        try:
            response = await self.client.chat_postMessage(**message)
        except SlackApiError as exc:
            response = exc.response
            data = response.data if response is not None else None
            error = data.get("error") if isinstance(data, dict) else None
            status = response.status_code if response is not None else 0
            retry_after = retry_after_header(response.headers if response is not None else None)
            raise SlackDeliveryError(
                f"Slack answered {status}: {error or 'error'}",
                retry_after=retry_after,
                permanent=error in PERMANENT_ERRORS,
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackDeliveryError(f"Slack unreachable: {type(exc).__name__}") from None
        ts = response.get("ts")
        return ts if isinstance(ts, str) else None


@dataclass
class SlackWebhook:
    """Posts to an incoming-webhook URL; the channel is fixed by the webhook itself."""

    client: AsyncWebhookClient
    name: str = "webhook"

    async def send(self, message: Mapping[str, Any]) -> str | None:
        fields = {k: v for k, v in message.items() if k in ("text", "blocks", "unfurl_links")}
        try:
            response = await self.client.send(**fields)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackDeliveryError(f"Slack unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            body = (response.body or "").strip()
            raise SlackDeliveryError(
                f"Slack webhook answered {response.status_code}: {body[:200]}",
                retry_after=retry_after_header(response.headers),
                permanent=response.status_code in (400, 404, 410) and body in PERMANENT_ERRORS,
            )
        return None  # a webhook answers "ok", never the message's ts


@dataclass
class SlackLog:
    """No Slack configured: the message goes to the log so a dry run or demo still shows it."""

    name: str = "log"

    async def send(self, message: Mapping[str, Any]) -> str | None:
        log.info(
            "Slack is not configured; message for %s: %s",
            message.get("channel", "?"),
            message.get("text", ""),
        )
        return None


def make_sender(settings: Settings, session: aiohttp.ClientSession | None = None) -> SlackSender:
    if settings.slack_bot_token:
        return SlackWebAPI(
            AsyncWebClient(
                token=settings.slack_bot_token, base_url=settings.slack_api_url, session=session
            )
        )
    if settings.slack_webhook_url:
        return SlackWebhook(AsyncWebhookClient(settings.slack_webhook_url, session=session))
    return SlackLog()
