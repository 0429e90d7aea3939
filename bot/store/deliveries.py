"""Deliveries as the store keeps them: intake, the queue, replay, and the pushes a PR saw.

The server runs these through `Store.call` (group commit) and the command line through
`Store.call_sync`, so both share one implementation of every query, and one rule for what may
be replayed (`REPLAYABLE`), whichever of the two asks.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: What a delivery can be: held by this process, waiting in the database, or finished.
#: What a delivery can be: held by this process, waiting in the database, or finished.
DELIVERY_STATES = ("in_memory", "stored", "done", "failed")


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery as accepted; `body` is the raw bytes GitHub signed."""

    id: str
    event: str
    headers: Mapping[str, str]
    body: bytes
    action: str | None = None
    repo: str | None = None
    installation_id: int | None = None
    #: the pull request's or issue's number, for the deliveries about one
    number: int | None = None
    seq: int = 0
    status: str = "in_memory"
    attempts: int = 0
    done_callbacks: tuple[str, ...] = ()
    error: str | None = None
    received_at: float = 0.0
    finished_at: float | None = None
    #: The parsed payload when the accepting process already parsed it; never stored.
    data: Any = field(default=None, compare=False, repr=False)

    def payload(self) -> Any:
        return self.data if self.data is not None else json.loads(self.body)


def delivery_number(data: Mapping[str, Any]) -> int | None:
    """The pull request's or issue's number a payload is about, as its row keeps it."""
    for key in ("pull_request", "issue"):
        item = data.get(key)
        if isinstance(item, dict):
            number = item.get("number")
            if (
                isinstance(number, int)
                and not isinstance(number, bool)
                and -(2**63) <= number < 2**63
            ):
                return number
    return None


# ---------------------------------------------------------------------- operations
# Plain functions over a connection, so the server (through Store.call) and the command line
# (through Store.call_sync) share one implementation of every query.


def insert_deliveries(conn: sqlite3.Connection, deliveries: list[Delivery]) -> list[bool]:
    """Stores deliveries in two statements; for each, False when its id was already stored."""
    ids = [d.id for d in deliveries]
    known: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        known.update(
            row[0]
            for row in conn.execute(f"SELECT id FROM deliveries WHERE id IN ({marks})", chunk)  # noqa: S608
        )
    fresh: list[Delivery] = []
    answers: list[bool] = []
    for d in deliveries:
        new = d.id not in known
        known.add(d.id)  # the same id twice in one batch is a redelivery too
        answers.append(new)
        if new:
            fresh.append(d)
    if not fresh:
        return answers
    now = time.time()
    conn.executemany(
        "INSERT INTO deliveries"
        " (id, event, action, repo, installation_id, number, received_at, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                d.id,
                d.event,
                d.action,
                d.repo,
                d.installation_id,
                d.number,
                d.received_at or now,
                d.status,
            )
            for d in fresh
        ],
    )
    # AUTOINCREMENT hands out consecutive seqs within one transaction.
    last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'").fetchone()[0]
    first = last - len(fresh) + 1
    conn.executemany(
        "INSERT INTO delivery_bodies (seq, headers, body) VALUES (?, ?, ?)",
        [
            (first + i, json.dumps(dict(d.headers)), zlib.compress(d.body, 1))
            for i, d in enumerate(fresh)
        ],
    )
    return answers


#: A delivery whose body retention pruned keeps its row: its headers and body read as empty.
_WITH_BODY = (
    "SELECT d.*, b.headers, b.body FROM deliveries d {}"
    " LEFT JOIN delivery_bodies b ON b.seq = d.seq"
)
_SELECT_DELIVERY = _WITH_BODY.format("")
#: Walks pending rows in arrival order rather than letting the planner sort the backlog.
_SELECT_QUEUE = _WITH_BODY.format("INDEXED BY deliveries_status")


def _delivery(row: sqlite3.Row, *, with_body: bool = True) -> Delivery:
    return Delivery(
        id=row["id"],
        event=row["event"],
        headers=json.loads(row["headers"]) if with_body and row["headers"] else {},
        body=zlib.decompress(row["body"]) if with_body and row["body"] is not None else b"",
        action=row["action"],
        repo=row["repo"],
        installation_id=row["installation_id"],
        number=row["number"],
        seq=row["seq"],
        status=row["status"],
        attempts=row["attempts"],
        done_callbacks=tuple(json.loads(row["done_callbacks"])),
        error=row["error"],
        received_at=row["received_at"],
        finished_at=row["finished_at"],
    )


def claim_due_deliveries(conn: sqlite3.Connection, now: float, limit: int) -> list[Delivery]:
    """Takes the oldest due `stored` deliveries, in arrival order, into this process's memory."""
    rows = conn.execute(
        f"{_SELECT_QUEUE} WHERE d.status = 'stored' AND d.next_attempt_at <= ?"
        " ORDER BY d.seq LIMIT ?",
        (now, limit),
    ).fetchall()
    if rows:
        conn.executemany(
            "UPDATE deliveries SET status = 'in_memory' WHERE seq = ?",
            [(row["seq"],) for row in rows],
        )
    return [_delivery(row) for row in rows]


def next_due_at(conn: sqlite3.Connection) -> float | None:
    row = conn.execute(
        "SELECT MIN(next_attempt_at) FROM deliveries INDEXED BY deliveries_due"
        " WHERE status = 'stored'"
    ).fetchone()
    return row[0]


def finish_delivery(
    conn: sqlite3.Connection,
    delivery_id: str,
    *,
    status: str,
    attempts: int,
    done_callbacks: Iterable[str],
    error: str | None = None,
    next_attempt_at: float = 0.0,
) -> None:
    conn.execute(
        "UPDATE deliveries SET status = ?, attempts = ?, done_callbacks = ?, error = ?,"
        " next_attempt_at = ?, finished_at = CASE WHEN ? IN ('done', 'failed') THEN ? END"
        " WHERE id = ?",
        (
            status,
            attempts,
            json.dumps(sorted(set(done_callbacks))),
            error,
            next_attempt_at,
            status,
            time.time(),
            delivery_id,
        ),
    )


def requeue_unfinished(conn: sqlite3.Connection) -> int:
    """Puts deliveries a stopped or crashed process had accepted back in the database queue."""
    return conn.execute(
        "UPDATE deliveries SET status = 'stored' WHERE status = 'in_memory'"
    ).rowcount


#: Deliveries that may be queued again: those no worker holds. One still `in_memory` or
#: `stored` may be in a worker's hands or about to be, and replaying it would handle it twice
#: at once.
REPLAYABLE = ("done", "failed")

#: What asking to replay a delivery came to: queued again, or why not.
ReplayOutcome = Literal["queued", "missing", "unfinished", "pruned"]


def replay_delivery(conn: sqlite3.Connection, delivery_id: str) -> ReplayOutcome:
    """Queues a finished delivery again from scratch, or says why it was left alone.

    The one rule the operator page and `bot replay` both apply: only a delivery no worker holds
    (:data:`REPLAYABLE`), and only while retention has left its body (there is nothing else to
    handle). The check and the update are one statement, so a worker taking the delivery in
    between cannot be raced.
    """
    queued = conn.execute(
        "UPDATE deliveries SET status = 'stored', attempts = 0, next_attempt_at = 0,"
        " done_callbacks = '[]', error = NULL, finished_at = NULL"
        " WHERE id = ? AND status IN (SELECT value FROM json_each(?))"
        " AND EXISTS (SELECT 1 FROM delivery_bodies b WHERE b.seq = deliveries.seq)",
        (delivery_id, json.dumps(REPLAYABLE)),
    ).rowcount
    if queued == 1:
        return "queued"
    row = conn.execute("SELECT status FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    if row is None:
        return "missing"
    return "unfinished" if row[0] not in REPLAYABLE else "pruned"


def get_delivery(conn: sqlite3.Connection, delivery_id: str) -> Delivery | None:
    row = conn.execute(f"{_SELECT_DELIVERY} WHERE d.id = ?", (delivery_id,)).fetchone()
    return _delivery(row) if row else None


def list_deliveries(
    conn: sqlite3.Connection, *, status: str | None = None, limit: int = 50
) -> list[Delivery]:
    if status is None:
        rows = conn.execute(f"{_SELECT_DELIVERY} ORDER BY d.seq DESC LIMIT ?", (limit,)).fetchall()
    else:
        rows = conn.execute(
            f"{_SELECT_DELIVERY} WHERE d.status = ? ORDER BY d.seq DESC LIMIT ?",
            (status, limit),
        ).fetchall()
    return [_delivery(row) for row in rows]


def page_deliveries(
    conn: sqlite3.Connection,
    *,
    status: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """Newest first, below the `before` seq, without headers or bodies: a page listing 50
    deliveries never decompresses their payloads."""
    sql = "SELECT * FROM deliveries WHERE 1"
    args: list[Any] = []
    if status:
        sql += " AND status = ?"
        args.append(status)
    if before is not None:
        sql += " AND seq < ?"
        args.append(before)
    sql += " ORDER BY seq DESC LIMIT ?"
    args.append(limit)
    return [_delivery(row, with_body=False) for row in conn.execute(sql, args)]


def count_deliveries(conn: sqlite3.Connection, *, status: str | None = None) -> int:
    if status is None:
        return conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    return conn.execute("SELECT COUNT(*) FROM deliveries WHERE status = ?", (status,)).fetchone()[0]


def count_received_since(conn: sqlite3.Connection, since: float) -> dict[str, int]:
    """Deliveries received from `since` on, by status: what the last hour brought."""
    rows = conn.execute(
        "SELECT status, COUNT(*) FROM deliveries WHERE received_at >= ? GROUP BY status",
        (since,),
    )
    return {row[0]: row[1] for row in rows}


def count_failed_since(conn: sqlite3.Connection, since: float) -> int:
    """Deliveries that ended `failed` from `since` on."""
    return conn.execute(
        "SELECT COUNT(*) FROM deliveries WHERE status = 'failed' AND finished_at >= ?", (since,)
    ).fetchone()[0]


def queue_depth(conn: sqlite3.Connection) -> int:
    """Deliveries accepted and not yet finished."""
    return conn.execute(
        "SELECT COUNT(*) FROM deliveries WHERE status IN ('in_memory', 'stored')"
    ).fetchone()[0]


# ---------------------------------------------------------------------- pushes


#: How many of one pull request's head-moving deliveries a look-up reads, newest first.
PUSH_SCAN_LIMIT = 1000


@dataclass(frozen=True)
class PushRecord:
    """A stored delivery that told the bot a pull request's head became `sha`.

    Everything but `received_at` is what GitHub signed (the commit, who pushed it, the head it
    replaced); `received_at` is the bot's own clock when the delivery arrived. Neither is written
    by the pull request's author, unlike a commit's dates.
    """

    sha: str
    received_at: float
    sender: str
    action: str
    #: The head this push replaced (`synchronize` only): the chain of pushes, whatever order
    #: their deliveries arrived in.
    before: str | None = None


def push_records(
    conn: sqlite3.Connection, repo: str, number: int, *, scan_limit: int = PUSH_SCAN_LIMIT
) -> list[PushRecord]:
    """The `opened`, `reopened` and `synchronize` deliveries of one pull request, in arrival
    order, from the bodies GitHub signed.

    The pull request's deliveries are found by its number (an index), newest first, at most
    `scan_limit` of them. Deliveries stored before the bot kept numbers, and those whose body
    retention pruned, are not returned: a caller must read a missing record as not knowing.
    """
    rows = conn.execute(
        "SELECT d.received_at, b.body FROM deliveries d CROSS JOIN delivery_bodies b"
        " ON b.seq = d.seq WHERE d.repo = ? COLLATE NOCASE AND d.number = ?"
        " AND d.event = 'pull_request' AND d.action IN ('opened', 'reopened', 'synchronize')"
        " ORDER BY d.seq DESC LIMIT ?",
        (repo, number, scan_limit),
    )
    found: list[PushRecord] = []
    for received_at, compressed in rows:
        record = _push_record(zlib.decompress(compressed), number, received_at)
        if record is not None:
            found.append(record)
    found.reverse()
    return found


def _push_record(body: bytes, number: int, received_at: float) -> PushRecord | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    pull = data.get("pull_request") if isinstance(data, dict) else None
    if not isinstance(pull, dict) or pull.get("number") != number:
        return None
    action, head, sender = data.get("action"), pull.get("head"), data.get("sender")
    if action == "synchronize":
        sha, before = data.get("after"), data.get("before")
    else:
        sha, before = (head.get("sha") if isinstance(head, dict) else None), None
    login = sender.get("login") if isinstance(sender, dict) else None
    if not (isinstance(sha, str) and isinstance(login, str) and isinstance(action, str)):
        return None
    return PushRecord(sha, received_at, login, action, before if isinstance(before, str) else None)
