"""Replaying a delivery: one rule in the store for the operator page and `bot replay` alike.

A delivery a worker may hold (still `in_memory` or `stored`) is never queued a second time, and
one whose body retention pruned is said to be pruned, not "queued again".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.ops.cli import main
from bot.store import deliveries
from bot.store.engine import Store
from bot.store.retention import prune_all
from bot.web import routes


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("GITHUB_TOKEN", "GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_DATABASE", str(tmp_path / "bot.sqlite3"))
    monkeypatch.setenv("BOT_LOG_FORMAT", "text")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _store(env: Path) -> Store:
    return Store(str(env / "bot.sqlite3"))


def _delivery(env: Path, delivery_id: str, status: str) -> None:
    store = _store(env)
    delivery = deliveries.Delivery(
        id=delivery_id,
        event="push",
        headers={},
        body=b"{}",
        repo="o/r",
        received_at=time.time(),
        status=status if status in ("in_memory", "stored") else "in_memory",
    )
    try:
        store.call_sync(lambda conn: deliveries.insert_deliveries(conn, [delivery]))
        if status in ("done", "failed"):
            store.call_sync(
                lambda conn: deliveries.finish_delivery(
                    conn, delivery_id, status=status, attempts=1, done_callbacks=(), error=None
                )
            )
    finally:
        store.close()


def _status(env: Path, delivery_id: str) -> str:
    store = _store(env)
    try:
        found = store.call_sync(lambda conn: deliveries.get_delivery(conn, delivery_id))
    finally:
        store.close()
    assert found is not None
    return found.status


@pytest.mark.parametrize("status", ["in_memory", "stored"])
def test_bot_replay_refuses_a_delivery_a_worker_may_hold(env, capsys, status):
    _delivery(env, "d-busy", status)
    assert main(["replay", "d-busy"]) == 2
    captured = capsys.readouterr()
    assert "queued again" not in captured.out
    assert "d-busy" in captured.err and status in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert _status(env, "d-busy") == status


def test_bot_replay_says_when_retention_pruned_the_body(env, capsys):
    _delivery(env, "d-old", "done")
    store = _store(env)
    try:
        pruned = store.call_sync(lambda conn: prune_all(conn, time.time() + 3 * 86400, 86400))
    finally:
        store.close()
    assert pruned.delivery_bodies == 1
    assert main(["replay", "d-old"]) == 2
    captured = capsys.readouterr()
    assert "queued again" not in captured.out
    assert "pruned" in captured.err and "d-old" in captured.err
    assert _status(env, "d-old") == "done"


@pytest.mark.parametrize("status", ["done", "failed"])
def test_bot_replay_queues_a_finished_delivery_again(env, capsys, status):
    _delivery(env, "d-end", status)
    assert main(["replay", "d-end"]) == 0
    assert "queued again" in capsys.readouterr().out
    assert _status(env, "d-end") == "stored"


def test_the_rule_is_the_store_s_and_says_why_it_refuses(env):
    _delivery(env, "d-old", "failed")
    store = _store(env)
    try:
        store.call_sync(lambda conn: prune_all(conn, time.time() + 3 * 86400, 86400))
    finally:
        store.close()
    _delivery(env, "d-done", "done")
    _delivery(env, "d-held", "in_memory")
    store = _store(env)
    try:
        answers = {
            name: store.call_sync(lambda conn, name=name: deliveries.replay_delivery(conn, name))
            for name in ("d-done", "d-held", "d-old", "nope")
        }
    finally:
        store.close()
    assert answers == {
        "d-done": "queued",
        "d-held": "unfinished",
        "d-old": "pruned",
        "nope": "missing",
    }
    # The operator page offers the button by the same rule, not a copy of it.
    assert routes.REPLAYABLE is deliveries.REPLAYABLE
