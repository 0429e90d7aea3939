from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from tests.sandbox.harness import Harness

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def harness(tmp_path):
    settings = Settings(database=str(tmp_path / "bot.sqlite3"), retry_base_seconds=0.05)
    opened = Harness(tmp_path, settings=settings)
    await opened.start()
    yield opened
    await opened.close()


#: The admin token of `pages_bot`, for scripts' `Authorization: Bearer`.
PAGES_ADMIN = "admin-token-" + "z" * 24


@pytest.fixture
async def pages_bot(tmp_path):
    """A bot whose pages are the subject: an operator (`ops`), an admin token, a private
    repository `maint` may read, a public one, and a signed-in stranger; the job system
    stopped, so seeded runs stay as written."""
    settings = Settings(
        database=str(tmp_path / "bot.sqlite3"),
        retry_base_seconds=0.05,
        operators=("ops",),
        admin_token=PAGES_ADMIN,
    )
    harness = Harness(tmp_path, settings=settings)
    await harness.start()
    harness.github.create_repo(
        "acme/secret",
        files={"README.md": "x\n"},
        private=True,
        collaborators={"maint": "read", "ops": "write"},
    )
    harness.github.create_repo("acme/open", files={"README.md": "x\n"})
    harness.github.add_user("stranger")
    await harness.runtime.jobs.stop()
    yield harness
    await harness.close()
