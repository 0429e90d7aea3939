"""The outbox's rows: side effects queued to be sent exactly once, with their attempts and
errors."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


#: What a delivery can be: held by this process, waiting in the database, or finished.
@dataclass(frozen=True)
class OutboxItem:
    id: int
    key: str
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    delivery_id: str | None
    created_at: float
    delivered_at: float | None


def _outbox(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        key=row["key"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        delivery_id=row["delivery_id"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


def enqueue_outbox(
    conn: sqlite3.Connection,
    *,
    key: str,
    kind: str,
    payload: Mapping[str, Any],
    delivery_id: str | None = None,
) -> bool:
    """Queues a side effect once per key, ever; False when the key was queued before."""
    return (
        conn.execute(
            "INSERT OR IGNORE INTO outbox (key, kind, payload, delivery_id, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, kind, json.dumps(payload), delivery_id, time.time()),
        ).rowcount
        == 1
    )


def due_outbox(conn: sqlite3.Connection, now: float, limit: int = 20) -> list[OutboxItem]:
    rows = conn.execute(
        "SELECT * FROM outbox INDEXED BY outbox_status"
        " WHERE status = 'pending' AND next_attempt_at <= ?"
        " ORDER BY id LIMIT ?",
        (now, limit),
    ).fetchall()
    return [_outbox(row) for row in rows]


def next_outbox_due_at(conn: sqlite3.Connection) -> float | None:
    return conn.execute(
        "SELECT MIN(next_attempt_at) FROM outbox INDEXED BY outbox_due WHERE status = 'pending'"
    ).fetchone()[0]


def mark_outbox(
    conn: sqlite3.Connection,
    item_id: int,
    *,
    status: str,
    error: str | None = None,
    next_attempt_at: float = 0.0,
) -> None:
    conn.execute(
        "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?,"
        " next_attempt_at = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? END WHERE id = ?",
        (status, error, next_attempt_at, status, time.time(), item_id),
    )


def list_outbox(
    conn: sqlite3.Connection, *, status: str | None = None, limit: int = 50
) -> list[OutboxItem]:
    if status is None:
        rows = conn.execute("SELECT * FROM outbox ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM outbox WHERE status = ? ORDER BY id DESC LIMIT ?", (status, limit)
        ).fetchall()
    return [_outbox(row) for row in rows]


def retry_outbox(conn: sqlite3.Connection, item_id: int) -> bool:
    """Puts a failed outbox item back in the queue, e.g. after fixing a Slack channel name."""
    return (
        conn.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = 0 WHERE id = ?"
            " AND status != 'delivered'",
            (item_id,),
        ).rowcount
        == 1
    )
