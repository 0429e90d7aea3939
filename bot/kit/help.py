"""What each feature tells people about itself, served at `GET /help` and on `@bot /help`.

Each handler module declares its own `HELP` next to its code, so the help cannot drift from
what the module does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class HelpCommand:
    usage: str
    description: str


@dataclass(frozen=True)
class Help:
    name: str
    summary: str
    who: str
    commands: tuple[HelpCommand, ...] = ()
    trigger: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "summary": self.summary,
            "trigger": self.trigger,
            "who": self.who,
            "commands": [{"usage": c.usage, "description": c.description} for c in self.commands],
        }


def render_markdown(helps: Iterable[Help], handle: str) -> str:
    lines = [f"**What @{handle} does here**", ""]
    for item in helps:
        lines.append(f"- **{item.name}**: {item.summary}")
        if item.trigger:
            lines.append(f"  - when: {item.trigger}")
        for command in item.commands:
            usage = command.usage.replace("@bot", f"@{handle}")
            lines.append(f"  - `{usage}`: {command.description}")
        lines.append(f"  - who: {item.who}")
    return "\n".join(lines)
