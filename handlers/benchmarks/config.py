"""`[benchmarks]` in `.github/bot.toml`: the command that measures the repository, and how its
results are judged.

The command is an argv list, never a shell line: the bot runs it as given, on the pull request's
code, under the same confinement as the slow tests. It writes its metrics to the file named by
the `{output}` placeholder rather than to its output, so what it prints (progress, warnings, a
table for people) never has to be parsed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.config import ConfigError
from bot.jobs.runners.actions import BENCHMARK_WORKFLOW, WORKFLOW_FILE
from bot.jobs.runners.base import benchmark_argv, machine_types_problem

#: The word in `command` the path of the metrics file replaces (inside a word too:
#: `--json={output}`).
OUTPUT = "{output}"
#: A first word of `python` means the test environment's interpreter, not whichever `python`
#: the PATH finds first.
PYTHON = "python"
MAX_WORDS = 64
MAX_WORD_CHARS = 4096
MAX_REPEATS = 50
MAX_TIMEOUT_SECONDS = 24 * 3600
#: A channel's name (`ci-benchmarks`, `#ci-benchmarks`) or id (`C024BE91L`).
_CHANNEL = re.compile(r"#?[A-Za-z0-9._-]{1,80}")


@dataclass(frozen=True)
class BenchmarksConfig:
    """Benchmarks of pull requests and the default branch; off while `command` is empty."""

    #: The benchmark's argv; `{output}` is replaced by the path of the JSON file it writes
    #: (github-action-benchmark's custom format or pytest-benchmark's), a first word `python`
    #: by the test environment's interpreter.
    command: tuple[str, ...] = ()
    machine_types: tuple[str, ...] = ("single-gpu",)
    #: Runs per commit: the spread of the repeats is the noise a change must exceed.
    repeats: int = 5
    #: A change smaller than this fraction of the base (0.05: 5%) is `no change` however
    #: clear it is.
    threshold: float = 0.05
    #: The Slack channel told about a regression on the default branch; empty: none.
    channel: str = ""
    #: A regression makes a pull request's check run fail rather than `neutral`.
    fail_on_regression: bool = False
    #: Per run of the command.
    timeout_seconds: int = 3600
    #: With `[slow_ci] runner = "github-actions"`: the workflow each benchmark job dispatches
    #: (in `.github/workflows/`, on the default branch; the bot's own is the model).
    workflow: str = BENCHMARK_WORKFLOW

    def validate(self, source: str, prefix: str) -> None:
        """What the types allow but a benchmark cannot use; `prefix` is `benchmarks.`."""

        def fail(key: str, problem: str) -> ConfigError:
            return ConfigError(f"{source}: '{prefix}{key}' {problem}")

        problem = command_problem(self.command)
        if problem is not None:
            raise fail("command", problem)
        problem = machine_types_problem(self.machine_types)
        if problem is not None:
            raise fail("machine_types", problem)
        if not 1 <= self.repeats <= MAX_REPEATS:
            raise fail("repeats", f"must be between 1 and {MAX_REPEATS}, got {self.repeats}")
        if not (math.isfinite(self.threshold) and 0 <= self.threshold <= 1):
            raise fail(
                "threshold",
                f"must be a fraction between 0 and 1 (0.05 is 5%), got {self.threshold}",
            )
        if self.channel and not _CHANNEL.fullmatch(self.channel):
            raise fail("channel", f"must be a Slack channel's name or id, got {self.channel!r}")
        if not 1 <= self.timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise fail(
                "timeout_seconds",
                f"must be between 1 and {MAX_TIMEOUT_SECONDS}, got {self.timeout_seconds}",
            )
        if not WORKFLOW_FILE.fullmatch(self.workflow):
            raise fail(
                "workflow",
                f"must be a file name in .github/workflows (like {BENCHMARK_WORKFLOW}),"
                f" got {self.workflow!r}",
            )

    def argv(self, python: str, output: str) -> list[str]:
        """The command to run: `{output}` replaced by `output` wherever it appears, and a
        first word `python` by `python` (the test environment's interpreter)."""
        return benchmark_argv(self.command, python, output)


def command_problem(command: Sequence[object]) -> str | None:
    """None when `command` is off (empty) or an argv the runners can start, else what is
    wrong with it, for the error that names the key."""
    if not command:
        return None
    if len(command) > MAX_WORDS:
        return f"takes at most {MAX_WORDS} words, got {len(command)}"
    for number, word in enumerate(command, 1):
        if not isinstance(word, str):
            return f"takes strings (an argv list), but word {number} is {word!r}"
        if "\x00" in word:
            return f"word {number} holds a NUL character, which no argv can carry"
        if len(word) > MAX_WORD_CHARS:
            return f"word {number} is over {MAX_WORD_CHARS} characters"
    if not command[0]:
        return "must start with the program to run, got an empty first word"
    if not any(OUTPUT in word for word in command):
        return (
            f"must name {OUTPUT} where the JSON file's path goes (like"
            f' ["python", "bench.py", "--json", "{OUTPUT}"]): the metrics are read from there'
        )
    return None
