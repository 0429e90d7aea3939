"""What the local commands share: their error type, the repo config on disk, the origin's URL.

The bot's own commands (`bot.ops.cli`) and each feature's local command (`handlers.<feature>.cli`)
import these, so a feature's command reads a config file and fails the same way as the bot's.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bot.clients.git import GitError, run_git
from bot.config import CONFIG_PATH, RepoConfig, parse_repo_config


class UsageError(Exception):
    """A mistake in how the command was called or in its inputs."""


def read_config_file(path: str) -> RepoConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    return parse_repo_config(text, source=path)


def local_config(path: str | None) -> RepoConfig:
    """The given config file, else the checkout's own, else the defaults."""
    if path:
        return read_config_file(path)
    if Path(CONFIG_PATH).exists():
        return read_config_file(CONFIG_PATH)
    return RepoConfig()


def local_python() -> str:
    """The interpreter local commands run a checkout's tests or benchmarks with:
    `BOT_TEST_PYTHON` (a name on PATH or a path), else the one running `bot`."""
    value = os.environ.get("BOT_TEST_PYTHON", "").strip()
    if not value:
        return sys.executable
    found = shutil.which(value) if "/" not in value else str(Path(value).expanduser().absolute())
    if found is None or not os.access(found, os.X_OK):
        raise UsageError(f"BOT_TEST_PYTHON={value!r} is not an interpreter here")
    return found


def repo_url() -> str:
    """The origin's https URL, for links; empty when there is no GitHub-like origin."""
    try:
        remote = run_git(["remote", "get-url", "origin"]).strip()
    except GitError:
        return ""
    if remote.startswith("git@github.com:"):
        remote = "https://github.com/" + remote.removeprefix("git@github.com:")
    return remote.removesuffix(".git") if remote.startswith("https://") else ""
