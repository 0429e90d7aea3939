"""`@bot /help`: what every feature does on this repository, and who may use it."""

from bot.kit.feature import EventNeed, Feature, PermissionNeed
from handlers.help.handler import HELP, router

FEATURE = Feature(
    name="help",
    title="@bot commands",
    router=router,
    help=HELP,
    permissions=(PermissionNeed("issues", "write", "replies to @bot commands"),),
    events=(EventNeed("issue_comment", "@bot commands"),),
)

__all__ = ["FEATURE"]
