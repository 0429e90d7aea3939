"""`bot serve` in a process of its own, as deployed, against the sandbox GitHub of the
benchmark's process: what the latency and scale benchmarks measure is that process alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.sandbox import SandboxGitHub, send_webhook  # noqa: E402

SECRET = "bench-webhook-secret-0123456789"  # noqa: S105 (a throwaway for loopback)


class Bot:
    """`bot serve` in a process of its own, as deployed, talking to the sandbox GitHub here."""

    def __init__(
        self,
        github: SandboxGitHub,
        root: Path,
        worker_concurrency: int,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.github = github
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_TOKEN": github.token,
            "GITHUB_API_URL": github.url,
            "BOT_DATABASE": str(root / "bot.sqlite3"),
            "BOT_PUBLIC_URL": self.url,
            "BOT_TEST_PYTHON": sys.executable,
            "BOT_JOB_DIR": str(root / "jobs"),
            "BOT_JOB_CONCURRENCY": "1",  # the runs the comments start go on, one at a time
            "BOT_WORKER_CONCURRENCY": str(worker_concurrency),
            "BOT_LOG_LEVEL": "WARNING",
            "BOT_LOG_FORMAT": "json",
            **(extra_env or {}),
        }
        command = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
        )
        self.session: aiohttp.ClientSession | None = None

    async def ready(self) -> None:
        # A connection per delivery, as GitHub makes them: a kept-alive one the server closes
        # after a quiet spell would otherwise be reset under the next delivery.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with self.session.get(f"{self.url}/healthz") as answer:
                        if answer.status == 200:
                            return
                await asyncio.sleep(0.05)

    async def deliver(self, event: str, payload: dict) -> None:
        assert self.session is not None
        sent = await send_webhook(self.session, f"{self.url}/webhook", event, payload, SECRET)
        assert sent.status == 202, sent

    def cpu_seconds(self) -> float:
        """User and system CPU the bot's process has used so far (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        self.process.terminate()
        await asyncio.to_thread(self.process.wait)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
