"""A local Slack stand-in: records `chat.postMessage` and incoming-webhook posts.

It checks the bot token and answers errors in Slack's own shapes (`{"ok": false, "error": ...}`,
429 with `Retry-After`), and can be told to fail the next calls, so the outbox's retries are
exercised through the real slack_sdk clients.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox.http import LoopbackServer


@dataclass
class _Failure:
    status: int
    times: int
    headers: dict[str, str]
    body: Any


class SandboxSlack(LoopbackServer):
    def __init__(self, *, token: str | None = None, auto_create: bool = True) -> None:
        self.token = token or "xoxb-sandbox-" + secrets.token_hex(8)
        self.auto_create = auto_create
        self.channels: set[str] = set()
        self.messages: list[dict[str, Any]] = []
        self.attempts = 0
        self._hook = "/services/T000/B000/" + secrets.token_hex(8)
        self._failures: list[_Failure] = []

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self._hook}"

    def create_channel(self, name: str) -> None:
        self.channels.add(name.lstrip("#"))

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        self._failures.append(_Failure(status, times, dict(headers or {}), body))

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/chat.postMessage", self._post_message)
        app.router.add_post("/api/auth.test", self._auth_test)
        app.router.add_post(self._hook, self._webhook)
        return app

    def _failure(self, *, webhook: bool) -> web.Response | None:
        if not self._failures:
            return None
        failure = self._failures[0]
        failure.times -= 1
        if failure.times <= 0:
            self._failures.pop(0)
        if failure.body is not None:
            body = failure.body
        elif failure.status == 429:
            body = "rate_limited" if webhook else {"ok": False, "error": "ratelimited"}
        else:
            body = "internal_error" if webhook else {"ok": False, "error": "internal_error"}
        if isinstance(body, str):
            return web.Response(status=failure.status, text=body, headers=failure.headers)
        return web.json_response(body, status=failure.status, headers=failure.headers)

    async def _fields(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            data = await request.json()
            return data if isinstance(data, dict) else {}
        form = urllib.parse.parse_qs((await request.read()).decode())
        return {k: v[0] for k, v in form.items()}

    def _authorised(self, request: web.Request, fields: Mapping[str, Any]) -> bool:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header else fields.get("token", "")
        return token == self.token

    async def _auth_test(self, request: web.Request) -> web.Response:
        fields = await self._fields(request)
        if not self._authorised(request, fields):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response({"ok": True, "user": "maintainer-bot", "team": "sandbox"})

    async def _post_message(self, request: web.Request) -> web.Response:
        self.attempts += 1
        fields = await self._fields(request)
        if (failed := self._failure(webhook=False)) is not None:
            return failed
        if not self._authorised(request, fields):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        channel = str(fields.get("channel") or "").lstrip("#")
        if not channel:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if channel not in self.channels:
            if not self.auto_create:
                return web.json_response({"ok": False, "error": "channel_not_found"})
            self.channels.add(channel)
        if not fields.get("text") and not fields.get("blocks"):
            return web.json_response({"ok": False, "error": "no_text"})
        message = {
            "channel": channel,
            "text": fields.get("text"),
            "blocks": fields.get("blocks"),
            "via": "api",
        }
        self.messages.append(message)
        ts = f"{len(self.messages)}.000100"
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": message})

    async def _webhook(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if (failed := self._failure(webhook=True)) is not None:
            return failed
        try:
            data = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(data, dict):
            return web.Response(status=400, text="invalid_payload")
        if not data.get("text") and not data.get("blocks"):
            return web.Response(status=400, text="no_text")
        self.messages.append(
            {
                "channel": None,
                "text": data.get("text"),
                "blocks": data.get("blocks"),
                "via": "webhook",
            }
        )
        return web.Response(text="ok")
