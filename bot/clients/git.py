"""Reading a local git checkout, so maintainers can see what the bot would do without a server.

git runs with an argv list and a minimal environment: no tokens or secrets from the caller's
environment reach it, and no user or system git configuration changes its output.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class GitError(RuntimeError):
    """git refused: not a repository, an unknown revision, or git is missing."""


def git_env(
    home: str | os.PathLike[str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The one environment every git the bot runs gets: no system or user configuration, no
    prompts, nothing of the caller's environment but PATH (and HOME, unless one is given)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home) if home is not None else os.environ.get("HOME", "/nonexistent"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
    }
    env.update(extra or {})
    return env


def run_git(args: list[str], cwd: str | Path = ".") -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=git_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise GitError(f"git {' '.join(args[:2])}: {message}")
    return done.stdout


@dataclass(frozen=True)
class LocalChange:
    path: str
    status: str  # added | removed | modified | renamed | copied
    previous_path: str | None = None
    additions: int = 0
    deletions: int = 0

    @property
    def changes(self) -> int:
        return self.additions + self.deletions


#: git's diff letters in the words GitHub's API uses for a file's status.
GIT_STATUS = {
    "A": "added",
    "D": "removed",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "changed",
}


def diff(
    base: str, head: str, cwd: str | Path = ".", *, merge_base: bool = True
) -> list[LocalChange]:
    """Files changed from `base` to `head`, with line counts, like a PR's files list."""
    spec = f"{base}...{head}" if merge_base else f"{base}..{head}"
    statuses = run_git(["diff", "--name-status", "-M", "-z", spec], cwd).split("\0")
    counts = run_git(["diff", "--numstat", "-M", "-z", spec], cwd).split("\0")
    lines: dict[str, tuple[int, int]] = {}
    i = 0
    while i < len(counts) - 1:
        fields = counts[i].split("\t")
        if len(fields) == 3 and fields[2] == "":  # a rename: the two paths follow
            added, deleted, path = fields[0], fields[1], counts[i + 2]
            i += 3
        else:
            added, deleted, path = fields[0], fields[1], fields[2]
            i += 1
        lines[path] = (int(added) if added != "-" else 0, int(deleted) if deleted != "-" else 0)
    changes: list[LocalChange] = []
    i = 0
    while i < len(statuses) - 1:
        code = statuses[i][:1]
        if code in ("R", "C"):
            old, new = statuses[i + 1], statuses[i + 2]
            i += 3
            changes.append(LocalChange(new, GIT_STATUS[code], old, *lines.get(new, (0, 0))))
        else:
            path = statuses[i + 1]
            i += 2
            changes.append(
                LocalChange(path, GIT_STATUS.get(code, "modified"), None, *lines.get(path, (0, 0)))
            )
    return changes


def added_by(path: str, base: str, head: str, cwd: str | Path = ".") -> str | None:
    """The oldest commit in base..head that added `path`."""
    out = run_git(["log", "--diff-filter=A", "--format=%H", f"{base}..{head}", "--", path], cwd)
    shas = out.split()
    return shas[-1] if shas else None


def rev_parse(rev: str, cwd: str | Path = ".") -> str:
    return run_git(["rev-parse", "--verify", f"{rev}^{{commit}}"], cwd).strip()
