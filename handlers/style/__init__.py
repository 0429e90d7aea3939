"""`@bot /style`: ruff's fixes committed and pushed to the pull request, never running its code."""

from bot.kit.feature import EventNeed, Feature, PermissionNeed
from handlers.style.cli import register_cli
from handlers.style.config import StyleConfig
from handlers.style.handler import HELP, KIND, register_jobs, router
from handlers.style.runner import runners

FEATURE = Feature(
    name="style",
    title="/style",
    router=router,
    help=HELP,
    config=StyleConfig,
    permissions=(
        PermissionNeed("contents", "write", "the `Apply style fixes` commit"),
        PermissionNeed("pull_requests", "read", "the pull request's head"),
        PermissionNeed("issues", "write", "replies to @bot /style"),
    ),
    events=(EventNeed("issue_comment", "@bot /style"),),
    cli=register_cli,
    jobs=register_jobs,
    runners=runners,
    job_kinds=(KIND,),
)

__all__ = ["FEATURE"]
