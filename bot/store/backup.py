"""Backups and restores of the store that are never half-written (`bot backup`, `bot restore`).

A backup runs beside a live server. It goes through SQLite's online backup API in steps of a
few hundred pages with a pause between them, inside one read transaction: in WAL mode a reader
never blocks the server's commits, and the open transaction pins one snapshot, so the copy holds
exactly what was committed when it began (without it, every commit by the server would restart
the copy from the first page). The copy is written to a temporary file beside the target, put in
rollback-journal mode (a single self-contained file), checked with `PRAGMA integrity_check`, and
only then renamed into place.

A restore needs the server stopped, and checks that it is: it takes SQLite's exclusive lock on
the live file (`locking_mode=EXCLUSIVE` and `BEGIN EXCLUSIVE`; in WAL mode `BEGIN EXCLUSIVE`
alone takes only the write lock, which an idle server does not hold). Holding that lock, it
folds the live WAL into the file, keeps the file as `<db>.before-restore`, removes the stale
`-wal`/`-shm` files and puts a checked copy of the backup in its place. A later restore keeps
its replaced file as `<db>.before-restore.1`, then `.2`, and so on: what an earlier restore kept
may be the only copy of a database someone needs back, so it is never overwritten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.store.engine import MIGRATIONS

#: Pages copied per step (4 KiB each) and the pause after each step: a 1 GB store takes a few
#: seconds longer to copy, and the server's commits never wait on the copy.
BACKUP_PAGES = 256
BACKUP_PAUSE_S = 0.002
#: How long `restore` waits for the live file's lock before saying the server is running.
LOCK_TIMEOUT_S = 0.5
_SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup or restore refused for a reason the person running it can fix (a path, a
    running server, a damaged copy); nothing was changed."""


@dataclass(frozen=True)
class Holdings:
    """What a database file holds, as `backup` and `restore` print it."""

    size: int
    schema_version: int
    deliveries: int
    runs: int
    jobs: int
    outbox: int

    def describe(self) -> str:
        return (
            f"{_size(self.size)}, schema version {self.schema_version}: {self.deliveries:,}"
            f" deliveries, {self.runs:,} runs, {self.jobs:,} jobs, {self.outbox:,} outbox items"
        )


@dataclass(frozen=True)
class Restored(Holdings):
    """What a restore put in place, and where the database it replaced was kept (None when
    there was none)."""

    kept: Path | None = None


def holdings(conn: sqlite3.Connection, path: str | Path) -> Holdings:
    def count(table: str) -> int:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608

    return Holdings(
        size=Path(path).stat().st_size,
        schema_version=conn.execute("PRAGMA user_version").fetchone()[0],
        deliveries=count("deliveries"),
        runs=count("runs"),
        jobs=count("jobs"),
        outbox=count("outbox"),
    )


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """What `PRAGMA integrity_check` found; empty when the file is sound."""
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    return [] if rows == ["ok"] else rows


# ---------------------------------------------------------------------- backup


def backup(
    database: str,
    target: str,
    *,
    force: bool = False,
    pages: int = BACKUP_PAGES,
    pause_s: float = BACKUP_PAUSE_S,
) -> Holdings:
    """Copies the live `database` to `target` while it serves; returns what the copy holds."""
    source_path, target_path = Path(database), Path(target)
    if not source_path.is_file():
        raise BackupError(f"no database at {database}")
    if target_path.exists():
        if _same_file(source_path, target_path):
            raise BackupError(f"{target} is the live database itself")
        if not force:
            raise BackupError(f"{target} exists; pass --force to replace it")
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        # One read transaction for the whole copy: one snapshot, no restarts (module docstring).
        source.execute("BEGIN")
        source.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        with _temporary_beside(target_path) as partial:
            copy = sqlite3.connect(partial, isolation_level=None)
            try:
                source.backup(copy, pages=pages, progress=lambda *_: time.sleep(pause_s))
                copy.execute("PRAGMA journal_mode=DELETE")
                problems = integrity_problems(copy)
                if problems:
                    raise BackupError(f"the copy failed its integrity check: {problems[:3]}")
                held = holdings(copy, partial)
            finally:
                copy.close()
            _fsync(partial)
            if force:
                _remove_side_files(target_path)  # another file's WAL must never meet this one
            Path(partial).replace(target_path)
            _fsync(target_path.parent)
    finally:
        source.close()
    return held


# ---------------------------------------------------------------------- restore


def restore(database: str, source: str) -> Restored:
    """Replaces the stopped bot's `database` with the backup `source`; returns what it holds.

    The replaced file is kept as `<database>.before-restore`, or the first of
    `<database>.before-restore.1`, `.2`, ... that does not exist yet.
    """
    source_path, live = Path(source), Path(database)
    if not source_path.is_file():
        raise BackupError(f"no backup at {source}")
    if live.exists() and _same_file(source_path, live):
        raise BackupError(f"{source} is the live database itself")
    backup_conn = _open_backup(source_path)
    try:
        live.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(live), _temporary_beside(live) as partial:
            copy = sqlite3.connect(partial, isolation_level=None)
            try:
                backup_conn.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
                held = holdings(copy, partial)
            finally:
                copy.close()
            if live.exists():  # the server's user must still be able to open it
                Path(partial).chmod(live.stat().st_mode & 0o777)
            _fsync(partial)
            kept = _keep_aside(live, database) if live.exists() else None
            _remove_side_files(live)
            Path(partial).replace(live)
            _fsync(live.parent)
    finally:
        backup_conn.close()
    return Restored(**dataclasses.asdict(held), kept=kept)


def before_restore_path(database: str, number: int = 0) -> Path:
    """Where a restore keeps the database it replaces: the first free one of these."""
    suffix = f".{number}" if number else ""
    return Path(f"{database}.before-restore{suffix}")


def _keep_aside(live: Path, database: str) -> Path:
    """A second name for the live file, at the first free `before_restore_path`.

    A hard link, which fails rather than replace a file that exists (a rename would replace it
    without a word, even one made a moment ago); the live name is then replaced by the new
    file, so the old one is never without a name. Where links are not supported it is renamed
    to a name checked free just before.
    """
    number = 0
    while True:
        kept = before_restore_path(database, number)
        try:
            os.link(live, kept)
        except FileExistsError:
            number += 1
            continue
        except OSError:
            if kept.exists() or kept.is_symlink():
                number += 1
                continue
            live.rename(kept)
        return kept


def _open_backup(path: Path) -> sqlite3.Connection:
    """The backup, read-only, once it is sound and its schema is one this bot can run."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        problems = integrity_problems(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable database: {exc}") from None
    try:
        if problems:
            raise BackupError(f"{path} failed its integrity check: {problems[:3]}")
        if version > len(MIGRATIONS):
            raise BackupError(
                f"{path} has schema version {version}, newer than this bot knows"
                f" ({len(MIGRATIONS)}): restore it with the bot that made it"
            )
        if version < 1:
            raise BackupError(f"{path} is not a bot database (schema version {version})")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def _exclusive(live: Path) -> Iterator[None]:
    """Holds the live file locked against every other connection, in this process or another.

    On the way in the file leaves WAL mode, so what its WAL held is in the file itself before the
    file is kept aside, and any `-wal`/`-shm` left beside it afterwards is stale.
    """
    if not live.exists():
        yield
        return
    conn = sqlite3.connect(live, isolation_level=None, timeout=LOCK_TIMEOUT_S)
    try:
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise BackupError(
                    f"{live} is in use by another process: stop `bot serve` first"
                ) from None
            raise
        except sqlite3.DatabaseError as exc:
            raise BackupError(
                f"cannot open {live} ({exc}); move it aside by hand, then restore"
            ) from None
        conn.execute("PRAGMA journal_mode=DELETE")
        yield
    finally:
        conn.close()


# ---------------------------------------------------------------------- files


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[str]:
    """A fresh file in `path`'s folder (so a rename is atomic), removed unless renamed."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    try:
        yield name
    finally:
        for leftover in (name, *(name + suffix for suffix in _SIDE_FILES)):
            with contextlib.suppress(FileNotFoundError):
                Path(leftover).unlink()


def _remove_side_files(path: Path) -> None:
    for suffix in _SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except FileNotFoundError:
        return False


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")
