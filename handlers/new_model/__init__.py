"""New-model alerts: a Slack message when a merge adds a model to the library."""

from bot.kit.feature import EventNeed, Feature, PermissionNeed
from handlers.new_model.cli import register_cli
from handlers.new_model.config import NewModelConfig
from handlers.new_model.handler import HELP, router

FEATURE = Feature(
    name="new_model",
    title="new-model alerts",
    router=router,
    help=HELP,
    config=NewModelConfig,
    permissions=(PermissionNeed("contents", "read", "compare and commits"),),
    events=(EventNeed("push", "pushes to the default branch"),),
    cli=register_cli,
)

__all__ = ["FEATURE"]
