"""A database as an older bot left it: the migrations up to, not including, the one a test is
about, so the test sees that migration meet real rows (and later migrations cannot make it pass
by accident)."""

from __future__ import annotations

import sqlite3

from bot.store.engine import MIGRATIONS


def database_before(path: str, marker: str) -> sqlite3.Connection:
    """A database at `path` with every migration before the first one whose script holds
    `marker`; its connection, in autocommit."""
    before = MIGRATIONS.index(next(m for m in MIGRATIONS if marker in m))
    old = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:before]:
        for statement in filter(str.strip, script.split(";")):
            old.execute(statement)
    old.execute(f"PRAGMA user_version={before}")
    return old
