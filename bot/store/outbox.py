"""The outbox's rows: side effects queued to be sent exactly once, with their attempts and
errors."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
    #: The key of the item whose message this one replies to, in its thread.
    thread_of: str | None = None
    #: Slack's id of this item's message, once sent by a sender that learns it.
    sent_ts: str | None = None
    #: Read with a due item that replies in a thread: the `ts` of the message it replies to
    #: (None where its sender learnt none) and that message's channel.
    thread_ts: str | None = None
    thread_channel: str | None = None


def _outbox(row: sqlite3.Row) -> OutboxItem:
    names = row.keys()
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
        thread_of=row["thread_of"],
        sent_ts=row["sent_ts"],
        thread_ts=row["thread_ts"] if "thread_ts" in names else None,
        thread_channel=row["thread_channel"] if "thread_channel" in names else None,
    )


#: An item that replies in a thread waits until the thread's first message is delivered (a
#: thread's first message that failed holds its replies back until an operator retries it).
_THREAD_READY = (
    "(o.thread_of IS NULL OR EXISTS (SELECT 1 FROM outbox AS p"
    " WHERE p.key = o.thread_of AND p.status = 'delivered'))"
)


def enqueue_outbox(
    conn: sqlite3.Connection,
    *,
    key: str,
    kind: str,
    payload: Mapping[str, Any],
    delivery_id: str | None = None,
    thread_of: str | None = None,
) -> bool:
    """Queues a side effect once per key, ever; False when the key was queued before.

    With `thread_of` (another item's key) it is sent only once that item was delivered, as a
    reply in its thread."""
    if thread_of == key:
        raise ValueError(f"outbox item {key!r} cannot reply in its own thread")
    return (
        conn.execute(
            "INSERT OR IGNORE INTO outbox (key, kind, payload, delivery_id, created_at,"
            " thread_of) VALUES (?, ?, ?, ?, ?, ?)",
            (key, kind, json.dumps(payload), delivery_id, time.time(), thread_of),
        ).rowcount
        == 1
    )


def due_outbox(conn: sqlite3.Connection, now: float, limit: int = 20) -> list[OutboxItem]:
    """Pending items due by `now`, oldest first; a thread's reply only once its first message
    was delivered, read with that message's `ts` and channel."""
    rows = conn.execute(
        "SELECT o.*, t.sent_ts AS thread_ts, json_extract(t.payload, '$.channel')"  # noqa: S608
        " AS thread_channel FROM outbox AS o INDEXED BY outbox_status"
        " LEFT JOIN outbox AS t ON t.key = o.thread_of"
        f" WHERE o.status = 'pending' AND o.next_attempt_at <= ? AND {_THREAD_READY}"
        " ORDER BY o.id LIMIT ?",
        (now, limit),
    ).fetchall()
    return [_outbox(row) for row in rows]


def next_outbox_due_at(conn: sqlite3.Connection) -> float | None:
    """When the next item can be sent; None when none can (replies waiting for a first
    message that is not delivered wait for that, not for a time)."""
    return conn.execute(
        "SELECT MIN(o.next_attempt_at) FROM outbox AS o INDEXED BY outbox_due"  # noqa: S608
        f" WHERE o.status = 'pending' AND {_THREAD_READY}"
    ).fetchone()[0]


def mark_outbox(
    conn: sqlite3.Connection,
    item_id: int,
    *,
    status: str,
    error: str | None = None,
    next_attempt_at: float = 0.0,
    sent_ts: str | None = None,
) -> None:
    """Records an attempt; a delivered message keeps Slack's `ts` for it, for its replies."""
    conn.execute(
        "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?,"
        " next_attempt_at = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? END,"
        " sent_ts = COALESCE(?, sent_ts) WHERE id = ?",
        (status, error, next_attempt_at, status, time.time(), sent_ts, item_id),
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
