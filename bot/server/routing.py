"""The features the bot runs, composed from their `Feature`s (no import-time registries).

Each feature is a package `handlers/<feature>/` exporting `FEATURE` (`bot.kit.feature.Feature`);
`handlers.FEATURES` lists them. Everything here is derived from that list, so adding a feature
means writing its package and adding it there; nothing in `bot/` changes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gidgethub.routing import Router

from bot.kit.feature import Feature
from bot.kit.help import Help
from handlers import FEATURES

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.jobs.runners import Runner
    from bot.jobs.system import JobSystem
    from bot.kit.context import Services

__all__ = [
    "FEATURES",
    "all_help",
    "combined_router",
    "feature_runners",
    "register_feature_commands",
    "register_feature_jobs",
]


def combined_router(features: Sequence[Feature] | None = None) -> Router:
    """Every feature's router as one: the worker calls each callback it names on its own."""
    return Router(*(feature.router for feature in features or FEATURES))


def all_help(features: Sequence[Feature] | None = None) -> tuple[Help, ...]:
    """What `/help` and `GET /help` list, in the features' order."""
    return tuple(feature.help for feature in features or FEATURES if feature.help is not None)


def register_feature_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    features: Sequence[Feature] | None = None,
) -> None:
    """Lets each feature add its local commands (`bot reviewers`, ...) to `bot`'s parser."""
    for feature in features or FEATURES:
        if feature.cli is not None:
            feature.cli(sub)


def register_feature_jobs(
    jobs: JobSystem, services: Services, features: Sequence[Feature] | None = None
) -> None:
    """Lets each feature with long work (`run-slow`) say how its runs are reported."""
    for feature in features or FEATURES:
        if feature.jobs is not None:
            feature.jobs(jobs, services)


def feature_runners(
    settings: Settings, features: Sequence[Feature] | None = None
) -> dict[str, Runner]:
    """Runners a feature brings for its own jobs (`/style`'s git-and-ruff runner)."""
    found: dict[str, Runner] = {}
    for feature in features or FEATURES:
        if feature.runners is not None:
            found.update(feature.runners(settings))
    return found
