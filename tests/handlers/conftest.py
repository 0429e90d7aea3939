from __future__ import annotations

import pytest

from tests.support.checkout import make_checkout


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A real git checkout as the working directory, with no Slack credentials around."""
    repo = make_checkout(tmp_path / "repo")
    monkeypatch.chdir(repo)
    for name in ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    return repo
