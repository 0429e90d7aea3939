"""`[slow_ci]` in `.github/bot.toml`: who may ask for slow runs, where they run, their limits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from bot.config import UNSET_MEANS, ConfigError
from bot.jobs.runners.confine import GIB, Limits
from handlers.slow_ci.verdicts import DEFAULT_RERUNS, MAX_RERUNS

#: The reference's runner groups: one label per machine type besides `self-hosted`.
DEFAULT_RUNNER_LABELS: Mapping[str, tuple[str, ...]] = {
    "single-gpu": ("self-hosted", "single-gpu"),
    "multi-gpu": ("self-hosted", "multi-gpu"),
}
_WORKFLOW_FILE = re.compile(r"[A-Za-z0-9_.-]+\.ya?ml")
_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
#: A name in `[project.optional-dependencies]` (PEP 685, before normalisation).
_EXTRA = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")


@dataclass(frozen=True)
class SlowCiConfig:
    """`run-slow`: maintainer-approved slow test runs of chosen model folders."""

    enabled: bool = True
    #: Logins who may always ask; anyone else needs at least `min_permission` on the repository.
    allow: tuple[str, ...] = ()
    min_permission: Literal["read", "triage", "write", "maintain", "admin"] = "write"
    models_dir: str = "model_lib/models"
    machine_types: tuple[str, ...] = ("single-gpu", "multi-gpu")
    job_timeout_seconds: int = 3600
    #: One comment per PR that changes model code or tests, with the line to paste.
    reminder: bool = True
    channel: str = ""  # Slack channel for a short summary when a run ends; empty: none
    #: When a run ends with failing tests, each is re-run this many times on the same commit
    #: and once on the pull request's base, and labelled `new`, `fails on the base too` or
    #: `flaky`; 0 starts none of those checks.
    reruns: int = DEFAULT_RERUNS
    #: Where jobs run: this machine's GPUs, or the repository's GitHub Actions runners.
    runner: Literal["local", "github-actions"] = "local"
    #: With `github-actions`: the workflow dispatched (in `.github/workflows/`, on the default
    #: branch) and the self-hosted runner labels each machine type's jobs ask for.
    workflow: str = "slow-tests.yml"
    runner_labels: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_RUNNER_LABELS)
    )
    #: Optional dependency groups (`[project.optional-dependencies]`) the local runner's test
    #: environment installs besides the project's dependencies. Unset: every group, so a
    #: repository whose tests need one (torch, say) runs without configuration; a list
    #: narrows it (a heavy group the tests do not need), `[]` installs none.
    extras: tuple[str, ...] | None = field(
        default=None, metadata={UNSET_MEANS: "every optional dependency group"}
    )
    #: The local runner's confinement: the tests reach the network (model tests download
    #: checkpoints) unless this is false, which leaves them loopback alone.
    network: bool = True
    #: Per test process: data memory in GiB, processes of the job, and the largest file in GiB.
    memory_limit_gb: int = 64
    max_processes: int = 4096
    max_file_size_gb: int = 32

    @property
    def limits(self) -> Limits:
        return Limits(
            memory_bytes=self.memory_limit_gb * GIB,
            processes=self.max_processes,
            file_size_bytes=self.max_file_size_gb * GIB,
        )

    def validate(self, source: str, prefix: str) -> None:
        """What the types allow but the runners cannot use; `prefix` is `slow_ci.`."""
        if self.job_timeout_seconds < 1:
            raise ConfigError(f"{source}: '{prefix}job_timeout_seconds' must be at least 1")
        unknown = sorted(set(self.machine_types) - {"single-gpu", "multi-gpu"})
        if unknown or not self.machine_types:
            raise ConfigError(
                f"{source}: '{prefix}machine_types' takes single-gpu and multi-gpu,"
                f" got {list(self.machine_types)}"
            )
        if not 0 <= self.reruns <= MAX_RERUNS:
            raise ConfigError(
                f"{source}: '{prefix}reruns' must be between 0 and {MAX_RERUNS}, got {self.reruns}"
            )
        for name in ("memory_limit_gb", "max_processes", "max_file_size_gb"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{source}: '{prefix}{name}' must be at least 1")
        for extra in self.extras or ():
            if not _EXTRA.fullmatch(extra):
                raise ConfigError(
                    f"{source}: '{prefix}extras' takes names of optional dependency groups"
                    f' (like "models"), got {extra!r}'
                )
        if not _WORKFLOW_FILE.fullmatch(self.workflow):
            raise ConfigError(
                f"{source}: '{prefix}workflow' must be a file name in .github/workflows"
                f" (like slow-tests.yml), got {self.workflow!r}"
            )
        for machine, labels in self.runner_labels.items():
            if machine not in ("single-gpu", "multi-gpu"):
                raise ConfigError(
                    f"{source}: '{prefix}runner_labels' takes single-gpu and multi-gpu,"
                    f" got {machine!r}"
                )
            if not labels or not all(_LABEL.fullmatch(label) for label in labels):
                raise ConfigError(
                    f"{source}: '{prefix}runner_labels.{machine}' must be a list of runner"
                    f" labels, got {list(labels)}"
                )
