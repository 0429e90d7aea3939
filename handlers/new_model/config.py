"""`[new_model]` in `.github/bot.toml`: where new-model alerts go, and where models live."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import ConfigError


@dataclass(frozen=True)
class NewModelConfig:
    """Slack alerts when a push to the default branch adds a model."""

    enabled: bool = True
    channel: str = "new-model-notification"
    models_dir: str = "model_lib/models"
    mention: tuple[str, ...] = ()  # Slack member ids, e.g. "U024BE7LH"

    def validate(self, source: str, prefix: str) -> None:
        """What the types allow but the feature cannot use; `prefix` is `new_model.`."""
        if not self.channel.strip():
            raise ConfigError(f"{source}: '{prefix}channel' must not be empty")
        if self.models_dir.strip("/") != self.models_dir or not self.models_dir:
            raise ConfigError(
                f"{source}: '{prefix}models_dir' must be a relative folder without"
                f" leading or trailing '/', got {self.models_dir!r}"
            )
