"""The delivery queue in SQLite: arrival order, due times, and a claim that ignores the backlog."""

from __future__ import annotations

import json
import sqlite3
import time

from bot.jobs.records import ReportState, RunFilter
from bot.store import deliveries as deliveries_db
from bot.store import runs as runs_db
from bot.store.engine import MIGRATIONS, connect
from tests.support.schema import database_before


def _pending(conn: sqlite3.Connection, count: int, *, start: int = 0) -> None:
    deliveries = [
        deliveries_db.Delivery(
            id=f"d-{start + n}",
            event="issue_comment",
            headers={"X-GitHub-Event": "issue_comment"},
            body=b'{"action": "created"}',
            status="stored",
            received_at=1.0,
        )
        for n in range(count)
    ]
    deliveries_db.insert_deliveries(conn, deliveries)


def _steps(conn: sqlite3.Connection, fn) -> int:
    """SQLite virtual-machine steps a call takes, in hundreds: work done, not time."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(tick, 100)
    try:
        fn()
    finally:
        conn.set_progress_handler(None, 0)
    return steps


def test_claim_takes_the_oldest_due_rows_and_skips_retries_not_yet_due(tmp_path):
    conn = connect(str(tmp_path / "q.sqlite3"))
    _pending(conn, 3)
    later = time.time() + 3600
    conn.execute("UPDATE deliveries SET next_attempt_at = ? WHERE id = 'd-0'", (later,))
    claimed = deliveries_db.claim_due_deliveries(conn, time.time(), 10)
    assert [d.id for d in claimed] == ["d-1", "d-2"]
    assert [d.body for d in claimed] == [b'{"action": "created"}'] * 2
    statuses = dict(conn.execute("SELECT id, status FROM deliveries"))
    assert statuses == {"d-0": "stored", "d-1": "in_memory", "d-2": "in_memory"}
    assert deliveries_db.next_due_at(conn) == later
    assert deliveries_db.claim_due_deliveries(conn, time.time(), 10) == []


def test_claiming_from_a_large_backlog_reads_only_the_rows_it_takes(tmp_path):
    # A burst leaves thousands of rows pending; the worker claims 32 at a time while the server
    # keeps accepting on the same thread, so a claim must not sort or scan the whole backlog.
    conn = connect(str(tmp_path / "q.sqlite3"))
    _pending(conn, 500)
    small = _steps(conn, lambda: deliveries_db.claim_due_deliveries(conn, time.time(), 32))
    small_due = _steps(conn, lambda: deliveries_db.next_due_at(conn))
    _pending(conn, 10_000, start=500)
    large = _steps(conn, lambda: deliveries_db.claim_due_deliveries(conn, time.time(), 32))
    large_due = _steps(conn, lambda: deliveries_db.next_due_at(conn))
    assert large <= small * 2 + 5, (small, large)
    assert large_due <= small_due * 2 + 5, (small_due, large_due)


def test_a_database_from_the_first_schema_is_migrated(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    old = sqlite3.connect(path, isolation_level=None)
    for statement in filter(str.strip, MIGRATIONS[0].split(";")):
        old.execute(statement)
    old.execute("PRAGMA user_version=1")
    old.execute(
        "INSERT INTO deliveries (id, event, status, received_at)"
        " VALUES ('kept', 'push', 'pending', 1)"
    )
    old.close()
    conn = connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"deliveries_status", "deliveries_due", "outbox_status", "outbox_due"} <= indexes
    assert not {"deliveries_queue", "outbox_queue"} & indexes
    assert [tuple(row) for row in conn.execute("SELECT id, status FROM deliveries")] == [
        ("kept", "stored")  # `pending` is now called `stored`
    ]


def _database_before_run_columns(path: str) -> sqlite3.Connection:
    """A database at the schema before runs had `private`, `runner` and `report_state`."""
    return database_before(path, "ADD COLUMN private")


def test_an_old_database_gets_private_runner_and_report_state_as_its_specs_said(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    old = _database_before_run_columns(path)
    specs = {
        # run-slow on a public repository, reported with a comment and a check run
        1: ("slow_ci", "finished", {"private": False, "title": "t", "comment_id": 501,
            "check_run_id": 601, "check_annotations_sent": 50}, [{"runner": "github-actions"}]),
        # written before runs said whether they were private: private
        2: ("slow_ci", "running", {"title": "u"}, [{"folder": "a"}, {"folder": "b"}]),
        3: ("slow_ci", "queued", {"private": True, "check_run_id": 0}, [{"runner": "local"}]),
        # /style: its comment_id is the comment that asked; its reply is reply_id
        4: ("style", "finished", {"comment_id": 77, "reply_id": 88, "reacted": True},
            [{"runner": "style"}]),
        5: ("style", "queued", {"comment_id": 78}, [{"runner": "style"}]),
    }  # fmt: skip
    for run_id, (kind, status, spec, jobs) in specs.items():
        old.execute(
            "INSERT INTO runs (id, kind, repo, head_sha, requested_at, status, spec, created_at)"
            " VALUES (?, ?, 'o/r', 'abc', 1, ?, ?, 1)",
            (run_id, kind, status, json.dumps(spec)),
        )
        for n, job_spec in enumerate(jobs):
            old.execute(
                "INSERT INTO jobs (run_id, kind, name, spec, status, created_at)"
                " VALUES (?, ?, ?, ?, 'passed', 1)",
                (run_id, kind, f"job-{n}", json.dumps(job_spec)),
            )
    old.close()

    conn = connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    runs = {run_id: runs_db.read_run(conn, run_id) for run_id in specs}
    assert {i: (r.private, r.runner) for i, r in runs.items()} == {
        1: (False, "github-actions"),
        2: (True, "local"),
        3: (True, "local"),
        4: (True, "style"),
        5: (True, "style"),
    }
    assert {i: r.state for i, r in runs.items()} == {i: s[1] for i, s in specs.items()}
    assert {j.state for j in runs_db.read_jobs(conn, 2)} == {"passed"}
    assert {i: runs_db.read_report_state(conn, i) for i in specs} == {
        1: ReportState(comment_id=501, check_run_id=601, annotations_sent=50),
        2: ReportState(),
        3: ReportState(check_run_id=0),
        4: ReportState(comment_id=88, reacted=True),
        5: ReportState(),
    }
    # What moved to columns is gone from the specs; a feature's own keys stay.
    assert {i: r.spec for i, r in runs.items()} == {
        1: {"title": "t"},
        2: {"title": "u"},
        3: {},
        4: {"comment_id": 77},
        5: {"comment_id": 78},
    }
    # The listing for an anonymous viewer shows only the public run.
    visible = runs_db.list_runs(conn, RunFilter(visible=frozenset()))
    assert [r.id for r in visible] == [1]
    assert runs_db.private_repos(conn) == ["o/r"]
