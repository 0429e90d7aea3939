"""Building blocks of the runner tests: git repositories made in the test, run requests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.clients.git import git_env
from bot.jobs.runners import RunRequest

#: Keeps pytest-asyncio (installed in the .venv the toy checkouts run with) quiet.
TOY_PYPROJECT = """\
[project]
name = "toy"
version = "0"

[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
"""


class Git:
    """git for building fixtures: argv lists, a fixed identity, no user config."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **git_env(),
            "HOME": str(home),
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
        }

    def __call__(self, repo: Path, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=repo, env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def init(self, repo: Path, files: dict[str, str], branch: str = "main") -> str:
        repo.mkdir(parents=True)
        self(repo, "init", "--quiet", f"--initial-branch={branch}")
        return self.commit(repo, files, "initial")

    def commit(self, repo: Path, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            path = repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self(repo, "add", "--all")
        self(repo, "commit", "--quiet", "--allow-empty", "-m", message)
        return self(repo, "rev-parse", "HEAD")


def request_for(repo: Path | str, sha: str, folder: str = "models/toy", **kw: object) -> RunRequest:
    fields = {
        "job_id": "job-1",
        "run_id": "run-1",
        "repo": "owner/toy",
        "head_clone_url": str(repo),
        "head_sha": sha,
        "folder": folder,
        "timeout_s": 120.0,
        **kw,
    }
    return RunRequest(**fields)  # type: ignore[arg-type]
