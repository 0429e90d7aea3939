"""Real git repositories on disk for the sandbox GitHub.

Each repository is a bare repository (its clone URL is its path, so `git clone` and `git push`
work against it like against GitHub) plus a private work tree the sandbox commits through.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.localgit import LocalChange, diff


class SandboxGitError(RuntimeError):
    pass


def _env(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "sandbox",
        "GIT_AUTHOR_EMAIL": "sandbox@example.invalid",
        "GIT_COMMITTER_NAME": "sandbox",
        "GIT_COMMITTER_EMAIL": "sandbox@example.invalid",
    }


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    message: str
    author: str
    timestamp: str
    parents: tuple[str, ...]


class GitRepo:
    """One repository: bare storage, a work tree, and the queries the REST fake needs."""

    def __init__(self, root: Path, full_name: str, default_branch: str) -> None:
        self.full_name = full_name
        self.default_branch = default_branch
        self.bare = root / "repos" / f"{full_name}.git"
        self.work = root / "work" / full_name
        self.home = root / "home"
        self._lock = threading.Lock()

    def git(self, *args: str, cwd: Path | None = None, check: bool = True) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["git", *args],
            cwd=cwd or self.bare,
            env=_env(self.home),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise SandboxGitError(f"git {' '.join(args[:3])}: {done.stderr.strip()}")
        return done.stdout

    def create(self, files: Mapping[str, str | bytes], source: Path | None) -> str:
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        self.git("init", "--bare", "-q", "-b", self.default_branch, str(self.bare), cwd=self.home)
        self.work.parent.mkdir(parents=True, exist_ok=True)
        self.git("clone", "-q", str(self.bare), str(self.work), cwd=self.home)
        self.git("checkout", "-q", "-b", self.default_branch, cwd=self.work)
        if source is not None:
            _copy_tree(source, self.work)
        for path, content in files.items():
            _write(self.work / path, content)
        self.git("add", "-A", cwd=self.work)
        self.git("commit", "-q", "--allow-empty", "-m", "Initial commit", cwd=self.work)
        self.git("push", "-q", "origin", self.default_branch, cwd=self.work)
        return self.rev(self.default_branch)

    def commit(
        self,
        branch: str,
        changes: Mapping[str, str | bytes | None],
        *,
        message: str,
        author: str,
        base: str | None = None,
        renames: Mapping[str, str] | None = None,
    ) -> str:
        with self._lock:
            self.git("fetch", "-q", "origin", cwd=self.work)
            if self.ref_exists(branch):
                self.git("checkout", "-q", "-B", branch, f"origin/{branch}", cwd=self.work)
            else:
                start = base or self.default_branch
                if self.ref_exists(f"refs/heads/{start}"):
                    start = f"origin/{start}"  # a branch; else `base` is a commit
                self.git("checkout", "-q", "-B", branch, start, cwd=self.work)
            for old, new in (renames or {}).items():
                (self.work / new).parent.mkdir(parents=True, exist_ok=True)
                self.git("mv", old, new, cwd=self.work)
            for path, content in changes.items():
                target = self.work / path
                if content is None:
                    self.git("rm", "-q", "-r", "--", path, cwd=self.work)
                else:
                    _write(target, content)
            self.git("add", "-A", cwd=self.work)
            email = f"{author}@users.noreply.example.invalid"
            self.git(
                "-c",
                f"user.name={author}",
                "-c",
                f"user.email={email}",
                "commit",
                "-q",
                "--allow-empty",
                f"--author={author} <{email}>",
                "-m",
                message,
                cwd=self.work,
            )
            self.git("push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
            return self.rev(branch)

    def merge(self, head: str, base: str, *, message: str, squash: bool) -> tuple[str, str]:
        with self._lock:
            self.git("fetch", "-q", "origin", cwd=self.work)
            before = self.rev(base)
            self.git("checkout", "-q", "-B", base, f"origin/{base}", cwd=self.work)
            if squash:
                self.git("merge", "-q", "--squash", f"origin/{head}", cwd=self.work)
                self.git("commit", "-q", "-m", message, cwd=self.work)
            else:
                self.git("merge", "-q", "--no-ff", "-m", message, f"origin/{head}", cwd=self.work)
            self.git("push", "-q", "origin", f"HEAD:refs/heads/{base}", cwd=self.work)
            return before, self.rev(base)

    def set_ref(self, branch: str, sha: str) -> tuple[str, str]:
        before = self.rev(branch)
        self.git("update-ref", f"refs/heads/{branch}", sha)
        return before, sha

    # ------------------------------------------------------------------ queries

    def ref_exists(self, ref: str) -> bool:
        return bool(self.git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False))

    def rev(self, ref: str) -> str:
        out = self.git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False).strip()
        if not out:
            raise KeyError(ref)
        return out

    def branches(self) -> list[str]:
        out = self.git("for-each-ref", "--format=%(refname:short)", "refs/heads")
        return out.split()

    def info(self, sha: str) -> CommitInfo:
        out = self.git("show", "-s", "--format=%H%x00%P%x00%an%x00%aI%x00%B", sha)
        full, parents, author, when, message = out.split("\0", 4)
        return CommitInfo(full, message.strip(), author, when, tuple(parents.split()))

    def commits_between(self, base: str, head: str) -> list[CommitInfo]:
        shas = self.git("rev-list", "--reverse", "--topo-order", f"{base}..{head}").split()
        return [self.info(sha) for sha in shas]

    def merge_base(self, a: str, b: str) -> str | None:
        return self.git("merge-base", a, b, check=False).strip() or None

    def ahead_behind(self, base: str, head: str) -> tuple[int, int]:
        out = self.git("rev-list", "--left-right", "--count", f"{base}...{head}").split()
        behind, ahead = int(out[0]), int(out[1])
        return ahead, behind

    def changes(self, base: str, head: str) -> list[LocalChange]:
        return diff(base, head, self.bare)

    def commit_changes(self, sha: str) -> list[LocalChange]:
        parents = self.info(sha).parents
        if parents:
            return diff(parents[0], sha, self.bare, merge_base=False)
        empty_tree = self.git("hash-object", "-t", "tree", "/dev/null").strip()
        return diff(empty_tree, sha, self.bare, merge_base=False)

    def read(self, ref: str, path: str) -> bytes | None:
        done = subprocess.run(
            ["git", "cat-file", "blob", f"{ref}:{path}"],
            cwd=self.bare,
            env=_env(self.home),
            capture_output=True,
            check=False,
            timeout=60,
        )
        return done.stdout if done.returncode == 0 else None

    def list_dir(self, ref: str, path: str) -> list[tuple[str, str]] | None:
        spec = f"{ref}:{path}" if path else f"{ref}^{{tree}}"
        out = self.git("ls-tree", spec, check=False)
        if not out:
            return None
        entries = []
        for line in out.splitlines():
            meta, name = line.split("\t", 1)
            entries.append((name, "dir" if meta.split()[1] == "tree" else "file"))
        return entries

    def is_ancestor(self, a: str, b: str) -> bool:
        done = subprocess.run(
            ["git", "merge-base", "--is-ancestor", a, b],
            cwd=self.bare,
            env=_env(self.home),
            capture_output=True,
            check=False,
            timeout=60,
        )
        return done.returncode == 0


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


_SKIPPED = {".git", ".venv", "__pycache__", "var", ".pytest_cache", ".ruff_cache", "node_modules"}


def _copy_tree(source: Path, target: Path) -> None:
    """Copies a checkout's tracked files (or, outside git, everything but caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"},
    )
    if listed.returncode == 0:
        paths = [p for p in listed.stdout.split("\0") if p]
    else:
        paths = [
            str(p.relative_to(source))
            for p in source.rglob("*")
            if p.is_file() and not _SKIPPED & set(p.relative_to(source).parts)
        ]
    for relative in paths:
        origin = source / relative
        if origin.is_file() and not origin.is_symlink():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin, destination)
