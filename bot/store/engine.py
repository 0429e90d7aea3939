"""Durable state in one SQLite file: deliveries, jobs, runs, the outbox, idempotency keys,
schedules and what the analysis of a run's failures found.

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
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bot.store.deliveries import Delivery, insert_deliveries

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
    # the process is made by the next one. Blobs are zlib-compressed and bounded by the job
    # system (bot/jobs/system.py).
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
    # A job's structured result for its feature (the `/style` fix: files, commit, errors).
    """
    ALTER TABLE jobs ADD COLUMN result TEXT;
    """,
    # The pull request or issue a delivery is about, so the deliveries that moved one pull
    # request's head (what a `run-slow` approval is judged against) are an index lookup.
    """
    ALTER TABLE deliveries ADD COLUMN number INTEGER;
    CREATE INDEX deliveries_number ON deliveries (repo COLLATE NOCASE, number)
        WHERE number IS NOT NULL;
    """,
    # What the core decides on gets columns of its own instead of keys a feature wrote into the
    # spec: who may see a run (`private`; a spec that did not say `false` was private), the
    # runner its jobs go to (it was each job's `runner`, `local` when absent; a feature gives
    # all jobs of a run the same one), and the feature's memory of its reports (`report_state`,
    # written by compare-and-set). That memory was spec keys: `comment_id`, `check_run_id`,
    # `check_annotations_sent` for `run-slow`, and for `/style` `reply_id` (its comment) and
    # `reacted`; `/style`'s own `comment_id` is the comment that asked, and stays in its spec.
    """
    ALTER TABLE runs ADD COLUMN private INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN runner TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE runs ADD COLUMN report_state TEXT NOT NULL DEFAULT '{}';
    UPDATE runs SET private = json_type(spec, '$.private') IS NOT 'false';
    UPDATE runs SET runner = COALESCE(
        (SELECT json_extract(jobs.spec, '$.runner') FROM jobs
         WHERE jobs.run_id = runs.id ORDER BY jobs.id LIMIT 1),
        'local');
    UPDATE runs SET
        report_state = json_object(
            'comment_id', json_extract(spec, '$.comment_id'),
            'check_run_id', json_extract(spec, '$.check_run_id'),
            'annotations_sent', COALESCE(json_extract(spec, '$.check_annotations_sent'), 0),
            'reacted', json('false')),
        spec = json_remove(spec, '$.comment_id', '$.check_run_id', '$.check_annotations_sent')
        WHERE kind = 'slow_ci';
    UPDATE runs SET
        report_state = json_object(
            'comment_id', json_extract(spec, '$.reply_id'),
            'check_run_id', NULL,
            'annotations_sent', 0,
            'reacted',
            json(CASE WHEN json_extract(spec, '$.reacted') THEN 'true' ELSE 'false' END)),
        spec = json_remove(spec, '$.reply_id', '$.reacted')
        WHERE kind = 'style';
    UPDATE runs SET spec = json_remove(spec, '$.private');
    """,
    # A run's and a job's state is called `state` everywhere else (the records, the runners'
    # outcomes, the pages' filter); the columns now say the same.
    """
    ALTER TABLE runs RENAME COLUMN status TO state;
    ALTER TABLE jobs RENAME COLUMN status TO state;
    DROP INDEX jobs_status;
    CREATE INDEX jobs_state ON jobs (state);
    """,
    # Scheduled work: each repository's schedules with their next fire time, and each fire with
    # its outcome (bot/store/schedules.py). A slot fires once: `fires_once` refuses a second row
    # for the same scheduled time. What the analysis of a run's failures found, the flaky-test
    # registry, and an analysis's stored steps (bot/store/verdicts.py). Slack threads in the
    # outbox: a reply names its thread's first message (`thread_of`, an outbox key) and waits
    # until that one is delivered, whose `ts` (Slack's id of a message) it then replies to.
    """
    CREATE TABLE schedules (
        repo            TEXT NOT NULL COLLATE NOCASE,
        feature         TEXT NOT NULL,
        name            TEXT NOT NULL,
        cron            TEXT NOT NULL,
        installation_id INTEGER,
        enabled         INTEGER NOT NULL DEFAULT 1,
        next_fire_at    REAL,
        last_fired_at   REAL,
        last_run_id     INTEGER,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        PRIMARY KEY (repo, feature, name)
    );
    CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE enabled = 1;
    CREATE TABLE fires (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        repo            TEXT NOT NULL COLLATE NOCASE,
        feature         TEXT NOT NULL,
        name            TEXT NOT NULL,
        installation_id INTEGER,
        due_at          REAL NOT NULL,
        fired_at        REAL NOT NULL,
        manual          INTEGER NOT NULL DEFAULT 0,
        attempts        INTEGER NOT NULL DEFAULT 0,
        run_id          INTEGER,
        note            TEXT,
        finished_at     REAL
    );
    CREATE INDEX fires_schedule ON fires (repo, feature, name, id);
    CREATE UNIQUE INDEX fires_once ON fires (repo, feature, name, due_at) WHERE manual = 0;
    CREATE INDEX fires_unfinished ON fires (id) WHERE finished_at IS NULL;
    CREATE TABLE test_verdicts (
        run_id       INTEGER NOT NULL REFERENCES runs (id),
        test         TEXT NOT NULL,
        machine_type TEXT NOT NULL DEFAULT '',
        folder       TEXT NOT NULL DEFAULT '',
        status       TEXT NOT NULL CHECK (status IN ('new', 'still failing', 'fixed')),
        verdict      TEXT CHECK (verdict IN ('new', 'flaky', 'pre-existing', 'unknown')),
        reason       TEXT NOT NULL DEFAULT '',
        first_bad    TEXT,
        evidence     TEXT NOT NULL DEFAULT '[]',
        updated_at   REAL NOT NULL,
        PRIMARY KEY (run_id, test, machine_type)
    );
    CREATE INDEX test_verdicts_test ON test_verdicts (test, run_id);
    CREATE TABLE flaky_tests (
        repo        TEXT NOT NULL COLLATE NOCASE,
        test        TEXT NOT NULL,
        first_seen  REAL NOT NULL,
        last_seen   REAL NOT NULL,
        times       INTEGER NOT NULL DEFAULT 1,
        last_run_id INTEGER,
        PRIMARY KEY (repo, test)
    );
    CREATE TABLE analysis_state (
        run_id     INTEGER PRIMARY KEY REFERENCES runs (id),
        phase      TEXT NOT NULL,
        state      TEXT NOT NULL DEFAULT '{}',
        version    INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    ALTER TABLE outbox ADD COLUMN thread_of TEXT;
    ALTER TABLE outbox ADD COLUMN sent_ts TEXT;
    """,
    # Benchmark results (bot/store/benchmarks.py): every repeat's value of a metric as a JSON
    # list, one row per run, commit, machine type and metric. `pull_number` is NULL for a
    # branch's own results; `benchmark_results_branch` finds the previous push's results,
    # `benchmark_results_series` a repository's metric over time for the pages, and
    # `benchmark_results_recent` its newest results whatever the metric (the JSON and CSV exports).
    """
    CREATE TABLE benchmark_results (
        repo         TEXT NOT NULL COLLATE NOCASE,
        sha          TEXT NOT NULL,
        branch       TEXT NOT NULL,
        machine_type TEXT NOT NULL DEFAULT '',
        metric       TEXT NOT NULL,
        unit         TEXT NOT NULL,
        value_list   TEXT NOT NULL,
        run_id       INTEGER NOT NULL REFERENCES runs (id),
        pull_number  INTEGER,
        recorded_at  REAL NOT NULL,
        regression   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, sha, machine_type, metric)
    );
    CREATE INDEX benchmark_results_branch
        ON benchmark_results (repo, branch, machine_type, run_id) WHERE pull_number IS NULL;
    CREATE INDEX benchmark_results_series ON benchmark_results (repo, metric, recorded_at);
    CREATE INDEX benchmark_results_recent ON benchmark_results (repo, recorded_at);
    """,
    # Benchmark results keep their repeats' summary (lowest, median, highest, how many) beside
    # the values, so a chart reads numbers instead of decoding JSON; the copy computes it for
    # the rows already there, with the median as statistics.median takes it. Ids never come
    # back (AUTOINCREMENT) and a result recorded again gets a new one, so the number of a
    # branch's rows and their highest id tell a reader exactly whether anything changed.
    # `benchmark_results_chart` holds all a chart reads of a branch, in the runs' order;
    # `benchmark_results_pulls` finds pull requests' results without walking the branches'. The
    # partial indexes end with `pull_number`, so SQLite reads them without the table's rows.
    """
    CREATE TABLE benchmark_results_summarised (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        repo         TEXT NOT NULL COLLATE NOCASE,
        sha          TEXT NOT NULL,
        branch       TEXT NOT NULL,
        machine_type TEXT NOT NULL DEFAULT '',
        metric       TEXT NOT NULL,
        unit         TEXT NOT NULL,
        value_list   TEXT NOT NULL,
        value_low    REAL NOT NULL,
        value_median REAL NOT NULL,
        value_high   REAL NOT NULL,
        value_count  INTEGER NOT NULL,
        run_id       INTEGER NOT NULL REFERENCES runs (id),
        pull_number  INTEGER,
        recorded_at  REAL NOT NULL,
        regression   INTEGER NOT NULL DEFAULT 0,
        UNIQUE (run_id, sha, machine_type, metric)
    );
    INSERT INTO benchmark_results_summarised (id, repo, sha, branch, machine_type, metric, unit,
        value_list, value_low, value_median, value_high, value_count, run_id, pull_number,
        recorded_at, regression)
    SELECT rowid, repo, sha, branch, machine_type, metric, unit, value_list,
        (SELECT MIN(value) FROM json_each(value_list)),
        (SELECT AVG(value) FROM (SELECT value, ROW_NUMBER() OVER (ORDER BY value) AS k,
            COUNT(*) OVER () AS n FROM json_each(value_list))
            WHERE k IN ((n + 1) / 2, (n + 2) / 2)),
        (SELECT MAX(value) FROM json_each(value_list)),
        json_array_length(value_list), run_id, pull_number, recorded_at, regression
    FROM benchmark_results ORDER BY rowid;
    DROP TABLE benchmark_results;
    ALTER TABLE benchmark_results_summarised RENAME TO benchmark_results;
    CREATE INDEX benchmark_results_branch ON benchmark_results (repo, branch, machine_type,
        run_id, pull_number) WHERE pull_number IS NULL;
    CREATE INDEX benchmark_results_series ON benchmark_results (repo, metric, recorded_at);
    CREATE INDEX benchmark_results_recent ON benchmark_results (repo, recorded_at);
    CREATE INDEX benchmark_results_chart ON benchmark_results (repo, branch, run_id, machine_type,
        metric, unit, sha, recorded_at, regression, value_low, value_median, value_high,
        value_count, pull_number) WHERE pull_number IS NULL;
    CREATE INDEX benchmark_results_pulls ON benchmark_results (repo, run_id, sha, machine_type,
        metric, pull_number) WHERE pull_number IS NOT NULL;
    """,
)


class StoreClosed(RuntimeError):
    """Raised to callers whose operation was queued after the store began closing."""


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
    version = schema_version(conn)
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


# ---------------------------------------------------------------------- health


def schema_version(conn: sqlite3.Connection) -> int:
    """How many of `MIGRATIONS` the file has had; more than this bot knows means a newer bot."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def probe_write(conn: sqlite3.Connection) -> None:
    """Raises `sqlite3.Error` unless a real write would succeed; never commits it.

    For a connection opened without migrating (`bot doctor`): the bot's own rows stay as they
    are, whatever the probe meets.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO effects (key, detail, created_at) VALUES ('bot doctor', NULL, 0)"
            " ON CONFLICT (key) DO NOTHING"
        )
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def heartbeat(conn: sqlite3.Connection) -> None:
    """A write the size of a large delivery, so it fails where a delivery would."""
    conn.execute(
        "INSERT OR REPLACE INTO heartbeat (id, at, filler) VALUES (1, ?, randomblob(65536))",
        (time.time(),),
    )


#: The column that says where each table's rows are: a delivery's or an outbox item's status,
#: a run's or a job's state.
_STATUS_COLUMNS = {"deliveries": "status", "jobs": "state", "outbox": "status", "runs": "state"}


def count_by_status(conn: sqlite3.Connection, table: str) -> dict[str, int]:
    """Rows of `table` by their status (deliveries, the outbox) or state (runs, jobs)."""
    column = _STATUS_COLUMNS.get(table)
    if column is None:
        raise ValueError(f"no such table: {table}")
    rows = conn.execute(f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column}").fetchall()  # noqa: S608
    return {row[0]: row[1] for row in rows}
