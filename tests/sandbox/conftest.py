from __future__ import annotations

import aiohttp
import pytest
from gidgethub.aiohttp import GitHubAPI

from bot.sandbox import SandboxGitHub, SandboxSlack


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
    return GitHubAPI(session, "sandbox-tests", oauth_token=github.token, base_url=github.url)
