from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.sandbox.harness import Harness

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def harness(tmp_path):
    settings = Settings(database=str(tmp_path / "bot.sqlite3"), retry_base_seconds=0.05)
    opened = Harness(tmp_path, settings=settings)
    await opened.start()
    yield opened
    await opened.close()
