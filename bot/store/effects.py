"""Idempotency keys: which side effects were already carried out, so a replay does not
repeat them."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable


def effect_done(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute("SELECT 1 FROM effects WHERE key = ?", (key,)).fetchone() is not None


def record_effect(conn: sqlite3.Connection, key: str, detail: str = "") -> bool:
    """Records that a side effect happened; False when it had been recorded already."""
    return (
        conn.execute(
            "INSERT OR IGNORE INTO effects (key, detail, created_at) VALUES (?, ?, ?)",
            (key, detail, time.time()),
        ).rowcount
        == 1
    )


def effects_done(conn: sqlite3.Connection, keys: Iterable[str]) -> set[str]:
    """Which of `keys` were recorded: one statement for a set of keys asked together."""
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT key FROM effects WHERE key IN ({marks})"  # noqa: S608
        found.update(row[0] for row in conn.execute(sql, chunk))
    return found
