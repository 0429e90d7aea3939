"""The bot wired to the sandbox GitHub and Slack, all on loopback: for tests and `make run`.

Everything is real: the bot's aiohttp server on a port, deliveries signed and posted over HTTP,
the bot's gidgethub and slack_sdk clients talking to the stand-ins, git repositories on disk.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.config import Settings
from bot.server import serving
from bot.server.app import create_app
from bot.server.runtime import Runtime
from bot.store import deliveries as deliveries_db
from bot.store import outbox as outbox_db
from bot.store import runs as runs_db
from tests.sandbox.github_server import SandboxGitHub
from tests.sandbox.slack_server import SandboxSlack
from tests.sandbox.webhooks import Sent, send_webhook


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Harness:
    def __init__(self, root: Path, *, settings: Settings | None = None) -> None:
        self.root = Path(root)
        self.github = SandboxGitHub(self.root / "github")
        self.slack = SandboxSlack()
        self.secret = "sandbox-" + secrets.token_hex(16)
        self._overrides = settings
        self.settings: Settings | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.runtime: Runtime | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self, *, port: int = 0, host: str = "127.0.0.1") -> None:
        await self.github.start()
        await self.slack.start()
        base = self._overrides or Settings()
        self.settings = replace(
            base,
            webhook_secret=self.secret,
            github_token=self.github.token,
            github_api_url=self.github.url,
            github_client_id=self.github.oauth_client_id,
            github_client_secret=self.github.oauth_client_secret,
            slack_bot_token=self.slack.token,
            slack_api_url=self.slack.api_url,
            database=base.database
            if self._overrides is not None
            else str(self.root / "bot.sqlite3"),
        )
        # A connection per delivery, as GitHub makes them: a kept-alive one that the bot's server
        # closes after a quiet spell would otherwise be reset under the next delivery.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        await self.start_bot(port=port, host=host)

    async def start_bot(self, *, port: int = 0, host: str = "127.0.0.1") -> None:
        """Starts (or restarts) the bot on the same database."""
        assert self.settings is not None
        if not port:
            port = _free_port(host)
        # Links in comments and statuses point at this bot; jobs run with this interpreter
        # (it has the model library's test dependencies) in folders of their own.
        self.settings = replace(
            self.settings,
            public_url=f"http://{host}:{port}",
            test_python=self.settings.test_python or sys.executable,
            job_work_dir=str(self.root / "jobs"),
            env_cache_dir=str(self.root / "envs"),
        )
        self.runtime = Runtime(self.settings)
        self._runner, self.url = await serving.start(
            create_app(self.settings, runtime=self.runtime), host, port
        )
        # The sandbox's own webhooks (GitHub Actions runs) go to this bot, signed as GitHub signs.
        self.github.webhook_target(f"{self.url}/webhook", self.secret)

    async def stop_bot(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        """Stops whatever was started; safe after a start that failed part-way."""
        await self.stop_bot()
        if self._session is not None:
            await self._session.close()
        await self.github.close()
        await self.slack.close()

    async def deliver(self, event: str, payload: dict[str, Any], **kwargs: Any) -> Sent:
        assert self._session is not None
        return await send_webhook(
            self._session, f"{self.url}/webhook", event, payload, self.secret, **kwargs
        )

    async def settle(self, within: float = 20.0) -> None:
        """Waits until every accepted delivery is finished and no outbox item is pending."""
        assert self.runtime is not None
        store = self.runtime.store
        async with asyncio.timeout(within):
            while True:
                depth = await store.call(deliveries_db.queue_depth)
                due = await store.call(outbox_db.next_outbox_due_at)
                in_hand = self.runtime.worker.busy
                if not depth and not in_hand and due is None:
                    return
                await asyncio.sleep(0.02)

    async def settle_runs(self, within: float = 60.0) -> None:
        """Waits until every job run has ended and its last change was reported to GitHub."""
        assert self.runtime is not None
        store = self.runtime.store
        async with asyncio.timeout(within):
            await self.settle()
            while True:
                if not await store.call(runs_db.unsettled_runs):
                    break
                await asyncio.sleep(0.05)
            await self.settle()  # what the reports queued (a Slack summary)

    async def deliveries(self) -> list[deliveries_db.Delivery]:
        assert self.runtime is not None
        return await self.runtime.store.call(
            lambda conn: deliveries_db.list_deliveries(conn, limit=1000)
        )

    async def outbox(self) -> list[outbox_db.OutboxItem]:
        assert self.runtime is not None
        return await self.runtime.store.call(lambda conn: outbox_db.list_outbox(conn, limit=1000))
