"""The bot's record of a pull request's pushes, read back from the deliveries it stored: the
facts `run-slow`'s approval stands on, so nothing else may pass for one."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from bot.store import deliveries
from bot.store.deliveries import PushRecord
from bot.store.engine import connect

REPO = "acme/models"


@pytest.fixture
def conn():
    opened = connect(":memory:")
    yield opened
    opened.close()


def _store(conn, event: str, data: dict[str, Any], *, at: float, repo: str = REPO) -> None:
    delivery = deliveries.Delivery(
        id=str(uuid.uuid4()),
        event=event,
        headers={},
        body=json.dumps(data, separators=(",", ":")).encode(),
        action=data.get("action"),
        repo=repo,
        number=deliveries.delivery_number(data),
        received_at=at,
        status="done",
    )
    deliveries.insert_deliveries(conn, [delivery])


def _pull_request(action: str, number: int, sha: str, sender: str = "carol", **extra: Any):
    return {
        "action": action,
        "number": number,
        "pull_request": {"number": number, "head": {"sha": sha}, "milestone": None},
        "repository": {"full_name": REPO},
        "sender": {"login": sender},
        **extra,
    }


def test_the_pushes_of_one_pull_request_in_arrival_order(conn):
    _store(conn, "pull_request", _pull_request("opened", 7, "a" * 40), at=1.0)
    _store(
        conn,
        "pull_request",
        _pull_request("synchronize", 7, "b" * 40, "maint", before="a" * 40, after="c" * 40),
        at=2.0,
    )
    _store(conn, "pull_request", _pull_request("reopened", 7, "d" * 40, "dave"), at=3.0)
    assert deliveries.push_records(conn, REPO, 7) == [
        PushRecord("a" * 40, 1.0, "carol", "opened"),
        # `after` is the head a push made; the payload's PR may have moved on since.
        PushRecord("c" * 40, 2.0, "maint", "synchronize", before="a" * 40),
        PushRecord("d" * 40, 3.0, "dave", "reopened"),
    ]


def test_nothing_else_passes_for_a_push(conn):
    _store(conn, "pull_request", _pull_request("labeled", 7, "1" * 40), at=1.0)
    _store(conn, "pull_request", _pull_request("edited", 7, "2" * 40), at=1.0)
    _store(conn, "issue_comment", _pull_request("opened", 7, "3" * 40), at=1.0)
    _store(conn, "pull_request", _pull_request("opened", 70, "4" * 40), at=1.0)
    _store(conn, "pull_request", _pull_request("opened", 7, "5" * 40), at=1.0, repo="acme/other")
    other = _pull_request("opened", 8, "6" * 40)
    other["pull_request"]["milestone"] = {"number": 7}  # the number, but not the PR's
    _store(conn, "pull_request", other, at=1.0)
    assert deliveries.push_records(conn, REPO, 7) == []


def test_the_repository_is_matched_as_github_matches_names(conn):
    _store(conn, "pull_request", _pull_request("opened", 7, "a" * 40), at=1.0, repo="Acme/Models")
    assert [r.sha for r in deliveries.push_records(conn, REPO, 7)] == ["a" * 40]


def test_pruned_and_unreadable_bodies_are_no_record(conn):
    _store(conn, "pull_request", _pull_request("opened", 7, "a" * 40), at=1.0)
    conn.execute("DELETE FROM delivery_bodies")  # retention pruned it
    _store(conn, "pull_request", {"action": "opened", "number": 7, "pull_request": []}, at=2.0)
    broken = _pull_request("opened", 7, "b" * 40)
    broken["sender"] = "carol"
    _store(conn, "pull_request", broken, at=3.0)
    assert deliveries.push_records(conn, REPO, 7) == []


def test_only_the_newest_deliveries_are_read(conn):
    for i in range(5):
        _store(conn, "pull_request", _pull_request("opened", 7, f"{i}" * 40), at=float(i))
    records = deliveries.push_records(conn, REPO, 7, scan_limit=2)
    assert [r.sha for r in records] == ["3" * 40, "4" * 40]
