"""Fixtures of the sandbox tests: the stand-ins on loopback and the real clients that use them."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from pathlib import Path

import aiohttp
import pytest
from gidgethub.aiohttp import GitHubAPI

from tests.sandbox import SandboxGitHub, SandboxSlack

REPO = "acme/models"
GPT2 = "model_lib/models/gpt2/modeling_gpt2.py"


@pytest.fixture
async def github(tmp_path):
    sandbox = SandboxGitHub(tmp_path / "github")
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.fixture
async def slack():
    sandbox = SandboxSlack()
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def gh(github, session):
    """gidgethub in token mode, as `GITHUB_TOKEN` runs the bot."""
    return GitHubAPI(session, "sandbox-tests", oauth_token=github.token, base_url=github.url)


@pytest.fixture
def repo(github):
    github.create_repo(
        REPO,
        files={"README.md": "hello\n", GPT2: "x = 1\n"},
        collaborators={"alice": "write", "bob": "admin"},
    )
    return REPO


class Git:
    """git as an outside contributor runs it: a clone of a sandbox repository."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_AUTHOR_NAME": "outsider",
            "GIT_AUTHOR_EMAIL": "outsider@example.com",
            "GIT_COMMITTER_NAME": "outsider",
            "GIT_COMMITTER_EMAIL": "outsider@example.com",
        }

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd or self.home,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout.strip()

    async def net(self, *args: str, cwd: Path | None = None, token: str | None = None) -> str:
        """git that talks to the sandbox over HTTP: off the event loop the sandbox answers on,
        with `token` as GitHub takes it (HTTP Basic, the token as password) when given."""
        if token is not None:
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            args = ("-c", f"http.extraHeader=Authorization: Basic {basic}", *args)
        return await asyncio.to_thread(self, *args, cwd=cwd)


@pytest.fixture
def outside_git(tmp_path):
    home = tmp_path / "outside"
    home.mkdir()
    return Git(home)
