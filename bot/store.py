"""Durable state in one SQLite file: deliveries, jobs, runs, the outbox and idempotency keys.

A delivery's status is `in_memory` while the process that accepted it holds it in memory,
`stored` while it waits in the database only (for a retry, a replay, or after a restart), then
`done` or `failed`. A process that starts turns every `in_memory` row it finds into `stored`.

Group commit: an operation is queued, and every operation queued while the previous commit was
on its way to disk is applied in one transaction with one fsync, after which all their callers
resume. Under
load many webhook deliveries share a commit, while each caller still learns of its result only
once its row is on disk. Statements run on the event loop's own thread (handing every statement to
another thread waits on the interpreter lock each time, which measured slower); only the COMMIT,
which waits for the disk, runs on a helper thread, so parsing goes on during the fsync.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
        status          TEXT NOT NULL DEFAULT 'queued',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        done_callbacks  TEXT NOT NULL DEFAULT '[]',
        error           TEXT,
        received_at     REAL NOT NULL,
        finished_at     REAL
    );
    CREATE INDEX deliveries_queue ON deliveries (status, next_attempt_at, seq);

    -- Kept apart so that status updates rewrite a small row, not a payload of many pages.
    -- Bodies are zlib-compressed: webhook JSON shrinks several times, and bytes written to
    -- the WAL (then again by checkpoints) are what a durable commit waits for.
    CREATE TABLE delivery_bodies (
        seq     INTEGER PRIMARY KEY REFERENCES deliveries (seq),
        headers TEXT NOT NULL,
        body    BLOB NOT NULL
    );

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
    # Queues are read by status in arrival order; an index on status alone keeps rows in rowid
    # order within a status, so claiming the oldest pending rows reads only those rows (the
    # first index sorted the whole backlog on every claim). The partial indexes answer "when is
    # the next retry due" without scanning a backlog.
    """
    DROP INDEX deliveries_queue;
    CREATE INDEX deliveries_status ON deliveries (status);
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
    DROP INDEX outbox_queue;
    CREATE INDEX outbox_status ON outbox (status);
    CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
    """,
    # One row that /healthz writes while the last write failed, to learn when writes work again.
    """
    CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL, filler BLOB);
    """,
    # Delivery states named for what they mean: `queued` was "held in memory", `pending` was
    # "waiting in the database".
    """
    UPDATE deliveries SET status = 'stored' WHERE status = 'pending';
    UPDATE deliveries SET status = 'in_memory' WHERE status = 'queued';
    DROP INDEX deliveries_due;
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'stored';
    """,
    # The first `jobs` and `runs` tables were never used. A run is one request by a person (a
    # `run-slow` comment), its jobs are what a runner executes. `version` counts a run's state
    # changes and `reported_version` the last one its feature reported, so a report lost with
    # the process is made by the next one. Blobs are zlib-compressed and bounded by bot/jobs.py.
    """
    DROP TABLE runs;
    DROP TABLE jobs;
    CREATE TABLE runs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        kind             TEXT NOT NULL,
        key              TEXT UNIQUE,
        repo             TEXT NOT NULL,
        number           INTEGER,
        head_sha         TEXT NOT NULL,
        base_ref         TEXT,
        requested_by     TEXT,
        requested_at     REAL NOT NULL,
        status           TEXT NOT NULL DEFAULT 'queued',
        reason           TEXT,
        spec             TEXT NOT NULL DEFAULT '{}',
        superseded_by    INTEGER REFERENCES runs (id),
        version          INTEGER NOT NULL DEFAULT 1,
        reported_version INTEGER NOT NULL DEFAULT 0,
        created_at       REAL NOT NULL,
        started_at       REAL,
        finished_at      REAL
    );
    CREATE INDEX runs_pull ON runs (repo, number, id);
    CREATE INDEX runs_active ON runs (status) WHERE status IN ('queued', 'running');
    CREATE INDEX runs_unreported ON runs (id) WHERE reported_version < version;
    CREATE TABLE jobs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id       INTEGER NOT NULL REFERENCES runs (id),
        kind         TEXT NOT NULL,
        name         TEXT NOT NULL,
        spec         TEXT NOT NULL DEFAULT '{}',
        status       TEXT NOT NULL DEFAULT 'queued',
        attempts     INTEGER NOT NULL DEFAULT 0,
        passed       INTEGER NOT NULL DEFAULT 0,
        failed       INTEGER NOT NULL DEFAULT 0,
        skipped      INTEGER NOT NULL DEFAULT 0,
        errors       INTEGER NOT NULL DEFAULT 0,
        duration_s   REAL,
        busy_s       REAL,
        reason       TEXT,
        failures     TEXT NOT NULL DEFAULT '[]',
        failed_tests TEXT NOT NULL DEFAULT '[]',
        tested_sha   TEXT,
        exit_code    INTEGER,
        timings      TEXT NOT NULL DEFAULT '{}',
        results      BLOB,
        log          BLOB,
        junit        BLOB,
        created_at   REAL NOT NULL,
        started_at   REAL,
        finished_at  REAL,
        UNIQUE (run_id, name)
    );
    CREATE INDEX jobs_status ON jobs (status);
    CREATE INDEX jobs_run ON jobs (run_id);
    CREATE INDEX jobs_durations ON jobs (kind, name, id)
        WHERE status IN ('passed', 'failed', 'timed_out');
    """,
)

#: What a delivery can be: held by this process, waiting in the database, or finished.
DELIVERY_STATES = ("in_memory", "stored", "done", "failed")


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
    __slots__ = ("delivery", "fn", "future", "loop", "result", "savepoint")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any] | None,
        loop: Any,
        future: Any,
        delivery: Delivery | None = None,
        savepoint: bool = True,
    ) -> None:
        self.fn, self.loop, self.future, self.delivery = fn, loop, future, delivery
        self.savepoint = savepoint
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
        self._pending: list[_Op] = []
        self._flush_scheduled = False
        self._committing = False
        # COMMIT (the fsync) runs here, so the event loop parses the next requests meanwhile;
        # statements run on the loop's thread, and never while a COMMIT is in flight.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-commit")
        self._closed = False
        self.commits = 0  # transactions flushed; /metrics shows it beside the deliveries
        #: Why the last transaction that wrote could not commit (a full disk, a read-only
        #: file), None once one commits again: what /healthz reports.
        self.write_error: str | None = None

    # ------------------------------------------------------------------ plumbing

    def _enqueue(self, op: _Op) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")
        self._pending.append(op)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            op.loop.call_soon(self._flush)

    async def call(self, fn: Callable[[sqlite3.Connection], T], *, single: bool = False) -> T:
        """Runs `fn(conn)` inside the next group transaction and waits for its commit.

        `single=True` says `fn` runs one statement, which SQLite already makes atomic, so the
        savepoint that isolates a failing operation from the rest of its batch can be skipped.
        """
        return await self.submit(fn, single=single)

    def submit(
        self, fn: Callable[[sqlite3.Connection], T], *, single: bool = False
    ) -> asyncio.Future[T]:
        """Like `call`, for a caller that goes on working and looks at the result later."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._enqueue(_Op(fn, loop, future, savepoint=not single))
        return future

    async def ingest(self, delivery: Delivery) -> bool:
        """Stores a delivery; False when its id was stored before (a redelivery)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(_Op(None, loop, future, delivery))
        return await future

    def _flush(self) -> None:
        # Everything queued since the last flush shares one transaction and one fsync.
        self._flush_scheduled = False
        if self._committing or not self._pending or self._closed:
            return  # a commit in flight flushes again when it is done
        batch, self._pending = self._pending, []
        changes = self._conn.total_changes
        if not self._stage(self._conn, batch):
            _settle(batch)
            return
        wrote = self._conn.total_changes != changes
        self._committing = True
        loop = batch[0].loop
        done = loop.run_in_executor(self._committer, self._commit)
        done.add_done_callback(lambda future: self._committed(batch, future, wrote))

    def _commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _committed(self, batch: list[_Op], future: asyncio.Future[None], wrote: bool) -> None:
        self._committing = False
        error = (
            StoreClosed("the store closed during the commit")
            if future.cancelled()
            else future.exception()
        )
        if error is not None:
            self.write_error = f"{type(error).__name__}: {error}"
            for op in batch:
                op.result = (False, error)
        else:
            self.commits += 1
            if wrote:
                self.write_error = None
        _settle(batch)
        if self._pending and not self._flush_scheduled:
            self._flush_scheduled = True
            self._pending[0].loop.call_soon(self._flush)

    def call_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `fn(conn)` in its own transaction at once (command-line use)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return result

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._committer.shutdown(wait=True)  # lets a commit in flight reach the disk
        if self._pending:
            batch, self._pending = self._pending, []
            if self._stage(self._conn, batch):
                try:
                    self._commit()
                except Exception as exc:
                    for op in batch:
                        op.result = (False, exc)
            _settle(batch)
        self._conn.close()

    def _stage(self, conn: sqlite3.Connection, batch: list[_Op]) -> bool:
        """Runs a batch's statements in an open transaction; False (and rolled back) on error."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            ingests = [op for op in batch if op.delivery is not None]
            if ingests:
                _stage_ingests(conn, ingests)
            for op in batch:
                if op.fn is None:
                    continue
                if not op.savepoint:
                    try:
                        op.result = (True, op.fn(conn))
                    except Exception as exc:
                        if not conn.in_transaction:
                            raise  # SQLite rolled back the whole transaction (a full disk)
                        op.result = (False, exc)
                    continue
                # A savepoint per operation: one failing operation leaves the others intact.
                conn.execute("SAVEPOINT op")
                try:
                    op.result = (True, op.fn(conn))
                    conn.execute("RELEASE op")
                except Exception as exc:
                    if not conn.in_transaction:
                        raise
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    op.result = (False, exc)
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.write_error = f"{type(exc).__name__}: {exc}"
            for op in batch:
                op.result = (False, exc)
            return False
        return True


def _stage_ingests(conn: sqlite3.Connection, ingests: list[_Op]) -> None:
    """Two statements for many deliveries; if the group fails, each on its own.

    One delivery's problem must never fail another's request: a row SQLite refuses takes the
    group's statements down with it, so the members are then inserted one by one and only the
    one that fails alone is answered with its error.
    """
    conn.execute("SAVEPOINT ingest")
    try:
        answers = insert_deliveries(conn, [op.delivery for op in ingests])  # type: ignore[misc]
    except (sqlite3.Error, ValueError, OverflowError):
        if not conn.in_transaction:
            raise  # SQLite rolled the whole transaction back (a full disk): nobody is stored
        conn.execute("ROLLBACK TO ingest")
    else:
        conn.execute("RELEASE ingest")
        for op, new in zip(ingests, answers, strict=True):
            op.result = (True, new)
        return
    conn.execute("RELEASE ingest")
    for op in ingests:
        conn.execute("SAVEPOINT ingest")
        try:
            op.result = (True, insert_deliveries(conn, [op.delivery])[0])  # type: ignore[list-item]
            conn.execute("RELEASE ingest")
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            if not conn.in_transaction:
                raise
            conn.execute("ROLLBACK TO ingest")
            conn.execute("RELEASE ingest")
            op.result = (False, exc)


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
        "INSERT INTO deliveries (id, event, action, repo, installation_id, received_at, status)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (d.id, d.event, d.action, d.repo, d.installation_id, d.received_at or now, d.status)
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


_WITH_BODY = (
    "SELECT d.*, b.headers, b.body FROM deliveries d {} JOIN delivery_bodies b ON b.seq = d.seq"
)
_SELECT_DELIVERY = _WITH_BODY.format("")
#: Walks pending rows in arrival order rather than letting the planner sort the backlog.
_SELECT_QUEUE = _WITH_BODY.format("INDEXED BY deliveries_status")


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        id=row["id"],
        event=row["event"],
        headers=json.loads(row["headers"]),
        body=zlib.decompress(row["body"]),
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


def replay_delivery(conn: sqlite3.Connection, delivery_id: str) -> bool:
    """Queues a stored delivery again from scratch, whatever became of it."""
    return (
        conn.execute(
            "UPDATE deliveries SET status = 'stored', attempts = 0, next_attempt_at = 0,"
            " done_callbacks = '[]', error = NULL, finished_at = NULL WHERE id = ?",
            (delivery_id,),
        ).rowcount
        == 1
    )


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


def count_deliveries(conn: sqlite3.Connection, *, status: str | None = None) -> int:
    if status is None:
        return conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    return conn.execute("SELECT COUNT(*) FROM deliveries WHERE status = ?", (status,)).fetchone()[0]


def queue_depth(conn: sqlite3.Connection) -> int:
    """Deliveries accepted and not yet finished."""
    return conn.execute(
        "SELECT COUNT(*) FROM deliveries WHERE status IN ('in_memory', 'stored')"
    ).fetchone()[0]


def heartbeat(conn: sqlite3.Connection) -> None:
    """A write the size of a large delivery, so it fails where a delivery would."""
    conn.execute(
        "INSERT OR REPLACE INTO heartbeat (id, at, filler) VALUES (1, ?, randomblob(65536))",
        (time.time(),),
    )


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
