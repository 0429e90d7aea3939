"""`[[scheduled_ci]]` in `.github/bot.toml`: slow runs of the default branch on a schedule.

An array of tables, one per schedule, so a repository can have a nightly run of every model
and a weekly one of the multi-GPU tests side by side. Every value is checked where it is read,
so `bot config check` names the key of a bad cron or folder pattern rather than the bot finding
it at fire time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from bot.config import ConfigError
from bot.jobs.runners.base import machine_types_problem
from bot.kit.cron import Cron, CronError, parse_cron
from handlers.scheduled_ci.plan import MACHINE_TYPES, check_pattern

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: A GitHub login (a bot's too: `name[bot]`).
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")
#: A Slack member id: `U…`, or `W…` on Enterprise Grid.
SLACK_MEMBER = re.compile(r"[UW][A-Z0-9]{2,20}")
#: A channel's name (`ci-daily`, `#ci-daily`) or id (`C024BE91L`).
_CHANNEL = re.compile(r"#?[A-Za-z0-9._-]{1,80}")
MAX_FOLDER_PATTERNS = 100
MAX_MENTIONS = 500
MAX_RERUNS = 10
MAX_JOB_TIMEOUT_SECONDS = 24 * 3600
#: Builds the error for a key of the entry being checked.
_Fail = Callable[[str, str], ConfigError]


@dataclass(frozen=True)
class Schedule:
    """One `[[scheduled_ci]]` entry: when it runs, what it tests, whom it tells."""

    #: How its runs are named on pages and in Slack; unique within the file.
    name: str
    #: When, in UTC: a standard five-field cron (`17 2 * * *` is 02:17 every day).
    cron: str
    #: Test folders under `tests/`, as globs (`models/*`, `quantization/bnb`); empty: every
    #: model folder and `quantization/*`.
    folders: tuple[str, ...] = ()
    machine_types: tuple[str, ...] = MACHINE_TYPES
    #: The Slack channel its reports go to; empty: none.
    channel: str = ""
    #: Search the commits since the previous run for the one that broke each new failure.
    bisect: bool = True
    #: Re-runs of a new failure at the same commit before it counts as failing, not flaky.
    reruns: int = 3
    #: Comment on the pull request of a commit found to break tests.
    notify_pr: bool = False
    #: GitHub login → Slack member id, so the report mentions a breaking commit's author.
    mentions: Mapping[str, str] = field(default_factory=dict)
    job_timeout_seconds: int = 7200
    #: Also measure the head with the repository's `[benchmarks] command` at each fire: the
    #: daily benchmark of the default branch, recorded and compared like a push's.
    benchmarks: bool = False

    @classmethod
    def example(cls) -> Schedule:
        """The entry `bot config show` writes out (commented) for a person to copy."""
        return cls(
            name="nightly",
            cron="17 2 * * *",
            folders=("models/*",),
            channel="ci-daily",
            mentions={"octocat": "U024BE7LH"},
        )

    @cached_property
    def parsed_cron(self) -> Cron:
        return parse_cron(self.cron)

    def next_fire(self, after: float) -> float:
        """The first fire time strictly after `after` (epoch seconds, UTC)."""
        return self.parsed_cron.next_after(after)

    def mention_for(self, login: str) -> str | None:
        """The Slack member id for a GitHub login (logins are case-insensitive)."""
        folded = login.lower()
        return next((v for k, v in self.mentions.items() if k.lower() == folded), None)

    def validate(self, source: str, prefix: str) -> None:
        """What the types allow but a schedule cannot use; `prefix` is `scheduled_ci[1].`."""

        def fail(key: str, problem: str) -> ConfigError:
            return ConfigError(f"{source}: '{prefix}{key}' {problem}")

        if not _NAME.fullmatch(self.name):
            raise fail("name", f"must be 1 to 64 of A-Z a-z 0-9 _ . -, got {self.name!r}")
        try:
            parse_cron(self.cron)
        except CronError as exc:
            raise fail("cron", f"is not a five-field cron in UTC: {exc}") from None
        if len(self.folders) > MAX_FOLDER_PATTERNS:
            raise fail("folders", f"takes at most {MAX_FOLDER_PATTERNS} patterns")
        for pattern in self.folders:
            problem = check_pattern(pattern)
            if problem is not None:
                raise fail(
                    "folders",
                    f'takes globs under tests/ (like "models/*"), got {pattern!r}: {problem}',
                )
        problem = machine_types_problem(self.machine_types)
        if problem is not None:
            raise fail("machine_types", problem)
        if self.channel and not _CHANNEL.fullmatch(self.channel):
            raise fail("channel", f"must be a Slack channel's name or id, got {self.channel!r}")
        if not 1 <= self.reruns <= MAX_RERUNS:
            raise fail("reruns", f"must be between 1 and {MAX_RERUNS}, got {self.reruns}")
        if not 1 <= self.job_timeout_seconds <= MAX_JOB_TIMEOUT_SECONDS:
            raise fail(
                "job_timeout_seconds",
                f"must be between 1 and {MAX_JOB_TIMEOUT_SECONDS}, got {self.job_timeout_seconds}",
            )
        self._validate_mentions(fail)

    def _validate_mentions(self, fail: _Fail) -> None:
        if len(self.mentions) > MAX_MENTIONS:
            raise fail("mentions", f"takes at most {MAX_MENTIONS} logins")
        seen: set[str] = set()
        for login, member in self.mentions.items():
            if not _LOGIN.fullmatch(login):
                raise fail("mentions", f"takes GitHub logins as keys, got {login!r}")
            if login.lower() in seen:
                raise fail("mentions", f"names {login!r} twice (logins ignore case)")
            seen.add(login.lower())
            if not SLACK_MEMBER.fullmatch(member):
                raise fail(
                    f"mentions.{login}",
                    f'must be a Slack member id (like "U024BE7LH"), got {member!r}',
                )

    @staticmethod
    def validate_entries(entries: Sequence[Schedule], source: str, name: str) -> None:
        """Names identify a schedule's runs and fire times: two entries of one name would
        share them."""
        seen: dict[str, int] = {}
        for number, entry in enumerate(entries, 1):
            if entry.name in seen:
                raise ConfigError(
                    f"{source}: '{name}[{number}].name' {entry.name!r} is already the name of"
                    f" {name}[{seen[entry.name]}]"
                )
            seen[entry.name] = number
