"""Durability: deliveries answered 202 survive SIGKILL and are processed once after a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.kit.comments import marker
from tests.sandbox import SandboxGitHub, send_webhook

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/models"
SECRET = "crash-test-secret-0123456789"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _serve(github: SandboxGitHub, database: Path, port: int) -> subprocess.Popen:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(database.parent),
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_TOKEN": github.token,
        "GITHUB_API_URL": github.url,
        "BOT_DATABASE": str(database),
        "BOT_LOG_FORMAT": "json",
        "BOT_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    raise RuntimeError("the bot did not start")


def _bot_replies(github: SandboxGitHub) -> list[dict]:
    return [c for c in github.comments(REPO, 1) if "<!-- maintainer-bot:" in c["body"]]


@pytest.fixture
async def github(tmp_path):
    sandbox = SandboxGitHub(tmp_path / "github")
    await sandbox.start()
    sandbox.create_repo(REPO, files={"README.md": "x\n"})
    sandbox.commit(REPO, "feature", {"a.txt": "a\n"}, author="carol")
    sandbox.open_pull(REPO, "feature", author="carol")
    yield sandbox
    await sandbox.close()


async def test_sigkill_after_202_loses_nothing_and_repeats_nothing(github, tmp_path):
    database = tmp_path / "bot.sqlite3"
    port = _port()
    url = f"http://127.0.0.1:{port}/webhook"
    payloads = [
        github.issue_comment_payload(REPO, 1, f"@bot /help please ({i})", "carol")
        for i in range(40)
    ]
    server = await _serve(github, database, port)
    async with aiohttp.ClientSession() as session:
        sent = await asyncio.gather(
            *(send_webhook(session, url, "issue_comment", p, SECRET) for p in payloads)
        )
    server.send_signal(signal.SIGKILL)  # no chance to finish anything in hand
    server.wait()
    accepted = [s for s in sent if s.status == 202]
    assert len(accepted) == len(payloads)

    server = await _serve(github, database, _port())
    try:
        async with asyncio.timeout(30):
            while True:
                replies = [
                    c for c in github.comments(REPO, 1) if "<!-- maintainer-bot:" in c["body"]
                ]
                if len(replies) >= len(payloads):
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # room for a wrongly repeated reply to show up
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0  # a graceful stop
    replies = _bot_replies(github)
    for payload in payloads:
        tag = marker(f"help:{payload['comment']['id']}")
        assert sum(tag in reply["body"] for reply in replies) == 1
    assert len(replies) == len(payloads)


async def test_sigkill_with_many_pull_requests_in_flight_loses_nothing_and_repeats_nothing(
    tmp_path,
):
    sandbox = SandboxGitHub(tmp_path / "github")
    await sandbox.start()
    try:
        sandbox.create_repo(REPO, files={"README.md": "x\n"})
        numbers = []
        for i in range(12):
            sandbox.commit(REPO, f"feature-{i}", {f"f{i}.txt": "a\n"}, author="carol")
            numbers.append(sandbox.open_pull(REPO, f"feature-{i}", author="carol"))
        # Every PR's replies are slow to be answered, so many are in flight at the kill.
        payloads = [
            sandbox.issue_comment_payload(REPO, n, f"@bot /help ({k})", "carol")
            for k in range(4)
            for n in numbers
        ]
        database = tmp_path / "bot.sqlite3"
        port = _port()
        server = await _serve(sandbox, database, port)
        holds = [sandbox.hold_next("POST", rf"/issues/{n}/comments") for n in numbers]
        async with aiohttp.ClientSession() as session:
            sent = await asyncio.gather(
                *(
                    send_webhook(
                        session, f"http://127.0.0.1:{port}/webhook", "issue_comment", p, SECRET
                    )
                    for p in payloads
                )
            )
        assert [s.status for s in sent] == [202] * len(payloads)
        async with asyncio.timeout(20):
            while sum(h.reached.is_set() for h in holds) < len(numbers):
                await asyncio.sleep(0.02)  # one reply per PR under way, at the same time
        server.send_signal(signal.SIGKILL)
        server.wait()
        for hold in holds:
            hold.release()  # the killed process never hears the answer
        server = await _serve(sandbox, database, _port())
        try:
            async with asyncio.timeout(60):
                while sum(len(_replies(sandbox, n)) for n in numbers) < len(payloads):
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # room for a wrongly repeated reply to show up
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) == 0
        for payload in payloads:
            number = payload["issue"]["number"]
            tag = marker(f"help:{payload['comment']['id']}")
            assert sum(tag in c["body"] for c in _replies(sandbox, number)) == 1
    finally:
        await sandbox.close()


def _replies(github: SandboxGitHub, number: int) -> list[dict]:
    return [c for c in github.comments(REPO, number) if "<!-- maintainer-bot:" in c["body"]]
