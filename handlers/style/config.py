"""`[style]` in `.github/bot.toml`: who may ask for `/style`, what it fixes, who commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.config import ConfigError


@dataclass(frozen=True)
class StyleConfig:
    """`@bot /style`: ruff's fixes for a PR's Python files, pushed with the base branch's rules."""

    enabled: bool = True
    #: Pushing to someone's branch is a write in their name: admins only, as the reference.
    min_permission: Literal["read", "triage", "write", "maintain", "admin"] = "admin"
    #: Folders (or files) whose Python files are fixed; "" is the whole repository.
    paths: tuple[str, ...] = ("",)
    max_files: int = 1000
    #: Who the `Apply style fixes` commit is by.
    commit_name: str = "maintainer-bot"
    commit_email: str = "maintainer-bot@users.noreply.github.com"

    def validate(self, source: str, prefix: str) -> None:
        """What the types allow but the feature cannot use; `prefix` is `style.`."""
        if self.max_files < 1:
            raise ConfigError(f"{source}: '{prefix}max_files' must be at least 1")
        if not self.commit_name.strip() or "@" not in self.commit_email:
            raise ConfigError(f"{source}: '{prefix}commit_name' and 'commit_email' must be set")
