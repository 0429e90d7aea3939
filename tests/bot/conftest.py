from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.server.app import create_app
from bot.server.runtime import Runtime
from tests.support.webhooks import SECRET


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        webhook_secret=SECRET,
        github_token="ghs_test_token_not_real",
        github_api_url="http://127.0.0.1:9",  # nothing listens: tests that reach it fail loudly
        database=str(tmp_path / "bot.sqlite3"),
        retry_base_seconds=0.01,
        max_attempts=3,
    )


@pytest.fixture
def make_client(aiohttp_client: Any, settings: Settings) -> Callable[..., Any]:
    """A test client for the real app, optionally with features of its own (`module(router)`)."""

    async def factory(*features: Any, settings_: Settings | None = None) -> Any:
        s = settings_ or settings
        runtime = Runtime(s, features=features or None)
        client = await aiohttp_client(create_app(s, runtime=runtime))
        client.runtime = runtime
        return client

    return factory
