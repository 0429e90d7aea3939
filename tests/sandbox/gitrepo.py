"""Real git repositories on disk behind the sandbox GitHub.

Each repository is a bare repository, served over smart HTTP at its clone URL (`githttp.py`), so
`git clone` and `git push` work against it as they do against GitHub, and a push from a clone is
seen by the very next API request. The sandbox's own commits and merges are written with plumbing
(`git fast-import`, `git merge-tree`, `git commit-tree`) straight into the object database: no
work tree to keep in step with pushes arriving from outside, a 3,000-file commit costs one
process, and every branch update is a compare-and-swap, so a push landing in between is never
overwritten.

git always runs with an argv list and an explicit, minimal environment: the caller's tokens,
git configuration and identity never reach it.
"""

from __future__ import annotations

import re
import subprocess
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from bot.clients.git import GIT_STATUS, git_env

ZERO_SHA = "0" * 40
STAGING_REF = "refs/sandbox/staging"
_GIT_TIMEOUT_S = 120
#: Who the sandbox's own commits are by.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "sandbox",
    "GIT_AUTHOR_EMAIL": "sandbox@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "sandbox",
    "GIT_COMMITTER_EMAIL": "sandbox@users.noreply.github.com",
}
_CACHE_SIZE = 1024
_REFLOG_TIME = re.compile(r"@\{(\d+)\}$")


def git_date(moment: datetime | None) -> str:
    """git's raw date of `moment` (now when None): seconds since the epoch and the UTC offset."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{int(moment.timestamp())} {sign}{hours:02d}{rest:02d}"


class SandboxGitError(RuntimeError):
    """git refused an operation of the sandbox (the message ends with git's own words)."""


class UnknownRevision(LookupError):
    """A branch, tag or SHA that does not name a commit of the repository."""


@dataclass(frozen=True)
class Identity:
    """Who wrote or committed something, and when (the moment of writing when left out)."""

    name: str
    email: str
    when: datetime | None = None

    def stamp(self) -> str:
        return git_date(self.when)

    def signature(self) -> str:
        return f"{self.name} <{self.email}> {self.stamp()}"


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_date: str
    committer_name: str
    committer_email: str
    committer_date: str
    message: str


@dataclass(frozen=True)
class FileChange:
    """One file of a diff, as GitHub lists it among a pull request's or a comparison's files."""

    path: str
    status: str  # added | removed | modified | renamed | copied | changed
    previous_path: str | None
    additions: int
    deletions: int
    sha: str  # the blob on the new side (on the old side for a removed file)
    binary: bool = False

    @property
    def changes(self) -> int:
        return self.additions + self.deletions


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: str
    kind: str  # blob | tree | commit (a submodule)
    sha: str
    size: int | None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


def check_path(path: str) -> str:
    """A repository path as git stores it; anything git would refuse or misplace is an error."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"a repository path must be a non-empty string, not {path!r}")
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{path!r} is not a normalised relative path (no empty, . or .. parts)")
    if any(part.lower() == ".git" for part in parts):
        raise ValueError(f"{path!r}: git does not store .git paths")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in path):
        raise ValueError(f"{path!r}: control characters are not allowed in paths")
    return path


def _quote(path: str) -> str:
    """C-style quoting for fast-import, so spaces and quotes in paths survive."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


class _Lru:
    """A small cache for answers that never change: every key holds commit SHAs."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def put(self, key: Any, value: Any) -> Any:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


class GitRepo:
    """One bare repository and the reads and writes the sandbox needs from it."""

    def __init__(self, path: Path, *, home: Path) -> None:
        self.path = Path(path)
        self.home = Path(home)
        self._cache = _Lru(_CACHE_SIZE)

    # ------------------------------------------------------------------ creating

    @classmethod
    def init(cls, path: Path, *, home: Path, default_branch: str) -> GitRepo:
        if path.exists():
            raise FileExistsError(f"{path} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        repo = cls(path, home=home)
        repo.run(["init", "-q", "--bare", "-b", default_branch, str(path)], cwd=path.parent)
        repo.configure()
        return repo

    @classmethod
    def clone_bare(cls, source: GitRepo, path: Path) -> GitRepo:
        """A fork: its own bare repository holding the source's branches and tags."""
        if path.exists():
            raise FileExistsError(f"{path} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        repo = cls(path, home=source.home)
        repo.run(["clone", "-q", "--bare", str(source.path), str(path)], cwd=path.parent)
        repo.run(["remote", "remove", "origin"])
        repo.configure()
        return repo

    def configure(self) -> None:
        """No background gc racing the tests; pushes may rewrite and delete branches as on
        GitHub, where branch protection decides, not git; every ref update is logged, so the
        time a push arrived is known even for one from a clone (`pushed_at`). Appended to the
        config file git just wrote, which saves a process per setting on every repository a
        test creates."""
        with (self.path / "config").open("a", encoding="utf-8") as config:
            config.write(
                "[core]\n\tlogAllRefUpdates = always\n"
                "[gc]\n\tauto = 0\n"
                "[receive]\n\tdenyNonFastForwards = false\n\tdenyDeletes = false\n"
            )

    # ------------------------------------------------------------------ running git

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        return git_env(self.home, {**_IDENTITY, **(extra or {})})

    def _call(
        self,
        args: list[str],
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                ["git", "--literal-pathspecs", *args],
                cwd=cwd or self.path,
                env=self.env(env),
                input=stdin,
                capture_output=True,
                check=False,
                timeout=_GIT_TIMEOUT_S,
            )
        except FileNotFoundError:
            raise SandboxGitError("git is not installed") from None

    def run(
        self,
        args: list[str],
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> bytes:
        done = self._call(args, stdin=stdin, env=env, cwd=cwd)
        if check and done.returncode != 0:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            why = lines[-1] if lines else f"exit status {done.returncode}"
            raise SandboxGitError(f"git {' '.join(args[:2])} in {self.path.name}: {why}")
        return done.stdout

    def text(self, args: list[str], *, stdin: bytes | None = None, check: bool = True) -> str:
        return self.run(args, stdin=stdin, check=check).decode("utf-8", "replace")

    # ------------------------------------------------------------------ refs

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        """Every ref under `prefix` and the commit it names, in one call."""
        out = self.text(["for-each-ref", "--format=%(objectname) %(refname)", prefix])
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition(" ")
            refs[name] = sha
        return refs

    def branches(self) -> dict[str, str]:
        return {
            name.removeprefix("refs/heads/"): sha for name, sha in self.refs("refs/heads/").items()
        }

    def branch_sha(self, branch: str) -> str | None:
        return self.refs(f"refs/heads/{branch}").get(f"refs/heads/{branch}")

    def resolve(self, rev: str) -> str | None:
        """The commit `rev` names (a branch, a tag, a full or short SHA), or None."""
        if not rev or rev.startswith("-") or any(ord(ch) < 33 for ch in rev):
            return None
        out = self.text(["rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], check=False)
        return out.strip() or None

    def resolve_tree(self, rev: str) -> str | None:
        """The tree `rev` names (a tree SHA, or a commit-ish's tree), or None."""
        if not rev or rev.startswith("-") or any(ord(ch) < 33 for ch in rev):
            return None
        out = self.text(["rev-parse", "--verify", "-q", f"{rev}^{{tree}}"], check=False)
        return out.strip() or None

    def rev(self, rev: str) -> str:
        sha = self.resolve(rev)
        if sha is None:
            raise UnknownRevision(f"{rev!r} is not a commit of {self.path.name}")
        return sha

    def update_refs(
        self,
        updates: Iterable[tuple[str, str, str | None]],
        *,
        deletes: Iterable[str] = (),
        pushed_at: datetime | None = None,
    ) -> None:
        """One atomic transaction of (ref, new SHA, expected old SHA or None for "any").

        `pushed_at` (default now) is when GitHub received the push: the reflog keeps it, and
        the test merges of pull requests are dated from it.
        """
        lines = [f"update {ref} {new}" + (f" {old}" if old else "") for ref, new, old in updates]
        lines += [f"delete {ref}" for ref in deletes]
        env = {"GIT_COMMITTER_DATE": "@" + git_date(pushed_at)} if pushed_at else None
        try:
            self.run(["update-ref", "--stdin"], stdin=("\n".join(lines) + "\n").encode(), env=env)
        except SandboxGitError as exc:
            raise SandboxGitError(f"{exc} (did a push move the branch meanwhile?)") from None

    def pushed_at(self, branch: str, sha: str) -> datetime | None:
        """When `branch` last moved to `sha`, by its reflog; None when its latest entry is not
        of `sha` or it has none (the branches a fork copied). A push from a clone is logged by
        git itself, at the time it arrived."""
        args = ["log", "-g", "-n1", "--date=unix", "--format=%H %gd", f"refs/heads/{branch}", "--"]
        logged, _, selector = self.text(args, check=False).strip().partition(" ")
        found = _REFLOG_TIME.search(selector)
        if found is None or logged != sha:
            return None
        return datetime.fromtimestamp(int(found.group(1)), UTC)

    def delete_ref(self, ref: str) -> None:
        self.run(["update-ref", "-d", ref])

    def fetch(self, source: Path, refspec: str) -> None:
        self.run(["fetch", "-q", "--no-tags", "--no-write-fetch-head", str(source), refspec])

    # ------------------------------------------------------------------ writing commits

    def write_commit(
        self,
        *,
        parent: str | None,
        changes: Mapping[str, str | bytes | None],
        message: str,
        author: Identity,
        committer: Identity | None = None,
        renames: Mapping[str, str] | None = None,
        executable: Iterable[str] = (),
    ) -> str:
        """Writes one commit on top of `parent` (None: a root commit) and returns its SHA.

        `renames` (old path -> new path) apply first, then `changes` (path -> new content;
        None deletes the file, or the whole folder). No branch moves: the caller publishes the
        commit with `update_refs`, as a compare-and-swap against concurrent pushes.
        """
        renames = dict(renames or {})
        executable = set(executable)
        for path in [*changes, *renames, *renames.values()]:
            check_path(path)
        gone = [*renames, *(path for path, content in changes.items() if content is None)]
        missing = self.missing(parent, gone)
        if missing:
            where = parent[:12] if parent else "an empty repository"
            raise SandboxGitError(
                f"cannot delete or rename what is not there at {where}: {', '.join(missing)}"
            )
        stream = bytearray(f"reset {STAGING_REF}\ncommit {STAGING_REF}\nmark :1\n".encode())
        stream += f"author {author.signature()}\n".encode()
        stream += f"committer {(committer or author).signature()}\n".encode()
        stream += _data(message.encode())
        if parent is not None:
            stream += f"from {parent}\n".encode()
        for old, new in renames.items():
            stream += f"R {_quote(old)} {_quote(new)}\n".encode()
        for path, content in changes.items():
            if content is None:
                stream += f"D {_quote(path)}\n".encode()
                continue
            if isinstance(content, str):
                content = content.encode()
            if not isinstance(content, bytes):
                raise TypeError(f"the content of {path!r} must be str, bytes or None")
            mode = "100755" if path in executable else "100644"
            stream += f"M {mode} inline {_quote(path)}\n".encode() + _data(content)
        stream += b"\nget-mark :1\ndone\n"
        out = self.text(["fast-import", "--quiet", "--force", "--done"], stdin=bytes(stream))
        sha = out.strip().rsplit("\n", 1)[-1]
        if len(sha) != 40:
            raise SandboxGitError(f"git fast-import did not name the new commit: {out!r}")
        self.delete_ref(STAGING_REF)
        return sha

    def commit_tree(
        self,
        tree: str,
        parents: Iterable[str],
        *,
        message: str,
        author: Identity,
        committer: Identity,
    ) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        env = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_AUTHOR_DATE": "@" + author.stamp(),
            "GIT_COMMITTER_NAME": committer.name,
            "GIT_COMMITTER_EMAIL": committer.email,
            "GIT_COMMITTER_DATE": "@" + committer.stamp(),
        }
        return self.run(args, stdin=message.encode(), env=env).decode().strip()

    def merge_tree(self, ours: str, theirs: str) -> str | None:
        """The tree of merging two commits, or None when they conflict."""
        key = ("merge-tree", ours, theirs)
        if key in self._cache:
            return self._cache.get(key)
        done = self._call(["merge-tree", "--write-tree", "--no-messages", ours, theirs])
        tree = done.stdout.decode().split("\n", 1)[0].strip()
        if done.returncode not in (0, 1) or len(tree) != 40:
            why = done.stderr.decode("utf-8", "replace").strip()
            raise SandboxGitError(f"git merge-tree {ours[:12]} {theirs[:12]}: {why}")
        return self._cache.put(key, tree if done.returncode == 0 else None)

    # ------------------------------------------------------------------ reading history

    _LOG_FORMAT = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
    _LOG_FIELDS = 10

    def _parse_log(self, out: str) -> list[CommitInfo]:
        fields = out.split("\0")
        infos = []
        for i in range(0, len(fields) - self._LOG_FIELDS + 1, self._LOG_FIELDS):
            sha, tree, parents, an, ae, ad, cn, ce, cd, message = fields[i : i + self._LOG_FIELDS]
            info = CommitInfo(
                sha.strip(), tree, tuple(parents.split()), an, ae, ad, cn, ce, cd, message.strip()
            )
            self._cache.put(("info", info.sha), info)
            infos.append(info)
        return infos

    def info(self, sha: str) -> CommitInfo:
        cached = self._cache.get(("info", sha))
        if cached is not None:
            return cached
        out = self.text(["log", "-z", "--no-walk", f"--format={self._LOG_FORMAT}", sha, "--"])
        (info,) = self._parse_log(out)
        return info

    def log(
        self,
        head: str,
        *,
        exclude: Iterable[str] = (),
        exclude_branches_but: str | None = None,
        paths: Iterable[str] = (),
        newest_first: bool = False,
    ) -> list[CommitInfo]:
        """Commits reachable from `head` and from none of `exclude`, oldest first (or newest).

        `exclude_branches_but` also leaves out whatever any other branch already has, the
        way GitHub lists the new commits of a branch that was just created.
        """
        args = ["log", "-z", "--topo-order", f"--format={self._LOG_FORMAT}", head]
        if not newest_first:
            args.insert(3, "--reverse")
        args += [f"^{sha}" for sha in exclude]
        if exclude_branches_but is not None:
            args += ["--not", f"--exclude={exclude_branches_but}", "--branches"]
        return self._parse_log(self.text([*args, "--", *paths]))

    def reachable(self, head: str, *, exclude: Iterable[str] = ()) -> frozenset[str]:
        key = ("reachable", head, tuple(exclude))
        if key not in self._cache:
            out = self.text(["rev-list", head, *(f"^{sha}" for sha in exclude), "--"])
            self._cache.put(key, frozenset(out.split()))
        return self._cache.get(key)

    def merge_base(self, a: str, b: str) -> str | None:
        key = ("merge-base", a, b)
        if key not in self._cache:
            self._cache.put(key, self.text(["merge-base", a, b], check=False).strip() or None)
        return self._cache.get(key)

    def ahead_behind(self, base: str, head: str) -> tuple[int, int]:
        out = self.text(["rev-list", "--left-right", "--count", f"{base}...{head}", "--"]).split()
        behind, ahead = int(out[0]), int(out[1])
        return ahead, behind

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._call(["merge-base", "--is-ancestor", ancestor, descendant]).returncode == 0

    # ------------------------------------------------------------------ diffs

    def diff(self, old: str | None, new: str, *, renames: bool = True) -> list[FileChange]:
        """Files changed from commit `old` (None: from nothing) to commit `new`."""
        key = ("diff", old, new, renames)
        if key in self._cache:
            return self._cache.get(key)
        args = ["diff-tree", "-r", "-z", "--no-commit-id", "--raw", "--numstat", "--no-abbrev"]
        args += ["-M" if renames else "--no-renames", old or self.empty_tree(), new, "--"]
        return self._cache.put(key, _parse_raw_numstat(self.text(args).split("\0")))

    def empty_tree(self) -> str:
        if "empty-tree" not in self._cache:
            sha = self.text(["hash-object", "-t", "tree", "-w", "--stdin"], stdin=b"").strip()
            self._cache.put("empty-tree", sha)
        return self._cache.get("empty-tree")

    # ------------------------------------------------------------------ trees and blobs

    def missing(self, rev: str | None, paths: Iterable[str]) -> list[str]:
        """Those of `paths` that name nothing (no file, no folder) at `rev`, in one call."""
        paths = sorted(set(paths))
        if not paths:
            return []
        if rev is None:
            return paths
        query = "".join(f"{rev}:{path}\n" for path in paths).encode()
        out = self.text(["cat-file", "--batch-check=%(objectname)"], stdin=query).splitlines()
        return [path for path, answer in zip(paths, out, strict=True) if " " in answer]

    def entry(self, rev: str, path: str) -> TreeEntry | None:
        """What `path` is at `rev` (a file, a folder, a submodule), or None."""
        path = path.strip("/")
        if not path:
            return None
        out = self.run(["ls-tree", "-z", "-l", "--full-tree", rev, "--", path], check=False)
        entries = _parse_ls_tree(out, prefix="")
        return next((entry for entry in entries if entry.path == path), None)

    def read_blob(self, sha: str) -> bytes:
        return self.run(["cat-file", "blob", sha])

    def read(self, rev: str, path: str) -> bytes | None:
        """A file's bytes at `rev`, or None when it is not a file there."""
        entry = self.entry(rev, path)
        if entry is None or entry.kind != "blob":
            return None
        return self.read_blob(entry.sha)

    def list_tree(
        self, rev: str, path: str = "", *, recursive: bool = False
    ) -> list[TreeEntry] | None:
        """The entries of folder `path` at `rev` (everything below it when recursive), or None
        when `path` is not a folder there."""
        path = path.strip("/")
        if path:
            entry = self.entry(rev, path)
            if entry is None or entry.kind != "tree":
                return None
        args = ["ls-tree", "-z", "-l", "--full-tree"] + (["-r", "-t"] if recursive else [])
        spec = f"{rev}:{path}" if path else f"{rev}^{{tree}}"
        return _parse_ls_tree(self.run([*args, spec]), prefix=f"{path}/" if path else "")


def _parse_ls_tree(out: bytes, *, prefix: str) -> list[TreeEntry]:
    entries = []
    for record in out.decode("utf-8", "replace").split("\0"):
        if not record:
            continue
        meta, _, name = record.partition("\t")
        mode, kind, sha, size = meta.split()
        entries.append(
            TreeEntry(prefix + name, mode, kind, sha, int(size) if size.isdigit() else None)
        )
    return entries


def _parse_raw_numstat(tokens: list[str]) -> list[FileChange]:
    """Parses `git diff-tree -z --raw --numstat`: the raw records come first, then the counts."""
    raw: list[tuple[str, str | None, str, str]] = []  # (letter, old path, path, blob)
    counts: dict[str, tuple[int, int, bool]] = {}
    i = 0
    while i < len(tokens) and tokens[i].startswith(":"):
        _, _, old_sha, new_sha, status = tokens[i][1:].split()
        letter = status[:1]
        if letter in ("R", "C"):
            raw.append((letter, tokens[i + 1], tokens[i + 2], new_sha))
            i += 3
        else:
            raw.append((letter, None, tokens[i + 1], old_sha if letter == "D" else new_sha))
            i += 2
    while i < len(tokens) and tokens[i]:
        added, deleted, path = tokens[i].split("\t", 2)
        if path == "":  # a rename or a copy: the two paths follow
            path = tokens[i + 2]
            i += 3
        else:
            i += 1
        binary = added == "-"
        counts[path] = (0 if binary else int(added), 0 if binary else int(deleted), binary)
    return [
        FileChange(
            path,
            GIT_STATUS.get(letter, "modified"),
            old,
            *counts.get(path, (0, 0, False))[:2],
            sha,
            counts.get(path, (0, 0, False))[2],
        )
        for letter, old, path, sha in raw
    ]
