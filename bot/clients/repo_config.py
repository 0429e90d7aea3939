"""The served repository's `.github/bot.toml`, read from its default branch and cached.

Read from the default branch only: a pull request must not change how the bot treats that same
pull request. The cache is dropped when the default branch receives a push, and also expires on
its own in case a push event is lost.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field

import gidgethub

from bot.clients.github import GitHubAPI
from bot.config import CONFIG_PATH, ConfigError, RepoConfig, parse_repo_config

log = logging.getLogger("bot.config")


@dataclass
class RepoConfigCache:
    ttl: float = 600.0
    override: RepoConfig | None = None  # a local file given on the command line wins
    _entries: dict[str, tuple[float, RepoConfig]] = field(default_factory=dict)

    async def get(self, gh: GitHubAPI, repo: str, ref: str) -> RepoConfig:
        if self.override is not None:
            return self.override
        cached = self._entries.get(repo)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        text = await fetch_text(gh, repo, CONFIG_PATH, ref)
        config = RepoConfig() if text is None else parse_repo_config(text, source=CONFIG_PATH)
        self._entries[repo] = (time.monotonic() + self.ttl, config)
        return config

    def invalidate(self, repo: str) -> None:
        if self._entries.pop(repo, None) is not None:
            log.info("configuration of %s will be read again", repo)


async def fetch_text(gh: GitHubAPI, repo: str, path: str, ref: str) -> str | None:
    """A file's text at `ref` through the contents API; None when the file does not exist.

    A file that is not UTF-8 is a configuration error (`ConfigError`), as invalid TOML is: a
    person must fix it, and no retry of the delivery can.
    """
    try:
        answer = await gh.getitem(
            f"/repos/{repo}/contents/{{+path}}{{?ref}}",
            url_vars={"path": path, "ref": ref},
        )
    except gidgethub.BadRequest as exc:
        if exc.status_code == 404:
            return None
        raise
    if not isinstance(answer, dict) or answer.get("type", "file") != "file":
        raise ValueError(f"{repo}:{path} at {ref} is not a file")
    content = answer.get("content") or ""
    return decode_text(base64.b64decode(content), f"{repo}:{path}")


def decode_text(data: bytes, source: str) -> str:
    """`data` as UTF-8 text, else a `ConfigError` naming `source` and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise ConfigError(
            f"{source}: not UTF-8 text (byte 0x{bad:02x} at offset {exc.start})"
        ) from None
