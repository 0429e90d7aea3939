"""Finds `@bot /command args` in comment bodies, the way people actually write them.

Quoted replies (`> @bot /style`) and code blocks quote someone else's command and must not run it
again; a mention inside a word (`mail@bot`) is not a command either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]


@lru_cache(maxsize=8)
def _pattern(handle: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<![\w@/-])@{re.escape(handle)}\s+/([a-z][a-z0-9_-]*)(?![\w/-])([^\n]*)",
        re.IGNORECASE,
    )


def parse_commands(body: str | None, handle: str) -> list[Command]:
    """Every command addressed to `@handle` in a comment body, in the order written."""
    handle = handle.lstrip("@")
    if not body or f"@{handle.lower()}" not in body.lower():
        return []  # the common case, and long comments are common: no line-by-line scan
    pattern = _pattern(handle)
    commands: list[Command] = []
    in_fence = False
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence or stripped.startswith(">"):
            continue
        for match in pattern.finditer(line):
            commands.append(Command(match.group(1).lower(), tuple(match.group(2).split())))
    return commands
