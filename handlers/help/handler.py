"""Answers `@bot /help` on a pull request with what every feature does and who may use it.

The answer is built from every feature's `HELP` (`ctx.help`), so it lists what is composed in
`bot.server.routing` and nothing else. One answer per comment, ever: a redelivery posts nothing.
"""

from __future__ import annotations

from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI
from bot.kit.context import Context
from bot.kit.help import Help, HelpCommand, render_markdown
from handlers.help.plan import wants_help

router = Router()

HELP = Help(
    name="help",
    summary="Lists what the bot does on this repository.",
    trigger="a pull-request comment that mentions the bot",
    who="anyone",
    commands=(HelpCommand("@bot /help", "reply with this list"),),
)


@router.register("issue_comment", action="created")
async def on_comment(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    if not wants_help(event.data, ctx.settings.handle):
        return
    comment_id = event.data["comment"]["id"]
    posted = await ctx.comment_once(
        event.data["issue"]["comments_url"],
        f"help:{comment_id}",
        render_markdown(ctx.help, ctx.settings.handle),
    )
    if not posted:
        ctx.log.info("help for comment %s was answered before", comment_id)
