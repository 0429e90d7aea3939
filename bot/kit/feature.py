"""The contract between a feature and the core: everything the core needs to know about one.

Each `handlers/<feature>/` exports one `FEATURE = Feature(...)`, and `handlers.FEATURES` lists
them. The core derives from that list alone what it used to be told in several places: the
combined router, `/help`, the `bot` commands, the job kinds and their runners, `RepoConfig` and
`bot config show`, and the permissions and events `bot doctor` checks and `app.yml` asks for.
So a new feature is one folder and one line, and nothing in `bot/` names it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from gidgethub.routing import Router

from bot.kit.help import Help

if TYPE_CHECKING:
    from bot.config import RepoConfig, Settings
    from bot.jobs.runners.base import Runner
    from bot.jobs.system import JobSystem
    from bot.kit.context import Services

#: GitHub's levels of an App permission, lowest first.
Level = Literal["read", "write", "admin"]
SubParsers = argparse._SubParsersAction  # what a feature's `cli` adds its commands to


@dataclass(frozen=True)
class PermissionNeed:
    """An App permission a feature needs: `bot doctor` names the feature and the reason when an
    installation lacks it, and `app.yml` must ask for it at the highest level any feature needs."""

    permission: str  # as `app.yml`'s `default_permissions` spells it, e.g. "pull_requests"
    level: Level
    why: str


@dataclass(frozen=True)
class EventNeed:
    """A webhook event a feature reacts to, with what for (`bot doctor` says it when missing)."""

    event: str  # as `app.yml`'s `default_events` spells it, e.g. "issue_comment"
    why: str


@dataclass(frozen=True)
class Feature:
    """One feature as the core sees it. Only `name`, `title` and `router` are required."""

    #: The feature's id, and its section in `.github/bot.toml` when it has a `config`.
    name: str
    #: How people know it, as `bot doctor` names it ("slow tests").
    title: str
    router: Router
    #: What `/help` says about it; None keeps it off the list.
    help: Help | None = None
    #: Its `bot.toml` section: a frozen dataclass whose every field has a default, optionally
    #: with `validate(source, prefix)` raising `ConfigError` for values its types allow.
    config: type | None = None
    permissions: tuple[PermissionNeed, ...] = ()
    events: tuple[EventNeed, ...] = ()
    #: Whether a repository's config uses it; None: its section's `enabled` (always, without).
    enabled: Callable[[RepoConfig], bool] | None = None
    #: Adds its local commands (`bot reviewers`, ...) to `bot`'s parser.
    cli: Callable[[SubParsers[argparse.ArgumentParser]], None] | None = None
    #: Tells the job system how its runs are reported (and requested, and authorised).
    jobs: Callable[[JobSystem, Services], None] | None = None
    #: Runners it brings for its own jobs, by name.
    runners: Callable[[Settings], Mapping[str, Runner]] | None = None
    #: The `kind`s of the runs it creates on the job system.
    job_kinds: tuple[str, ...] = ()

    def is_enabled(self, config: RepoConfig) -> bool:
        """Whether a repository with this config uses the feature (doctor's "not enabled")."""
        if self.enabled is not None:
            return self.enabled(config)
        if self.config is None:
            return True
        section: Any = getattr(config, self.name)
        return bool(getattr(section, "enabled", True))
