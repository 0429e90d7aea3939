"""Operating the store: a backup beside a busy server, a restore that checks first, retention."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import zlib
from pathlib import Path

import pytest

from bot.metrics import Metrics
from bot.ops.backup import cmd_restore
from bot.store import deliveries as deliveries_db
from bot.store import effects as effects_db
from bot.store import runs as runs_db
from bot.store.backup import BackupError, backup, integrity_problems, restore
from bot.store.engine import MIGRATIONS, Store, connect
from bot.store.retention import PruneCounts, prune, prune_all, prune_store, run_retention

FIXTURE = Path(__file__).parents[1] / "fixtures" / "issue_comment.created.json"
DAY = 86_400.0


def _delivery(n: int, body: bytes, **fields: object) -> deliveries_db.Delivery:
    return deliveries_db.Delivery(
        id=f"d-{n}",
        event="issue_comment",
        headers={"X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": f"d-{n}"},
        body=body,
        **fields,  # type: ignore[arg-type]
    )


def _ids(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM deliveries")}
    finally:
        conn.close()


# ---------------------------------------------------------------------- backup and restore


async def test_a_backup_taken_during_a_burst_holds_every_acknowledged_delivery(tmp_path):
    db, copy = tmp_path / "bot.sqlite3", tmp_path / "backup.sqlite3"
    body = FIXTURE.read_bytes()
    store = Store(str(db))
    acknowledged: list[str] = []
    # A store of some size, so the copy takes many steps while the burst goes on.
    for start in range(0, 3000, 300):
        await asyncio.gather(*(store.ingest(_delivery(n, body)) for n in range(start, start + 300)))
    acknowledged = [f"d-{n}" for n in range(3000)]

    stop = asyncio.Event()
    during: list[str] = []

    async def burst() -> None:
        n = 3000
        while not stop.is_set():
            batch = [_delivery(n + i, body) for i in range(20)]
            await asyncio.gather(*(store.ingest(d) for d in batch))
            during.extend(d.id for d in batch)
            n += 20

    writer = asyncio.create_task(burst())
    await asyncio.sleep(0.05)
    before_backup = set(acknowledged) | set(during)
    try:
        held = await asyncio.to_thread(backup, str(db), str(copy), pages=8, pause_s=0.001)
    finally:
        stop.set()
        await writer
        store.close()

    committed_during = set(during) - before_backup
    assert committed_during, "the server committed nothing while the copy ran"
    conn = sqlite3.connect(copy)
    assert integrity_problems(conn) == []
    ids = {row[0] for row in conn.execute("SELECT id FROM deliveries")}
    assert before_backup <= ids
    assert held.deliveries == len(ids)
    # No half-written delivery: every row has its body, and every body is whole.
    rows = conn.execute(
        "SELECT d.id, b.body FROM deliveries d LEFT JOIN delivery_bodies b ON b.seq = d.seq"
    ).fetchall()
    assert all(blob is not None and zlib.decompress(blob) == body for _, blob in rows)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert not list(tmp_path.glob("*.partial"))

    restored = tmp_path / "fresh" / "bot.sqlite3"
    again = restore(str(restored), str(copy))
    assert again.deliveries == len(ids)
    assert _ids(restored) == ids
    assert not (tmp_path / "fresh" / "bot.sqlite3.before-restore").exists()
    reopened = Store(str(restored))  # the bot opens it as it is, in WAL mode again
    assert reopened.call_sync(lambda c: deliveries_db.count_deliveries(c)) == len(ids)
    reopened.close()


def test_a_backup_never_replaces_a_file_without_force(tmp_path):
    db, copy = tmp_path / "bot.sqlite3", tmp_path / "backup.sqlite3"
    Store(str(db)).close()
    copy.write_bytes(b"keep me")
    with pytest.raises(BackupError, match="--force"):
        backup(str(db), str(copy))
    assert copy.read_bytes() == b"keep me"
    assert backup(str(db), str(copy), force=True).deliveries == 0
    with pytest.raises(BackupError, match="live database"):
        backup(str(db), str(db), force=True)


def _backup_of(tmp_path: Path, count: int) -> Path:
    source = tmp_path / "source.sqlite3"
    conn = connect(str(source))
    deliveries_db.insert_deliveries(
        conn, [_delivery(n, b"{}", status="done") for n in range(count)]
    )
    conn.close()
    path = tmp_path / "backup.sqlite3"
    backup(str(source), str(path))
    return path


def test_restore_refuses_while_the_server_holds_the_database(tmp_path):
    copy = _backup_of(tmp_path, 2)
    db = tmp_path / "bot.sqlite3"
    live = Store(str(db))
    live.call_sync(lambda c: deliveries_db.insert_deliveries(c, [_delivery(99, b"{}")]))
    with pytest.raises(BackupError, match="stop `bot serve` first"):
        restore(str(db), str(copy))
    assert (
        live.call_sync(lambda c: deliveries_db.count_deliveries(c)) == 1
    )  # untouched, still serving
    live.close()
    assert not (tmp_path / "bot.sqlite3.before-restore").exists()


def test_restore_refuses_a_backup_from_a_newer_bot(tmp_path):
    copy = _backup_of(tmp_path, 1)
    conn = sqlite3.connect(copy)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    db = tmp_path / "bot.sqlite3"
    Store(str(db)).close()
    with pytest.raises(BackupError, match="newer than this bot knows"):
        restore(str(db), str(copy))
    assert db.exists() and not (tmp_path / "bot.sqlite3.before-restore").exists()


def test_restore_refuses_a_damaged_backup(tmp_path):
    copy = tmp_path / "backup.sqlite3"
    copy.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="not a readable database"):
        restore(str(tmp_path / "bot.sqlite3"), str(copy))


def test_restore_keeps_the_replaced_database_and_drops_its_stale_wal(tmp_path):
    copy = _backup_of(tmp_path, 3)
    running = tmp_path / "running.sqlite3"
    server = Store(str(running))
    server.call_sync(lambda c: deliveries_db.insert_deliveries(c, [_delivery(99, b"{}")]))
    server.call_sync(lambda c: c.execute("PRAGMA wal_autocheckpoint=0"))
    server.call_sync(lambda c: effects_db.record_effect(c, "only-in-the-wal"))
    # What a killed server leaves: the file, and a WAL holding commits the file does not have.
    db = tmp_path / "bot.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").write_bytes(Path(f"{running}{suffix}").read_bytes())
    server.close()

    held = restore(str(db), str(copy))
    assert held.deliveries == 3
    assert _ids(db) == {"d-0", "d-1", "d-2"}
    before = tmp_path / "bot.sqlite3.before-restore"
    assert _ids(before) == {"d-99"}
    kept = sqlite3.connect(before)
    assert kept.execute("SELECT key FROM effects").fetchall() == [("only-in-the-wal",)]
    kept.close()
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()


def _store_with(path: Path, *ids: int) -> None:
    conn = connect(str(path))
    deliveries_db.insert_deliveries(conn, [_delivery(n, b"{}", status="done") for n in ids])
    conn.close()


def test_a_second_restore_keeps_the_database_the_first_one_replaced(tmp_path, monkeypatch, capsys):
    copy = _backup_of(tmp_path, 3)
    db = tmp_path / "bot.sqlite3"
    _store_with(db, 101)
    first = restore(str(db), str(copy))
    assert first.kept == tmp_path / "bot.sqlite3.before-restore"
    assert _ids(first.kept) == {"d-101"}

    _store_with(db, 202)  # the restored store, written to since
    monkeypatch.setenv("BOT_DATABASE", str(db))
    assert cmd_restore(argparse.Namespace(path=str(copy))) == 0
    out = capsys.readouterr().out
    second = tmp_path / "bot.sqlite3.before-restore.1"
    assert f"the database it replaced is kept as {second}" in out
    assert _ids(first.kept) == {"d-101"}  # the first one's file, untouched
    assert _ids(second) == {"d-0", "d-1", "d-2", "d-202"}

    third = restore(str(db), str(copy))
    assert third.kept == tmp_path / "bot.sqlite3.before-restore.2"
    assert _ids(first.kept) == {"d-101"} and _ids(second) == {"d-0", "d-1", "d-2", "d-202"}
    assert _ids(db) == {"d-0", "d-1", "d-2"}


def test_a_restore_over_nothing_keeps_nothing_and_says_so(tmp_path, monkeypatch, capsys):
    copy = _backup_of(tmp_path, 2)
    db = tmp_path / "new" / "bot.sqlite3"
    monkeypatch.setenv("BOT_DATABASE", str(db))
    assert cmd_restore(argparse.Namespace(path=str(copy))) == 0
    assert "replaced" not in capsys.readouterr().out
    assert restore(str(tmp_path / "other.sqlite3"), str(copy)).kept is None
    assert not list(tmp_path.glob("**/*.before-restore*"))


# ---------------------------------------------------------------------- retention

NOW = 1_000 * DAY
MAX_AGE = 90 * DAY
CUTOFF = NOW - MAX_AGE


def _finished_run(
    conn: sqlite3.Connection,
    name: str,
    *,
    run_status: str,
    job_status: str,
    finished_at: float | None,
) -> int:
    run_id, _ = runs_db.insert_run(
        conn,
        kind="slow_ci",
        repo="o/r",
        number=1,
        head_sha="abc",
        base_ref="main",
        requested_by="me",
        requested_at=1.0,
        private=True,
        runner="local",
        spec={},
        jobs=[(name, {})],
        key=name,
        now=1.0,
    )
    conn.execute(
        "UPDATE runs SET state = ?, finished_at = ? WHERE id = ?",
        (run_status, finished_at if run_status not in ("queued", "running") else None, run_id),
    )
    conn.execute(
        "UPDATE jobs SET state = ?, finished_at = ?, log = ?, junit = ?, results = ?"
        " WHERE run_id = ?",
        (
            job_status,
            finished_at if job_status not in ("queued", "running") else None,
            zlib.compress(b"log"),
            zlib.compress(b"<testsuite/>"),
            zlib.compress(json.dumps([]).encode()),
            run_id,
        ),
    )
    return run_id


def _retention_db(path: Path) -> sqlite3.Connection:
    conn = connect(str(path))
    cases = {
        "old-done": ("done", CUTOFF - 1),
        "old-failed": ("failed", CUTOFF - DAY),
        "new-done": ("done", CUTOFF + 1),
        "old-stored": ("stored", None),
        "old-in-memory": ("in_memory", None),
    }
    deliveries_db.insert_deliveries(
        conn,
        [
            deliveries_db.Delivery(
                id=name,
                event="push",
                headers={},
                body=b"{}",
                status=status,
                received_at=CUTOFF - 2 * DAY,
            )
            for name, (status, _) in cases.items()
        ],
    )
    for name, (_, finished) in cases.items():
        conn.execute("UPDATE deliveries SET finished_at = ? WHERE id = ?", (finished, name))
    _finished_run(
        conn, "old-passed", run_status="finished", job_status="passed", finished_at=CUTOFF - 1
    )
    _finished_run(
        conn,
        "old-cancelled",
        run_status="cancelled",
        job_status="cancelled",
        finished_at=CUTOFF - DAY,
    )
    _finished_run(
        conn, "new-failed", run_status="finished", job_status="failed", finished_at=CUTOFF + 1
    )
    _finished_run(
        conn, "still-running", run_status="running", job_status="running", finished_at=None
    )
    _finished_run(conn, "still-queued", run_status="queued", job_status="queued", finished_at=None)
    return conn


def _with_body(conn: sqlite3.Connection) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            "SELECT d.id FROM deliveries d JOIN delivery_bodies b ON b.seq = d.seq"
        )
    }


def _with_blobs(conn: sqlite3.Connection) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            "SELECT name FROM jobs WHERE log IS NOT NULL AND junit IS NOT NULL"
            " AND results IS NOT NULL"
        )
    }


def test_pruning_drops_exactly_the_finished_work_older_than_the_cutoff(tmp_path):
    conn = _retention_db(tmp_path / "bot.sqlite3")
    counts = prune_all(conn, NOW, MAX_AGE)
    assert counts == PruneCounts(delivery_bodies=2, job_logs=2, junit=2, results=2)
    assert _with_body(conn) == {"new-done", "old-stored", "old-in-memory"}
    assert _with_blobs(conn) == {"new-failed", "still-running", "still-queued"}
    # The rows themselves stay: counted, listed, with their status.
    assert deliveries_db.count_deliveries(conn) == 5
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 5
    assert {d.id for d in deliveries_db.page_deliveries(conn)} >= {"old-done", "old-failed"}
    assert prune_all(conn, NOW, MAX_AGE) == PruneCounts()
    assert integrity_problems(conn) == []


def test_pruning_goes_in_bounded_batches(tmp_path):
    conn = connect(str(tmp_path / "bot.sqlite3"))
    deliveries_db.insert_deliveries(
        conn,
        [
            deliveries_db.Delivery(
                id=f"d-{n}", event="push", headers={}, body=b"{}", status="done", received_at=1.0
            )
            for n in range(25)
        ],
    )
    conn.execute("UPDATE deliveries SET finished_at = 2.0")
    sizes = []
    while counts := prune(conn, NOW, MAX_AGE, delivery_batch=10):
        sizes.append(counts.delivery_bodies)
    assert sizes == [10, 10, 5]


async def test_the_retention_loop_prunes_at_start_and_counts_in_metrics(tmp_path, monkeypatch):
    path = tmp_path / "bot.sqlite3"
    _retention_db(path).close()
    monkeypatch.setattr("bot.store.retention.time.time", lambda: NOW)
    store = Store(str(path))
    metrics = Metrics()
    from bot.config import Settings

    settings = Settings(database=str(path), retention_days=90)
    loop = asyncio.create_task(run_retention(store, settings, metrics, interval_s=3600))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if metrics.pruned.labels("delivery_bodies")._value.get():
            break
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    text = metrics.render().decode()
    for what in ("delivery_bodies", "job_logs", "junit", "results"):
        assert f'bot_pruned_total{{what="{what}"}} 2.0' in text
    assert await prune_store(store, NOW, MAX_AGE) == PruneCounts()
    store.close()


async def test_retention_zero_keeps_everything(tmp_path):
    path = tmp_path / "bot.sqlite3"
    _retention_db(path).close()
    store = Store(str(path))
    from bot.config import Settings

    await run_retention(store, Settings(database=str(path), retention_days=0), Metrics())
    assert len(store.call_sync(_with_body)) == 5
    store.close()


def test_the_retention_setting_reads_days_and_zero(tmp_path):
    from bot.config import ConfigError, Settings

    assert Settings.from_env({}).retention_days == 90
    assert Settings.from_env({"BOT_RETENTION_DAYS": "0"}).retention_days == 0
    assert Settings.from_env({"BOT_RETENTION_DAYS": "30"}).retention_days == 30
    with pytest.raises(ConfigError, match="BOT_RETENTION_DAYS"):
        Settings.from_env({"BOT_RETENTION_DAYS": "-1"})
