"""The contract between a feature and the core: everything the core needs to know about one.

Each `handlers/<feature>/` exports one `FEATURE = Feature(...)`, and `handlers.FEATURES` lists
them. The core derives from that list alone what it used to be told in several places: the
combined router, `/help`, the `bot` commands, the job kinds and their runners, `RepoConfig` and
`bot config show`, and the permissions and events `bot doctor` checks and `app.yml` asks for.
So a new feature is one folder and one line, and nothing in `bot/` names it.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
class ScheduleSpec:
    """A schedule a repository's config asks a feature for: its name (unique within the
    feature and repository) and a five-field cron in UTC."""

    name: str
    cron: str


@dataclass(frozen=True)
class Fire:
    """One firing of a schedule, handed to its feature's `on_fire`. `id` is unique for ever,
    and the same fire can be handed over a second time (after a restart that interrupted it),
    so a feature keys what it starts on it."""

    id: int
    feature: str
    repo: str
    name: str
    installation_id: int | None
    #: The time it was due (a manual fire: when it was asked for), and when it was claimed.
    due_at: float
    fired_at: float
    manual: bool


@dataclass(frozen=True)
class FireResult:
    """What a fire came to: the run it started, or why none (shown beside the schedule)."""

    run_id: int | None
    note: str = ""


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
    #: Whether its section is an array of tables (`[[scheduled_ci]]`, any number of entries):
    #: `config` is then one entry's class, which needs no default for a required key, offers
    #: `example()` for `bot config show`, and may check the whole list in
    #: `validate_entries(entries, source, name)`; `RepoConfig` holds a tuple of entries.
    config_array: bool = False
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
    #: The schedules a repository's config asks for; the scheduler keeps them in step with the
    #: default branch's `bot.toml`.
    schedules: Callable[[RepoConfig], Sequence[ScheduleSpec]] | None = None
    #: Called when one of its schedules fires (or an operator fires it by hand); not called
    #: while the run the schedule's previous fire started is still going.
    on_fire: Callable[[Services, Fire], Awaitable[FireResult]] | None = None

    def is_enabled(self, config: RepoConfig) -> bool:
        """Whether a repository with this config uses the feature (doctor's "not enabled")."""
        if self.enabled is not None:
            return self.enabled(config)
        if self.config is None:
            return True
        section: Any = getattr(config, self.name)
        if self.config_array:  # used once it has an entry
            return bool(section)
        return bool(getattr(section, "enabled", True))
