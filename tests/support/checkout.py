"""A small real git checkout for the local commands (`bot reviewers`, `bot new-models`, ...)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}
OWNERS = "* @core\n/model_lib/ @models\n/model_lib/models/gpt2/ @gpt2-owner\n/docs/ @docs\n"


def git(cwd: Path, *args: str) -> None:
    ident = ["-c", "user.name=Dev", "-c", "user.email=dev@example.invalid"]
    subprocess.run(["git", *ident, *args], cwd=cwd, check=True, env=ENV, capture_output=True)


def make_checkout(repo: Path) -> Path:
    """One commit on `main`: a review-owners file and the gpt2 model."""
    (repo / ".github").mkdir(parents=True)
    (repo / ".github" / "review-owners").write_text(OWNERS)
    (repo / "model_lib" / "models" / "gpt2").mkdir(parents=True)
    (repo / "model_lib" / "models" / "gpt2" / "modeling_gpt2.py").write_text("x = 1\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "start")
    return repo


def add_model(repo: Path, name: str) -> None:
    folder = repo / "model_lib" / "models" / name
    folder.mkdir(parents=True)
    (folder / f"modeling_{name}.py").write_text("".join(f"line {i}\n" for i in range(30)))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"Add {name}")
