"""A local Slack stand-in: records `chat.postMessage` and incoming-webhook posts.

It checks the bot token and validates messages the way Slack does, answering in Slack's shapes
(`{"ok": false, "error": ...}` with HTTP 200 from the Web API, plain-text errors from webhooks,
429 with `Retry-After`), and it can be told to fail the next calls, so a sender's retries are
exercised through the real slack_sdk clients.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.sandbox.http import LoopbackServer

MAX_TEXT_CHARS = 40_000
MAX_BLOCKS = 50
ENDPOINTS = ("chat.postMessage", "auth.test", "conversations.list", "webhook")


@dataclass
class _Failure:
    status: int
    times: int
    headers: dict[str, str]
    body: Any
    endpoint: str | None


class _Refused(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _blocks(value: Any) -> list[dict[str, Any]] | None:
    """Slack's block list, from JSON or a form field holding JSON; invalid_blocks otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Refused("invalid_blocks") from None
    if (
        not isinstance(value, list)
        or len(value) > MAX_BLOCKS
        or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in value)
    ):
        raise _Refused("invalid_blocks")
    return value


class SandboxSlack(LoopbackServer):
    """Slack's Web API (`/api/<method>`) and one incoming webhook, on loopback."""

    def __init__(
        self,
        *,
        token: str | None = None,
        auto_create: bool = True,
        webhook_channel: str = "general",
        team: str = "sandbox",
    ) -> None:
        self.token = token or "xoxb-sandbox-" + secrets.token_hex(8)
        self.auto_create = auto_create
        self.team = team
        self.channels: dict[str, str] = {}  # name -> id
        #: Channels the bot user is not a member of (`conversations.list` says `is_member`).
        self.not_joined: set[str] = set()
        self.messages: list[dict[str, Any]] = []
        self.attempts = 0  # message posts received, refused ones included
        self._hook = "/services/T000SANDBOX/B000SANDBOX/" + secrets.token_hex(12)
        self._failures: list[_Failure] = []
        self._sequence = 0
        self.webhook_channel = webhook_channel
        self.create_channel(webhook_channel)

    @property
    def api_url(self) -> str:
        """The `base_url` for slack_sdk's clients."""
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self._hook}"

    def create_channel(self, name: str) -> str:
        """Creates `name` (a leading # is ignored) unless it exists; returns its id."""
        name = name.lstrip("#")
        if not name or len(name) > 80 or name != name.lower() or " " in name:
            raise ValueError(f"{name!r} is not a Slack channel name (lower case, no spaces)")
        if name not in self.channels:
            self.channels[name] = f"C{len(self.channels) + 1:08d}"
        return self.channels[name]

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        endpoint: str | None = None,
    ) -> None:
        """The next `times` calls (of `endpoint` only, when given) answer `status` with Slack's
        body for it, e.g. 500, or 429 with `{"Retry-After": "1"}` as Slack rate limits."""
        if times < 1:
            raise ValueError("times must be at least 1")
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
        self._failures.append(_Failure(status, times, dict(headers or {}), body, endpoint))

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # slack_sdk reads lists with GET
        app.router.add_post("/services/{team}/{bot}/{secret}", self._webhook)
        return app

    # ------------------------------------------------------------------ plumbing

    def _failure(self, endpoint: str) -> web.Response | None:
        for failure in self._failures:
            if failure.endpoint not in (None, endpoint):
                continue
            failure.times -= 1
            if failure.times <= 0:
                self._failures.remove(failure)
            webhook = endpoint == "webhook"
            body = failure.body
            if body is None and failure.status == 429:
                body = "rate_limited" if webhook else {"ok": False, "error": "ratelimited"}
            elif body is None:
                body = "internal_error" if webhook else {"ok": False, "error": "internal_error"}
            if isinstance(body, str):
                return web.Response(status=failure.status, text=body, headers=failure.headers)
            return web.json_response(body, status=failure.status, headers=failure.headers)
        return None

    async def _fields(self, request: web.Request) -> dict[str, Any]:
        if request.method == "GET":
            return dict(request.query)
        raw = await request.read()
        if request.content_type == "application/json":
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                raise _Refused("invalid_json") from None
            if not isinstance(data, dict):
                raise _Refused("invalid_json")
            return data
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[0] for key, values in form.items()}

    def _check_token(self, request: web.Request, fields: Mapping[str, Any]) -> None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header else fields.get("token")
        if not token:
            raise _Refused("not_authed")
        if token != self.token:
            raise _Refused("invalid_auth")

    def _channel(self, wanted: Any) -> str:
        """The name of the channel a message goes to, by name or by id."""
        if not isinstance(wanted, str) or not wanted.strip():
            raise _Refused("channel_not_found")
        wanted = wanted.strip().lstrip("#")
        for name, channel_id in self.channels.items():
            if wanted in (name, channel_id):
                return name
        if not self.auto_create:
            raise _Refused("channel_not_found")
        try:
            self.create_channel(wanted)
        except ValueError:
            raise _Refused("channel_not_found") from None
        return wanted

    def _next_ts(self) -> str:
        self._sequence += 1
        return f"{int(time.time())}.{self._sequence:06d}"

    # ------------------------------------------------------------------ the Web API

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        handlers = {
            "chat.postMessage": self._post_message,
            "auth.test": self._auth_test,
            "conversations.list": self._conversations_list,
        }
        handler = handlers.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        if method == "chat.postMessage":
            self.attempts += 1
        if (failed := self._failure(method)) is not None:
            return failed
        try:
            fields = await self._fields(request)
            self._check_token(request, fields)
            return web.json_response(handler(fields))
        except _Refused as refused:
            return web.json_response({"ok": False, "error": refused.error})

    def _auth_test(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team}.slack.com/",
            "team": self.team,
            "user": "maintainer-bot",
            "team_id": "T000SANDBOX",
            "user_id": "U000SANDBOX",
            "bot_id": "B000SANDBOX",
        }

    def _conversations_list(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Every channel in one page (the sandbox's are few); all of them are public."""
        types = str(fields.get("types") or "public_channel").split(",")
        if "public_channel" not in types:
            return {"ok": True, "channels": [], "response_metadata": {"next_cursor": ""}}
        channels = [
            {
                "id": channel_id,
                "name": name,
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": name not in self.not_joined,
            }
            for name, channel_id in self.channels.items()
        ]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}

    def _post_message(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(fields.get("channel"))
        text = fields.get("text")
        blocks = _blocks(fields.get("blocks"))
        if not text and not blocks and not fields.get("attachments"):
            raise _Refused("no_text")
        if text is not None and not isinstance(text, str):
            raise _Refused("invalid_arguments")
        if text and len(text) > MAX_TEXT_CHARS:
            raise _Refused("msg_too_long")
        ts = self._next_ts()
        message = {
            "channel": channel,
            "text": text,
            "blocks": blocks,
            "via": "api",
            "ts": ts,
            "thread_ts": fields.get("thread_ts"),
        }
        self.messages.append(message)
        return {
            "ok": True,
            "channel": self.channels[channel],
            "ts": ts,
            "message": {
                "type": "message",
                "text": text or "",
                "blocks": blocks or [],
                "ts": ts,
                "bot_id": "B000SANDBOX",
                "user": "U000SANDBOX",
            },
        }

    # ------------------------------------------------------------------ the incoming webhook

    async def _webhook(self, request: web.Request) -> web.Response:
        if request.path != self._hook:
            return web.Response(status=404, text="no_service")
        self.attempts += 1
        if (failed := self._failure("webhook")) is not None:
            return failed
        raw = await request.read()
        try:
            if request.content_type == "application/x-www-form-urlencoded":
                form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
                data = json.loads(form.get("payload", [""])[0])
            else:
                data = json.loads(raw)
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(data, dict):
            return web.Response(status=400, text="invalid_payload")
        try:
            blocks = _blocks(data.get("blocks"))
        except _Refused as refused:
            return web.Response(status=400, text=refused.error)
        text = data.get("text")
        if not text and not blocks and not data.get("attachments"):
            return web.Response(status=400, text="no_text")
        self.messages.append(
            {
                "channel": self.webhook_channel,
                "text": text,
                "blocks": blocks,
                "via": "webhook",
                "ts": self._next_ts(),
                "thread_ts": data.get("thread_ts"),
            }
        )
        return web.Response(text="ok")
