"""Fixtures of the runner tests: real git repositories and a real local runner; no network."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.jobs.runners import EnvCache, EnvConfig, GpuPool, LocalRunner, LocalRunnerConfig
from tests.runners.helpers import Git
from tests.sandbox.github_server import SandboxGitHub


@pytest.fixture
async def hub(tmp_path: Path):
    """The sandbox's GitHub, with Actions: what the Actions runner dispatches to and follows."""
    github = SandboxGitHub(tmp_path / "github")
    await github.start()
    yield github
    await github.close()


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path / "git-home")


@pytest.fixture
def make_runner(tmp_path: Path) -> Callable[..., LocalRunner]:
    """A runner on the .venv's interpreter (it has pytest and torch): no environment is built."""

    def make(pool: GpuPool | None = None, **config: object) -> LocalRunner:
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        settings = {"work_dir": work, "kill_grace_s": 1.0, **config}
        return LocalRunner(
            EnvCache(EnvConfig(python=sys.executable)),
            pool if pool is not None else GpuPool(devices=[]),
            LocalRunnerConfig(**settings),  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
def runner(make_runner: Callable[..., LocalRunner]) -> LocalRunner:
    return make_runner()
