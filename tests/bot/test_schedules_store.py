"""Schedules, fires and verdicts as the store keeps them, on real SQLite files: a slot fires
once whoever claims it, a restart neither loses nor repeats a fire, a config push moves only
what changed, and an analysis advances by compare-and-set."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from bot.kit.cron import parse_cron
from bot.store import schedules as db
from bot.store import verdicts
from bot.store.engine import Store, connect
from bot.store.verdicts import TestVerdict
from tests.support.schema import database_before
from tests.support.seed_runs import write_run

REPO = "acme/models"
NIGHTLY = ("scheduled_ci", "nightly")
HOURLY = ("scheduled_ci", "hourly")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def next_after(cron: str, t: float) -> float:
    return parse_cron(cron).next_after(t)


@pytest.fixture
def conn(tmp_path):
    opened = connect(str(tmp_path / "bot.sqlite3"))
    yield opened
    opened.close()


def sync(conn, specs, now, repo=REPO, **kwargs):
    return db.sync_schedules(conn, repo, 7, specs, now, next_after=next_after, **kwargs)


def claim(conn, now, limit=20):
    return db.claim_due(conn, now, limit, next_after=next_after)


def schedule(conn, key, repo=REPO):
    found = db.get_schedule(conn, repo, *key)
    assert found is not None
    return found


# ---------------------------------------------------------------------- learning schedules


def test_a_new_schedule_is_next_due_at_its_first_time_after_the_sync(conn):
    result = sync(conn, {NIGHTLY: "17 2 * * *"}, at("2024-05-01 12:00"))
    assert result.added == (NIGHTLY,)
    found = schedule(conn, NIGHTLY)
    assert found.enabled and found.installation_id == 7
    assert found.next_fire_at == at("2024-05-02 02:17")
    assert db.next_due_at(conn) == at("2024-05-02 02:17")


def test_a_config_push_keeps_an_unchanged_time_and_moves_a_changed_one(conn):
    sync(conn, {NIGHTLY: "17 2 * * *", HOURLY: "0 * * * *"}, at("2024-05-01 12:00"))
    # A push at 12:30 that changes only the hourly cron.
    result = sync(conn, {NIGHTLY: "17 2 * * *", HOURLY: "30 * * * *"}, at("2024-05-01 12:30"))
    assert (result.kept, result.changed) == ((NIGHTLY,), (HOURLY,))
    assert schedule(conn, NIGHTLY).next_fire_at == at("2024-05-02 02:17")
    assert schedule(conn, HOURLY).next_fire_at == at("2024-05-01 13:30")
    assert schedule(conn, HOURLY).cron == "30 * * * *"


def test_a_schedule_gone_from_the_config_is_disabled_and_one_that_returns_starts_afresh(conn):
    sync(conn, {NIGHTLY: "17 2 * * *", HOURLY: "0 * * * *"}, at("2024-05-01 12:00"))
    result = sync(conn, {NIGHTLY: "17 2 * * *"}, at("2024-05-01 12:10"))
    assert result.disabled == (HOURLY,)
    gone = schedule(conn, HOURLY)
    assert not gone.enabled and gone.next_fire_at is None
    assert [f.name for f in claim(conn, at("2024-05-03 00:00"))] == ["nightly"]
    # Back a week later: the slots it missed while disabled are not fired.
    result = sync(conn, {NIGHTLY: "17 2 * * *", HOURLY: "0 * * * *"}, at("2024-05-08 09:10"))
    assert result.changed == (HOURLY,)
    assert schedule(conn, HOURLY).next_fire_at == at("2024-05-08 10:00")


def test_what_could_not_be_read_this_time_is_left_as_it_was(conn):
    sync(conn, {NIGHTLY: "17 2 * * *", HOURLY: "0 * * * *", ("other", "x"): "0 0 * * *"}, 0.0)
    # The nightly cron did not parse this time, and the other feature's section raised.
    result = sync(
        conn, {HOURLY: "0 * * * *"}, 100.0, untouched={NIGHTLY}, untouched_features={"other"}
    )
    assert result.disabled == ()
    assert schedule(conn, NIGHTLY).enabled and schedule(conn, ("other", "x")).enabled


def test_a_cron_with_no_next_time_stops_only_its_own_schedule(conn):
    def picky(cron: str, t: float) -> float:
        if cron == "never":
            raise ValueError("no such time")
        return next_after(cron, t)

    db.sync_schedules(
        conn, REPO, None, {NIGHTLY: "never", HOURLY: "0 * * * *"}, 0.0, next_after=picky
    )
    assert schedule(conn, NIGHTLY).next_fire_at is None
    (fire,) = db.claim_due(conn, 7200.0, next_after=picky)
    assert fire.name == "hourly"


def test_schedules_of_two_repositories_are_kept_apart(conn):
    sync(conn, {NIGHTLY: "17 2 * * *"}, 0.0)
    sync(conn, {NIGHTLY: "0 3 * * *"}, 0.0, repo="acme/other")
    sync(conn, {}, 10.0, repo="acme/other")
    assert schedule(conn, NIGHTLY).enabled
    assert not schedule(conn, NIGHTLY, repo="acme/other").enabled
    # GitHub's names are case-insensitive; so are the schedules' keys.
    assert schedule(conn, NIGHTLY, repo="ACME/Models").cron == "17 2 * * *"
    assert db.scheduled_repos(conn) == [(REPO, 7)]


# ---------------------------------------------------------------------- firing


def test_a_schedule_fires_at_its_time_and_moves_to_the_next(conn):
    sync(conn, {NIGHTLY: "17 2 * * *"}, at("2024-05-01 12:00"))
    assert claim(conn, at("2024-05-02 02:16:59")) == []
    (fire,) = claim(conn, at("2024-05-02 02:17:01"))
    assert (fire.repo, fire.feature, fire.name) == (REPO, *NIGHTLY)
    assert fire.due_at == at("2024-05-02 02:17") and not fire.manual
    assert fire.installation_id == 7 and fire.attempts == 1 and not fire.finished
    assert schedule(conn, NIGHTLY).next_fire_at == at("2024-05-03 02:17")
    assert claim(conn, at("2024-05-02 02:18")) == []


def test_a_fire_missed_while_the_bot_was_down_runs_once_not_once_per_slot(conn):
    sync(conn, {HOURLY: "0 * * * *"}, at("2024-05-01 12:00"))
    # Down from 12:30 to 17:45: five slots passed.
    (fire,) = claim(conn, at("2024-05-01 17:45"))
    assert fire.due_at == at("2024-05-01 13:00")
    assert schedule(conn, HOURLY).next_fire_at == at("2024-05-01 18:00")
    assert claim(conn, at("2024-05-01 17:46")) == []


def test_two_stores_on_one_file_never_claim_one_slot_twice(tmp_path):
    path = str(tmp_path / "bot.sqlite3")
    first, second = Store(path), Store(path)
    try:
        first.call_sync(lambda c: sync(c, {HOURLY: "* * * * *"}, 0.0))
        claimed: list[list[db.FireRow]] = [[], []]
        start = threading.Barrier(2)

        def claimer(index: int, store: Store) -> None:
            start.wait()
            for minute in range(1, 121):
                claimed[index] += store.call_sync(lambda c, m=minute: claim(c, m * 60.0 + 1))

        threads = [
            threading.Thread(target=claimer, args=(i, s)) for i, s in enumerate((first, second))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        slots = [fire.due_at for fire in claimed[0] + claimed[1]]
        assert sorted(slots) == [m * 60.0 for m in range(1, 121)]  # each slot, once
        stored = first.call_sync(lambda c: db.fires_of(c, REPO, *HOURLY, limit=1000))
        assert len(stored) == 120
    finally:
        first.close()
        second.close()


def test_the_store_refuses_a_second_fire_of_one_slot(conn):
    sync(conn, {HOURLY: "0 * * * *"}, 0.0)
    (fire,) = claim(conn, 3601.0)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO fires (repo, feature, name, due_at, fired_at) VALUES (?, ?, ?, ?, ?)",
            (REPO, *HOURLY, fire.due_at, 3602.0),
        )


def test_a_fire_interrupted_by_a_restart_is_handed_over_once_more_then_given_up(tmp_path):
    path = str(tmp_path / "bot.sqlite3")
    store = Store(path)
    store.call_sync(lambda c: sync(c, {HOURLY: "0 * * * *"}, 0.0))
    (fire,) = store.call_sync(lambda c: claim(c, 3601.0))
    store.close()  # the process stops before the fire reaches its feature

    store = Store(path)
    retry, abandoned = store.call_sync(lambda c: db.resume_unfinished(c, 3700.0))
    assert [(f.id, f.attempts) for f in retry] == [(fire.id, 2)] and abandoned == []
    store.close()  # and stops again, mid-hand-over

    store = Store(path)
    retry, abandoned = store.call_sync(lambda c: db.resume_unfinished(c, 3800.0))
    assert retry == [] and [f.id for f in abandoned] == [fire.id]
    (kept,) = store.call_sync(lambda c: db.fires_of(c, REPO, *HOURLY))
    assert kept.finished and kept.run_id is None and "not tried again" in (kept.note or "")
    assert store.call_sync(lambda c: db.resume_unfinished(c, 3900.0)) == ([], [])
    # Nothing else was lost or repeated: the schedule waits for its next slot.
    assert store.call_sync(lambda c: claim(c, 3900.0)) == []
    store.close()


def test_a_fire_is_finished_once_and_its_run_is_what_the_next_fire_waits_for(conn):
    run_id = write_run(conn, state="running")
    sync(conn, {HOURLY: "0 * * * *"}, 0.0)
    (first,) = claim(conn, 3601.0)
    assert db.record_fire_result(conn, first.id, run_id, "")
    assert not db.record_fire_result(conn, first.id, None, "again")
    assert schedule(conn, HOURLY).last_run_id == run_id
    (second,) = claim(conn, 7201.0)
    assert db.record_fire_result(conn, second.id, None, f"the previous run (#{run_id}) is going")
    assert schedule(conn, HOURLY).last_run_id == run_id  # a fire that started nothing
    newest, oldest = db.fires_of(conn, REPO, *HOURLY)
    assert (newest.id, newest.run_id, newest.note) == (
        second.id,
        None,
        f"the previous run (#{run_id}) is going",
    )
    assert (oldest.run_id, oldest.note) == (run_id, None)


def test_a_note_is_cut_to_its_bound(conn):
    sync(conn, {HOURLY: "0 * * * *"}, 0.0)
    (fire,) = claim(conn, 3601.0)
    db.record_fire_result(conn, fire.id, None, "x" * 100_000)
    (kept,) = db.fires_of(conn, REPO, *HOURLY)
    assert kept.note == "x" * db.NOTE_CHARS


def test_a_manual_fire_needs_an_enabled_schedule_and_moves_no_time(conn):
    sync(conn, {NIGHTLY: "17 2 * * *", HOURLY: "0 * * * *"}, at("2024-05-01 12:00"))
    sync(conn, {NIGHTLY: "17 2 * * *"}, at("2024-05-01 12:00"))
    before = schedule(conn, NIGHTLY)
    fire = db.fire_now(conn, REPO, *NIGHTLY, at("2024-05-01 12:05"))
    assert fire is not None and fire.manual and fire.due_at == at("2024-05-01 12:05")
    assert schedule(conn, NIGHTLY) == before
    # Twice by hand is twice: the slot index is for scheduled fires only.
    assert db.fire_now(conn, REPO, *NIGHTLY, at("2024-05-01 12:05")) is not None
    assert db.fire_now(conn, REPO, *HOURLY, at("2024-05-01 12:05")) is None  # disabled
    assert db.fire_now(conn, REPO, "scheduled_ci", "weekly", 0.0) is None  # none such


# ---------------------------------------------------------------------- verdicts


def test_verdicts_are_replaced_per_run_test_and_machine_type(conn):
    run_id = write_run(conn)
    test = "tests/models/bert/test_modeling_bert.py::BertTest::test_forward"
    rows = [
        TestVerdict(run_id, test, "new", machine_type="single-gpu", folder="models/bert"),
        TestVerdict(run_id, test, "still failing", machine_type="multi-gpu", folder="models/bert"),
    ]
    verdicts.upsert_verdicts(conn, rows, now=1.0)
    verdicts.upsert_verdicts(conn, rows[:1], now=2.0)
    assert verdicts.set_verdict(
        conn,
        run_id,
        test,
        "new",
        machine_type="single-gpu",
        reason="fails at abc, passes at its parent",
        first_bad="a" * 40,
        evidence=[{"sha": "a" * 40, "outcome": "failed"}],
    )
    assert not verdicts.set_verdict(conn, run_id, "tests/none.py::x", "flaky")
    single, multi = verdicts.verdicts_of(conn, run_id)  # by status: new first
    assert (multi.machine_type, multi.status, multi.verdict) == ("multi-gpu", "still failing", None)
    assert (single.verdict, single.first_bad) == ("new", "a" * 40)
    assert single.evidence == [{"sha": "a" * 40, "outcome": "failed"}]
    assert [v.run_id for v in verdicts.verdict_history(conn, "acme/models", test)] == [run_id] * 2
    assert verdicts.verdict_history(conn, "acme/other", test) == []


def test_a_verdict_out_of_its_words_or_of_no_run_is_refused(conn):
    run_id = write_run(conn)
    with pytest.raises(ValueError, match="status"):
        verdicts.upsert_verdicts(conn, [TestVerdict(run_id, "t", "broken")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="verdict"):
        verdicts.set_verdict(conn, run_id, "t", "guilty")  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        verdicts.upsert_verdicts(conn, [TestVerdict(run_id + 99, "t", "new")])


def test_the_flaky_registry_counts_per_repository(conn):
    verdicts.record_flaky(conn, REPO, "t1", run_id=3, now=10.0)
    verdicts.record_flaky(conn, REPO, "t2", now=15.0)
    again = verdicts.record_flaky(conn, REPO, "t1", now=20.0)
    verdicts.record_flaky(conn, "acme/other", "t1", now=30.0)
    assert (again.first_seen, again.last_seen, again.times, again.last_run_id) == (10.0, 20.0, 2, 3)
    assert [(f.test, f.times) for f in verdicts.list_flaky(conn, REPO)] == [("t1", 2), ("t2", 1)]


def test_an_analysis_step_is_taken_by_one_writer_only(conn):
    run_id = write_run(conn)
    assert verdicts.get_analysis(conn, run_id) is None
    assert verdicts.swap_analysis(conn, run_id, 0, "reruns", {"tests": ["t1"]})
    assert not verdicts.swap_analysis(conn, run_id, 0, "reruns", {"tests": ["t2"]})
    # Two processes resumed at version 1; the first to write moves on, the other must re-read.
    assert verdicts.swap_analysis(conn, run_id, 1, "bisect", {"good": "a", "bad": "b"})
    assert not verdicts.swap_analysis(conn, run_id, 1, "bisect", {"good": "x", "bad": "y"})
    found = verdicts.get_analysis(conn, run_id)
    assert found is not None
    assert (found.phase, found.state, found.version) == ("bisect", {"good": "a", "bad": "b"}, 2)
    other = write_run(conn)
    verdicts.swap_analysis(conn, other, 0, "done", {})
    assert [a.run_id for a in verdicts.open_analyses(conn, ["done"])] == [run_id]
    assert len(verdicts.open_analyses(conn, [])) == 2


# ---------------------------------------------------------------------- the schema


def test_a_database_of_the_previous_schema_gains_the_new_tables_and_keeps_its_outbox(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    old = database_before(path, "CREATE TABLE schedules")
    old.execute(
        "INSERT INTO outbox (key, kind, payload, status, created_at, delivered_at)"
        " VALUES ('k', 'slack', '{}', 'delivered', 1, 2)"
    )
    old.close()
    conn = connect(path)
    row = conn.execute("SELECT key, thread_of, sent_ts FROM outbox").fetchone()
    assert tuple(row) == ("k", None, None)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schedules", "fires", "test_verdicts", "flaky_tests", "analysis_state"} <= tables
    conn.close()
