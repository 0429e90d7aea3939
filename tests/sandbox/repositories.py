"""Repositories of the sandbox GitHub: creating them (from files or a checkout), forks,
commits, renames, forced pushes and branch deletions, all as real git history."""

from __future__ import annotations

import itertools
import stat
import subprocess
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from bot.clients.git import git_env
from tests.sandbox.gitrepo import ZERO_SHA, GitRepo, Identity
from tests.sandbox.people import People
from tests.sandbox.shapes import NOREPLY
from tests.sandbox.state import SandboxRepo, check_full_name, check_login, check_role

#: What a copy of a plain folder leaves out (a git checkout copies what git lists instead).
SKIPPED_DIRS = frozenset(
    {".git", ".venv", "venv", "__pycache__", "var", ".pytest_cache", ".ruff_cache", "node_modules"}
)


def parse_date(date: datetime | str | None) -> datetime | None:
    """A commit or merge date given as a datetime or an ISO 8601 string (None: now)."""
    if date is None or isinstance(date, datetime):
        return date
    try:
        return datetime.fromisoformat(date)
    except ValueError:
        raise ValueError(f"{date!r} is not an ISO 8601 date") from None


class Repositories(People):
    root: Path
    repos: dict[str, SandboxRepo]
    _ids: itertools.count[int]

    def next_id(self) -> int:
        """Ids of comments, reviews, reactions and statuses: one sequence, as on GitHub."""
        return next(self._ids)

    def add_collaborator(self, full_name: str, login: str, role: str = "write") -> None:
        check_role(role)
        with self.lock:
            repo = self.repo(full_name)
            self.add_user(login)
            for existing in list(repo.collaborators):
                if existing.lower() == login.lower():
                    del repo.collaborators[existing]
            repo.collaborators[login] = role

    def repo(self, full_name: str) -> SandboxRepo:
        """A repository by name, case-insensitively like GitHub."""
        found = self.repos.get(full_name)
        if found is None:
            found = next(
                (r for name, r in self.repos.items() if name.lower() == full_name.lower()), None
            )
        if found is None:
            raise KeyError(f"no repository {full_name}; create it with create_repo()")
        return found

    def git(self, full_name: str) -> GitRepo:
        return self.repo(full_name).git

    def create_repo(
        self,
        full_name: str,
        *,
        files: Mapping[str, str | bytes] | None = None,
        source: Path | None = None,
        default_branch: str = "main",
        collaborators: Mapping[str, str] | None = None,
        owner_type: str = "Organization",
        private: bool = False,
        description: str | None = None,
        message: str = "Initial commit",
        pushed_at: datetime | str | None = None,
    ) -> SandboxRepo:
        """A repository whose default branch holds one commit: `source`'s files, then `files`;
        `pushed_at` (default now) is when that commit reached GitHub.

        `source` copies a folder: the files git lists when it is a git checkout (tracked and
        untracked-but-not-ignored, as they are on disk), else every file outside caches and
        virtualenvs. Symbolic links are left out.
        """
        owner, _ = check_full_name(full_name)
        if owner_type not in ("User", "Organization"):
            raise ValueError(f"owner_type must be 'User' or 'Organization', not {owner_type!r}")
        for login, role in (collaborators or {}).items():
            check_login(login)
            check_role(role)
        content: dict[str, str | bytes] = {}
        executable: set[str] = set()
        if source is not None:
            content, executable = _read_source(Path(source), self.root / "home")
        content.update(files or {})
        with self.lock:
            if any(name.lower() == full_name.lower() for name in self.repos):
                raise ValueError(f"{full_name} already exists")
            self.add_user(owner, kind=owner_type)
            git = GitRepo.init(
                self.root / "repos" / f"{full_name}.git",
                home=self.root / "home",
                default_branch=default_branch,
            )
            repo = SandboxRepo(
                full_name,
                git,
                default_branch,
                owner_type=owner_type,
                private=private,
                description=description,
            )
            self.repos[full_name] = repo
            for login, role in (collaborators or {}).items():
                self.add_collaborator(full_name, login, role)
            author = owner if owner_type == "User" else "sandbox-user"
            sha = git.write_commit(
                parent=None,
                changes=content,
                message=message,
                author=self.identity(author),
                executable=executable,
            )
            git.update_refs(
                [(f"refs/heads/{default_branch}", sha, ZERO_SHA)], pushed_at=parse_date(pushed_at)
            )
            return repo

    def fork(self, full_name: str, owner: str, *, name: str | None = None) -> SandboxRepo:
        """A fork owned by user `owner`, with the parent's branches; PRs may come from it."""
        with self.lock:
            parent = self.repo(full_name)
            fork_name = f"{owner}/{name or parent.name}"
            check_full_name(fork_name)
            if any(existing.lower() == fork_name.lower() for existing in self.repos):
                raise ValueError(f"{fork_name} already exists")
            self.add_user(owner)
            git = GitRepo.clone_bare(parent.git, self.root / "repos" / f"{fork_name}.git")
            fork = SandboxRepo(
                fork_name,
                git,
                parent.default_branch,
                owner_type="User",
                private=parent.private,
                description=parent.description,
                fork_of=parent.full_name,
            )
            self.repos[fork_name] = fork
            return fork

    def identity(self, login: str, *, date: datetime | str | None = None) -> Identity:
        """A person's git identity: GitHub's noreply address, which names their account."""
        user = self.add_user(login)
        return Identity(user.login, f"{user.id}+{user.login}@{NOREPLY}", parse_date(date))

    def commit(
        self,
        full_name: str,
        branch: str,
        changes: Mapping[str, str | bytes | None],
        *,
        message: str = "Update",
        author: str = "sandbox-user",
        base: str | None = None,
        renames: Mapping[str, str] | None = None,
        date: datetime | str | None = None,
        executable: Iterable[str] = (),
        pushed_at: datetime | str | None = None,
    ) -> str:
        """Commits to `branch` (created from `base`, default the default branch, when it does
        not exist yet) and returns the new SHA. None as content deletes a file or folder;
        `renames` (old -> new) apply before `changes`.

        `date` is the commit's, which its author writes; `pushed_at` (default now) is when
        GitHub received the push, which GitHub's own records, such as a pull request's test
        merge, are dated from.
        """
        with self.lock:
            repo = self.repo(full_name)
            git = repo.git
            parent = git.branch_sha(branch)
            expected = parent
            if parent is None:
                start = base or repo.default_branch
                parent = git.resolve(start)
                if parent is None:
                    raise ValueError(f"{full_name} has no branch or commit {start!r} to start from")
                expected = ZERO_SHA
            sha = git.write_commit(
                parent=parent,
                changes=changes,
                renames=renames,
                message=message,
                author=self.identity(author, date=date),
                executable=executable,
            )
            git.update_refs(
                [(f"refs/heads/{branch}", sha, expected)], pushed_at=parse_date(pushed_at)
            )
            self.branch_moved(repo, branch)
            return sha

    def rename(
        self,
        full_name: str,
        branch: str,
        old: str,
        new: str,
        *,
        message: str | None = None,
        author: str = "sandbox-user",
        pushed_at: datetime | str | None = None,
    ) -> str:
        return self.commit(
            full_name,
            branch,
            {},
            renames={old: new},
            message=message or f"Rename {old} to {new}",
            author=author,
            pushed_at=pushed_at,
        )

    def force_push(
        self, full_name: str, branch: str, sha: str, *, pushed_at: datetime | str | None = None
    ) -> tuple[str, str]:
        """Points `branch` at `sha` whatever it held; returns (before, after), before being
        forty zeros when the branch is created. `pushed_at`: as for `commit`."""
        with self.lock:
            repo = self.repo(full_name)
            git = repo.git
            target = git.resolve(sha)
            if target is None:
                raise ValueError(f"{sha!r} is not a commit of {full_name}")
            before = git.branch_sha(branch) or ZERO_SHA
            git.update_refs(
                [(f"refs/heads/{branch}", target, before)], pushed_at=parse_date(pushed_at)
            )
            self.branch_moved(repo, branch)
            return before, target

    def delete_branch(self, full_name: str, branch: str) -> str:
        """Deletes `branch`; returns the SHA it held."""
        with self.lock:
            repo = self.repo(full_name)
            sha = repo.git.branch_sha(branch)
            if sha is None:
                raise ValueError(f"{full_name} has no branch {branch!r}")
            if branch == repo.default_branch:
                raise ValueError(f"{branch!r} is the default branch of {full_name}")
            repo.git.delete_ref(f"refs/heads/{branch}")
            self.branch_moved(repo, branch)
            return sha

    def branch_moved(self, repo: SandboxRepo, branch: str) -> None:
        """Called after the sandbox itself moved a branch, for what GitHub recomputes when a
        branch moves (pull requests' test merges); a push from a clone is seen on the next
        request instead."""


def _read_source(source: Path, home: Path) -> tuple[dict[str, str | bytes], set[str]]:
    """The files of a folder to import, and which of them are executable.

    A git checkout gives what git lists (tracked files, and untracked ones it does not ignore),
    so ignored secrets and build output stay behind; a plain folder gives every file outside
    caches and virtualenvs.
    """
    if not source.is_dir():
        raise ValueError(f"{source} is not a folder")
    source = source.resolve()
    if (source / ".git").exists():
        listed = subprocess.run(
            [
                "git",
                "-c",
                f"safe.directory={source}",
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            cwd=source,
            capture_output=True,
            check=False,
            timeout=120,
            env=git_env(home),
        )
        if listed.returncode != 0:
            why = listed.stderr.decode("utf-8", "replace").strip()
            raise ValueError(f"git cannot list the files of {source}: {why}")
        paths = sorted({p for p in listed.stdout.decode().split("\0") if p})
    else:
        paths = sorted(
            path.relative_to(source).as_posix()
            for path in source.rglob("*")
            if not SKIPPED_DIRS & set(path.relative_to(source).parts)
        )
    files: dict[str, str | bytes] = {}
    executable: set[str] = set()
    for relative in paths:
        path = source / relative
        if path.is_symlink() or not path.is_file():
            continue  # links, folders, and tracked files deleted on disk
        files[relative] = path.read_bytes()
        if path.stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
            executable.add(relative)
    return files, executable
