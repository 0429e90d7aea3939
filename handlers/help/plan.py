"""Whether a comment asks the bot for help: pure, so every case is a one-line test."""

from __future__ import annotations

from typing import Any

from bot.kit.commands import parse_commands


def wants_help(payload: dict[str, Any], handle: str) -> bool:
    """On a pull request, by a person (never a bot, the bot itself included), `@bot /help`."""
    if "pull_request" not in (payload.get("issue") or {}):
        return False
    if (payload.get("sender") or {}).get("type") == "Bot":
        return False
    body = (payload.get("comment") or {}).get("body")
    return any(command.name == "help" for command in parse_commands(body, handle))
