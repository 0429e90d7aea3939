"""The feature modules the bot runs, composed explicitly (no import-time registries).

Adding a feature means writing `handlers/<feature>.py` with a `router` and a `HELP`, and adding
the module here.
"""

from __future__ import annotations

from types import ModuleType

from gidgethub.routing import Router

from bot.help import Help
from handlers import help as help_handler
from handlers import new_model, reviewers


def handler_modules() -> tuple[ModuleType, ...]:
    return (help_handler, reviewers, new_model)


def combined_router(modules: tuple[ModuleType, ...] | None = None) -> Router:
    return Router(*(module.router for module in modules or handler_modules()))


def all_help(modules: tuple[ModuleType, ...] | None = None) -> tuple[Help, ...]:
    return tuple(module.HELP for module in modules or handler_modules())
