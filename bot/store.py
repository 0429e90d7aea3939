"""Durable state in one SQLite file: deliveries, jobs, runs, the outbox and idempotency keys.

Why one writer thread: SQLite allows one writer at a time, and a web server that wrote from many
threads would spend its time waiting on locks. Every operation is queued to a single thread that
owns the connection; whatever queued while the previous commit was being flushed is applied in
the next transaction, so under load one fsync covers many webhook deliveries (group commit) while
each caller still learns of its result only once its row is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Each entry moves the schema one version forward; never edit an entry once released.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE deliveries (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        id              TEXT NOT NULL UNIQUE,
        event           TEXT NOT NULL,
        action          TEXT,
        repo            TEXT,
        installation_id INTEGER,
        headers         TEXT NOT NULL,
        body            BLOB NOT NULL,
        status          TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        done_callbacks  TEXT NOT NULL DEFAULT '[]',
        error           TEXT,
        received_at     REAL NOT NULL,
        finished_at     REAL
    );
    CREATE INDEX deliveries_queue ON deliveries (status, next_attempt_at, seq);

    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        key         TEXT NOT NULL UNIQUE,
        repo        TEXT,
        payload     TEXT NOT NULL,
        status      TEXT NOT NULL DEFAULT 'queued',
        attempts    INTEGER NOT NULL DEFAULT 0,
        result      TEXT,
        error       TEXT,
        created_at  REAL NOT NULL,
        started_at  REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_queue ON jobs (status, id);

    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id      INTEGER NOT NULL REFERENCES jobs (id),
        name        TEXT NOT NULL,
        status      TEXT NOT NULL DEFAULT 'queued',
        summary     TEXT,
        log         TEXT,
        started_at  REAL,
        finished_at REAL
    );
    CREATE INDEX runs_job ON runs (job_id);

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        key             TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,
        payload         TEXT NOT NULL,
        status          TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error      TEXT,
        delivery_id     TEXT,
        created_at      REAL NOT NULL,
        delivered_at    REAL
    );
    CREATE INDEX outbox_queue ON outbox (status, next_attempt_at, id);

    CREATE TABLE effects (
        key        TEXT PRIMARY KEY,
        detail     TEXT,
        created_at REAL NOT NULL
    );
    """,
)

_BATCH_LIMIT = 1024


class StoreClosed(RuntimeError):
    """Raised to callers whose operation was queued after the store began closing."""


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
    seq: int = 0
    status: str = "pending"
    attempts: int = 0
    done_callbacks: tuple[str, ...] = ()
    error: str | None = None
    received_at: float = 0.0
    finished_at: float | None = None

    def payload(self) -> Any:
        return json.loads(self.body)


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


class _Op:
    __slots__ = ("fn", "future", "loop", "result")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], loop: Any, future: Any) -> None:
        self.fn, self.loop, self.future = fn, loop, future
        self.result: tuple[bool, Any] = (False, None)


def connect(path: str) -> sqlite3.Connection:
    """Opens the database in WAL mode with durable commits and brings the schema up to date."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is fsynced before it returns, so a 202 means the delivery survives power loss.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    _migrate(conn)
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this bot knows ({len(MIGRATIONS)})"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class Store:
    """Async front of the database; `call_sync` serves one-shot command-line use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = connect(path)
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.commits = 0  # how many transactions were flushed; the ingest benchmark reads it

    # ------------------------------------------------------------------ plumbing

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._writer, name="store", daemon=True)
                self._thread.start()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn(conn)` inside the writer's next transaction and waits for its commit."""
        if self._closed:
            raise StoreClosed("the store is closed")
        self.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Op(fn, loop, future))
        return await future

    def call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn(conn)` in its own transaction on the calling thread (command-line use)."""
        if self._thread is not None:
            raise RuntimeError("call_sync is for stores without a running writer thread")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
        self._conn.close()

    def _writer(self) -> None:
        conn = self._conn
        while True:
            first = self._queue.get()
            if first is None:
                self._fail_pending()
                return
            batch = [first]
            stop = False
            while len(batch) < _BATCH_LIMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._apply(conn, batch)
            if stop:
                self._fail_pending()
                return

    def _apply(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                # A savepoint per operation: one failing operation leaves the others intact.
                conn.execute("SAVEPOINT op")
                try:
                    op.result = (True, op.fn(conn))
                    conn.execute("RELEASE op")
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    op.result = (False, exc)
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for op in batch:
                op.result = (False, exc)
        by_loop: dict[Any, list[_Op]] = {}
        for op in batch:
            by_loop.setdefault(op.loop, []).append(op)
        for loop, ops in by_loop.items():
            # A closed event loop raises: nobody waits for those results any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, ops)

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.result = (False, StoreClosed("the store closed before this ran"))
                with contextlib.suppress(RuntimeError):
                    item.loop.call_soon_threadsafe(_settle, [item])

    # ------------------------------------------------------------------ deliveries

    async def ingest(self, delivery: Delivery) -> bool:
        """Stores a delivery; False when its id was stored before (a redelivery)."""
        return await self.call(lambda conn: insert_delivery(conn, delivery))


def _settle(ops: Iterable[_Op]) -> None:
    for op in ops:
        if op.future.done():  # the waiting request was cancelled; its row is stored anyway
            continue
        ok, value = op.result
        if ok:
            op.future.set_result(value)
        else:
            op.future.set_exception(value)


# ---------------------------------------------------------------------- operations
# Plain functions over a connection, so the server (through Store.call) and the command line
# (through Store.call_sync) share one implementation of every query.


def insert_delivery(conn: sqlite3.Connection, d: Delivery) -> bool:
    cursor = conn.execute(
        "INSERT OR IGNORE INTO deliveries"
        " (id, event, action, repo, installation_id, headers, body, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            d.id,
            d.event,
            d.action,
            d.repo,
            d.installation_id,
            json.dumps(dict(d.headers)),
            d.body,
            d.received_at or time.time(),
        ),
    )
    return cursor.rowcount == 1


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        id=row["id"],
        event=row["event"],
        headers=json.loads(row["headers"]),
        body=bytes(row["body"]),
        action=row["action"],
        repo=row["repo"],
        installation_id=row["installation_id"],
        seq=row["seq"],
        status=row["status"],
        attempts=row["attempts"],
        done_callbacks=tuple(json.loads(row["done_callbacks"])),
        error=row["error"],
        received_at=row["received_at"],
        finished_at=row["finished_at"],
    )


def claim_due_deliveries(conn: sqlite3.Connection, now: float, limit: int) -> list[Delivery]:
    """Takes the oldest due deliveries, in arrival order, and marks them as being processed."""
    rows = conn.execute(
        "SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?"
        " ORDER BY seq LIMIT ?",
        (now, limit),
    ).fetchall()
    if rows:
        conn.executemany(
            "UPDATE deliveries SET status = 'processing' WHERE seq = ?",
            [(row["seq"],) for row in rows],
        )
    return [_delivery(row) for row in rows]


def next_due_at(conn: sqlite3.Connection) -> float | None:
    row = conn.execute(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'"
    ).fetchone()
    return row[0]


def finish_delivery(
    conn: sqlite3.Connection,
    seq: int,
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
        " WHERE seq = ?",
        (
            status,
            attempts,
            json.dumps(sorted(set(done_callbacks))),
            error,
            next_attempt_at,
            status,
            time.time(),
            seq,
        ),
    )


def requeue_unfinished(conn: sqlite3.Connection) -> int:
    """Puts deliveries a stopped or crashed process was working on back in the queue."""
    return conn.execute(
        "UPDATE deliveries SET status = 'pending' WHERE status = 'processing'"
    ).rowcount


def replay_delivery(conn: sqlite3.Connection, delivery_id: str) -> bool:
    """Queues a stored delivery again from scratch, whatever became of it."""
    return (
        conn.execute(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = 0,"
            " done_callbacks = '[]', error = NULL, finished_at = NULL WHERE id = ?",
            (delivery_id,),
        ).rowcount
        == 1
    )


def get_delivery(conn: sqlite3.Connection, delivery_id: str) -> Delivery | None:
    row = conn.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    return _delivery(row) if row else None


def list_deliveries(
    conn: sqlite3.Connection, *, status: str | None = None, limit: int = 50
) -> list[Delivery]:
    if status is None:
        rows = conn.execute(
            "SELECT * FROM deliveries ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM deliveries WHERE status = ? ORDER BY seq DESC LIMIT ?",
            (status, limit),
        ).fetchall()
    return [_delivery(row) for row in rows]


def count_by_status(conn: sqlite3.Connection, table: str) -> dict[str, int]:
    if table not in {"deliveries", "jobs", "outbox", "runs"}:
        raise ValueError(f"no such table: {table}")
    rows = conn.execute(f"SELECT status, COUNT(*) FROM {table} GROUP BY status").fetchall()  # noqa: S608
    return {row[0]: row[1] for row in rows}


# ---------------------------------------------------------------------- idempotency keys


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


# ---------------------------------------------------------------------- outbox


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
        "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
        " ORDER BY id LIMIT ?",
        (now, limit),
    ).fetchall()
    return [_outbox(row) for row in rows]


def next_outbox_due_at(conn: sqlite3.Connection) -> float | None:
    return conn.execute(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'"
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
