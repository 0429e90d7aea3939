"""Answers `@bot /help` on a pull request with what every feature does and who may use it."""

from __future__ import annotations

from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.commands import parse_commands
from bot.context import Context
from bot.github import GitHubAPI
from bot.help import Help, HelpCommand, render_markdown

router = Router()

HELP = Help(
    name="help",
    summary="Lists what the bot does on this repository.",
    trigger="a pull-request comment that mentions the bot",
    who="anyone",
    commands=(HelpCommand("@bot /help", "reply with this list"),),
)


def wants_help(payload: dict[str, Any], handle: str) -> bool:
    """Pure: whether this comment asks for help (on a PR, by a person, not the bot itself)."""
    if "pull_request" not in (payload.get("issue") or {}):
        return False
    if (payload.get("sender") or {}).get("type") == "Bot":
        return False
    body = (payload.get("comment") or {}).get("body")
    return any(command.name == "help" for command in parse_commands(body, handle))


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
