"""`[reviewers]` in `.github/bot.toml`: who is asked to review, and from which file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.config import ConfigError


@dataclass(frozen=True)
class ReviewersConfig:
    """Automatic reviewer requests."""

    enabled: bool = True
    #: A separate file from `.github/CODEOWNERS`, so GitHub's own auto-request stays off.
    owners_file: str = ".github/review-owners"
    #: How a path matches the owners file: GitHub's CODEOWNERS rules, or "reference", the
    #: simpler matching of the script Hugging Face transformers runs for its reviewer requests.
    semantics: Literal["github", "reference"] = "github"
    count: int = 2
    unavailable: tuple[str, ...] = ()
    max_open_reviews: int = 0  # 0 turns load balancing off
    branches: tuple[str, ...] = ()  # empty: the default branch only

    def validate(self, source: str, prefix: str) -> None:
        """What the types allow but the feature cannot use; `prefix` is `reviewers.`."""
        if self.count < 1:
            raise ConfigError(f"{source}: '{prefix}count' must be at least 1, got {self.count}")
        if self.max_open_reviews < 0:
            raise ConfigError(f"{source}: '{prefix}max_open_reviews' must not be negative")
        if not self.owners_file.strip():
            raise ConfigError(f"{source}: '{prefix}owners_file' must not be empty")
