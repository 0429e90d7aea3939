"""The features the bot runs, composed explicitly (no import-time registries).

A feature is a package `handlers/<feature>/` exporting a gidgethub `router`, its `HELP`, and
optionally `register_cli(subparsers)` for its local commands. Adding a feature means writing that
package and adding it to `FEATURES`; nothing else in `bot/` changes.
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import TYPE_CHECKING

from gidgethub.routing import Router

import handlers.help
import handlers.new_model
import handlers.reviewers
import handlers.slow_ci
import handlers.style
from bot.jobs.runners import actions
from bot.kit.help import Help

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.jobs.runners import Runner
    from bot.jobs.system import JobSystem
    from bot.kit.context import Services

#: In this order `/help` lists them and `bot --help` shows their commands.
FEATURES: tuple[ModuleType, ...] = (
    handlers.help,
    handlers.reviewers,
    handlers.new_model,
    handlers.slow_ci,
    handlers.style,
)


def combined_router(features: tuple[ModuleType, ...] | None = None) -> Router:
    """The features' routers, and the Actions runner's (it follows its workflow runs)."""
    return Router(*(feature.router for feature in features or FEATURES), actions.router)


def all_help(features: tuple[ModuleType, ...] | None = None) -> tuple[Help, ...]:
    return tuple(feature.HELP for feature in features or FEATURES)


def register_feature_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    features: tuple[ModuleType, ...] | None = None,
) -> None:
    """Lets each feature add its local commands (`bot reviewers`, ...) to `bot`'s parser."""
    for feature in features or FEATURES:
        register = getattr(feature, "register_cli", None)
        if register is not None:
            register(sub)


def register_feature_jobs(
    jobs: JobSystem, services: Services, features: tuple[ModuleType, ...] | None = None
) -> None:
    """Lets each feature with long work (`run-slow`) say how its runs are reported."""
    for feature in features or FEATURES:
        register = getattr(feature, "register_jobs", None)
        if register is not None:
            register(jobs, services)


def feature_runners(
    settings: Settings, features: tuple[ModuleType, ...] | None = None
) -> dict[str, Runner]:
    """Runners a feature brings for its own jobs (`/style`'s git-and-ruff runner)."""
    found: dict[str, Runner] = {}
    for feature in features or FEATURES:
        make = getattr(feature, "runners", None)
        if make is not None:
            found.update(make(settings))
    return found
