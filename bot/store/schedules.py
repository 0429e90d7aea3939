"""Schedules and their fires: when each repository's scheduled work is next due, and what each
firing came to.

A schedule is keyed by (repository, feature, name) and holds its cron and its next fire time;
the times are stored so that a restart neither loses a fire nor repeats one. Claiming a due
schedule writes its `fires` row and moves `next_fire_at` past *now* in one transaction, so a
schedule that was due several times while the bot was down fires once, and two processes on one
file cannot both claim the same slot (the claim is a compare-and-set on `next_fire_at`, and a
unique index on the slot backs it up).

A fire is finished when its outcome is recorded: the run it started, or why none (`note`). One
without an outcome was claimed by a process that stopped before it could hand the fire to its
feature; `resume_unfinished` hands such fires out again once, then gives up on them with a note,
so a fire that brings the process down cannot do so at every start.

The store does not read cron syntax: callers pass `next_after(cron, t)`, the first fire time
strictly after `t`, which may raise for a cron that never fires again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from bot.jobs.records import RunRecord
from bot.store import runs as runs_db

#: `next_after(cron, t)`: the first time after `t` the cron names.
NextAfter = Callable[[str, float], float]
#: Schedule keys within a repository: (feature, name).
Key = tuple[str, str]

#: How often a fire is handed to its feature at most: once when claimed, once more after a
#: restart that interrupted it.
MAX_FIRE_ATTEMPTS = 2
#: A fire's note is cut to this many characters (an exception's text can be any length).
NOTE_CHARS = 2000
ABANDONED_NOTE = (
    "not started: the bot stopped {attempts} times while handing this fire to its feature,"
    " so it is not tried again"
)


@dataclass(frozen=True)
class Schedule:
    repo: str
    feature: str
    name: str
    cron: str
    installation_id: int | None
    enabled: bool
    #: None while disabled, or for a cron that names no future time.
    next_fire_at: float | None
    last_fired_at: float | None
    #: The run the last fire that started one started (a skipped fire leaves it as it was).
    last_run_id: int | None
    created_at: float
    updated_at: float

    @property
    def key(self) -> Key:
        return (self.feature, self.name)


@dataclass(frozen=True)
class FireRow:
    id: int
    repo: str
    feature: str
    name: str
    installation_id: int | None
    #: The slot it was due at (a manual fire: when it was asked for).
    due_at: float
    fired_at: float
    manual: bool
    #: How many times it was handed to its feature.
    attempts: int
    run_id: int | None
    note: str | None
    finished_at: float | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass(frozen=True)
class SyncResult:
    """What a sync did, by (feature, name)."""

    added: tuple[Key, ...] = ()
    changed: tuple[Key, ...] = ()
    kept: tuple[Key, ...] = ()
    disabled: tuple[Key, ...] = ()


def _schedule(row: sqlite3.Row) -> Schedule:
    return Schedule(
        repo=row["repo"],
        feature=row["feature"],
        name=row["name"],
        cron=row["cron"],
        installation_id=row["installation_id"],
        enabled=bool(row["enabled"]),
        next_fire_at=row["next_fire_at"],
        last_fired_at=row["last_fired_at"],
        last_run_id=row["last_run_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _fire(row: sqlite3.Row) -> FireRow:
    return FireRow(
        id=row["id"],
        repo=row["repo"],
        feature=row["feature"],
        name=row["name"],
        installation_id=row["installation_id"],
        due_at=row["due_at"],
        fired_at=row["fired_at"],
        manual=bool(row["manual"]),
        attempts=row["attempts"],
        run_id=row["run_id"],
        note=row["note"],
        finished_at=row["finished_at"],
    )


def _next(next_after: NextAfter, cron: str, after: float) -> float | None:
    try:
        return float(next_after(cron, after))
    except Exception:  # one schedule's cron must never stop the others from firing
        return None


# ---------------------------------------------------------------------- learning schedules


def sync_schedules(
    conn: sqlite3.Connection,
    repo: str,
    installation_id: int | None,
    specs: Mapping[Key, str],
    now: float,
    *,
    next_after: NextAfter,
    untouched: Collection[Key] = (),
    untouched_features: Collection[str] = (),
) -> SyncResult:
    """Makes `repo`'s schedules those of `specs` ({(feature, name): cron}).

    A new schedule, or one whose cron changed or that comes back after being disabled, is next
    due at its first time after `now`; one whose cron is unchanged keeps its time, so a config
    push between two fires moves nothing. Schedules not in `specs` are disabled, except those
    in `untouched` and those of `untouched_features` (a cron or a section that could not be
    read this time): they stay as they were.
    """
    existing = {
        (row["feature"], row["name"]): row
        for row in conn.execute("SELECT * FROM schedules WHERE repo = ?", (repo,))
    }
    added: list[Key] = []
    changed: list[Key] = []
    kept: list[Key] = []
    disabled: list[Key] = []
    for key, cron in specs.items():
        feature, name = key
        row = existing.get(key)
        if row is None:
            first = _next(next_after, cron, now)
            conn.execute(
                "INSERT INTO schedules (repo, feature, name, cron, installation_id, enabled,"
                " next_fire_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (repo, feature, name, cron, installation_id, first, now, now),
            )
            added.append(key)
        elif row["cron"] == cron and row["enabled"]:
            conn.execute(
                "UPDATE schedules SET installation_id = ?, updated_at = ?"
                " WHERE repo = ? AND feature = ? AND name = ?",
                (installation_id, now, repo, feature, name),
            )
            kept.append(key)
        else:
            conn.execute(
                "UPDATE schedules SET cron = ?, installation_id = ?, enabled = 1,"
                " next_fire_at = ?, updated_at = ? WHERE repo = ? AND feature = ? AND name = ?",
                (cron, installation_id, _next(next_after, cron, now), now, repo, feature, name),
            )
            changed.append(key)
    for key, row in existing.items():
        if key in specs or not row["enabled"]:
            continue
        if key in untouched or key[0] in untouched_features:
            continue
        conn.execute(
            "UPDATE schedules SET enabled = 0, next_fire_at = NULL, updated_at = ?"
            " WHERE repo = ? AND feature = ? AND name = ?",
            (now, repo, *key),
        )
        disabled.append(key)
    return SyncResult(tuple(added), tuple(changed), tuple(kept), tuple(disabled))


# ---------------------------------------------------------------------- firing


def claim_due(
    conn: sqlite3.Connection, now: float, limit: int = 20, *, next_after: NextAfter
) -> list[FireRow]:
    """Records a fire for each schedule due by `now` and moves it to its next time after `now`.

    Runs in the caller's transaction: the fire rows and the moved times commit together or not
    at all. Each move is a compare-and-set on the time read, so a second claimer of the same
    slot (another process on the file) changes nothing and gets nothing.
    """
    due = conn.execute(
        "SELECT * FROM schedules INDEXED BY schedules_due"
        " WHERE enabled = 1 AND next_fire_at <= ? ORDER BY next_fire_at LIMIT ?",
        (now, limit),
    ).fetchall()
    claimed: list[FireRow] = []
    for row in due:
        moved = conn.execute(
            "UPDATE schedules SET next_fire_at = ?, last_fired_at = ?"
            " WHERE repo = ? AND feature = ? AND name = ? AND enabled = 1 AND next_fire_at = ?",
            (
                _next(next_after, row["cron"], now),
                now,
                row["repo"],
                row["feature"],
                row["name"],
                row["next_fire_at"],
            ),
        ).rowcount
        if moved != 1:
            continue
        fire = conn.execute(
            "INSERT INTO fires (repo, feature, name, installation_id, due_at, fired_at, manual,"
            " attempts) VALUES (?, ?, ?, ?, ?, ?, 0, 1)"
            " ON CONFLICT DO NOTHING RETURNING *",
            (
                row["repo"],
                row["feature"],
                row["name"],
                row["installation_id"],
                row["next_fire_at"],
                now,
            ),
        ).fetchone()
        if fire is not None:
            claimed.append(_fire(fire))
    return claimed


def fire_now(
    conn: sqlite3.Connection, repo: str, feature: str, name: str, now: float
) -> FireRow | None:
    """A manual fire of an enabled schedule (an operator's button); its times stay as they are.
    None when there is no such schedule, or it is disabled."""
    schedule = get_schedule(conn, repo, feature, name)
    if schedule is None or not schedule.enabled:
        return None
    row = conn.execute(
        "INSERT INTO fires (repo, feature, name, installation_id, due_at, fired_at, manual,"
        " attempts) VALUES (?, ?, ?, ?, ?, ?, 1, 1) RETURNING *",
        (schedule.repo, schedule.feature, schedule.name, schedule.installation_id, now, now),
    ).fetchone()
    return _fire(row)


def record_fire_result(
    conn: sqlite3.Connection,
    fire_id: int,
    run_id: int | None,
    note: str = "",
    now: float | None = None,
) -> bool:
    """Finishes a fire with the run it started, or why none; once (False if it was finished).
    A run becomes its schedule's `last_run_id`, the one the next fire waits for."""
    at = time.time() if now is None else now
    row = conn.execute(
        "UPDATE fires SET run_id = ?, note = ?, finished_at = ?"
        " WHERE id = ? AND finished_at IS NULL RETURNING repo, feature, name",
        (run_id, note[:NOTE_CHARS] or None, at, fire_id),
    ).fetchone()
    if row is None:
        return False
    if run_id is not None:
        conn.execute(
            "UPDATE schedules SET last_run_id = ? WHERE repo = ? AND feature = ? AND name = ?",
            (run_id, row["repo"], row["feature"], row["name"]),
        )
    return True


def resume_unfinished(
    conn: sqlite3.Connection, now: float, max_attempts: int = MAX_FIRE_ATTEMPTS
) -> tuple[list[FireRow], list[FireRow]]:
    """For a process that starts: the fires a previous one claimed and never finished.

    Returns (to retry, given up): those handed out fewer than `max_attempts` times count one
    more attempt and are to be handed to their feature again (features treat a fire's id as the
    key of what it starts, so a second hand-over finds the run the first one made); the others
    are finished here with a note saying why they are not tried again.
    """
    rows = [
        _fire(row)
        for row in conn.execute(
            "SELECT * FROM fires INDEXED BY fires_unfinished WHERE finished_at IS NULL ORDER BY id"
        )
    ]
    retry: list[FireRow] = []
    abandoned: list[FireRow] = []
    for fire in rows:
        if fire.attempts >= max_attempts:
            conn.execute(
                "UPDATE fires SET note = ?, finished_at = ? WHERE id = ?",
                (ABANDONED_NOTE.format(attempts=fire.attempts), now, fire.id),
            )
            abandoned.append(fire)
        else:
            updated = conn.execute(
                "UPDATE fires SET attempts = attempts + 1 WHERE id = ? RETURNING *", (fire.id,)
            ).fetchone()
            retry.append(_fire(updated))
    return retry, abandoned


def next_due_at(conn: sqlite3.Connection) -> float | None:
    """When the next schedule is due; None when none is."""
    return conn.execute(
        "SELECT MIN(next_fire_at) FROM schedules INDEXED BY schedules_due WHERE enabled = 1"
    ).fetchone()[0]


# ---------------------------------------------------------------------- reading


def get_schedule(conn: sqlite3.Connection, repo: str, feature: str, name: str) -> Schedule | None:
    row = conn.execute(
        "SELECT * FROM schedules WHERE repo = ? AND feature = ? AND name = ?",
        (repo, feature, name),
    ).fetchone()
    return None if row is None else _schedule(row)


def list_schedules(conn: sqlite3.Connection, repo: str | None = None) -> list[Schedule]:
    """Every schedule (of `repo`), disabled ones included, by repository, feature and name."""
    if repo is None:
        rows = conn.execute("SELECT * FROM schedules ORDER BY repo, feature, name").fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM schedules WHERE repo = ? ORDER BY feature, name", (repo,)
        ).fetchall()
    return [_schedule(row) for row in rows]


def scheduled_repos(conn: sqlite3.Connection) -> list[tuple[str, int | None]]:
    """The repositories with an enabled schedule, and the installation each was learnt from."""
    rows = conn.execute(
        "SELECT repo, MAX(installation_id) FROM schedules WHERE enabled = 1"
        " GROUP BY repo ORDER BY repo"
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def fires_of(
    conn: sqlite3.Connection, repo: str, feature: str, name: str, limit: int = 20
) -> list[FireRow]:
    """A schedule's fires, newest first."""
    rows = conn.execute(
        "SELECT * FROM fires WHERE repo = ? AND feature = ? AND name = ? ORDER BY id DESC LIMIT ?",
        (repo, feature, name, limit),
    ).fetchall()
    return [_fire(row) for row in rows]


def get_fire(conn: sqlite3.Connection, fire_id: int) -> FireRow | None:
    row = conn.execute("SELECT * FROM fires WHERE id = ?", (fire_id,)).fetchone()
    return None if row is None else _fire(row)


def schedule_runs(
    conn: sqlite3.Connection,
    repo: str,
    name: str,
    *,
    kind: str,
    before: int | None = None,
    limit: int = 100,
) -> list[RunRecord]:
    """The runs of `kind` that `repo`'s schedule `name` started, newest first, with ids below
    `before` (the next page's cursor)."""
    rows = conn.execute(
        "SELECT id FROM runs WHERE repo = ? AND number IS NULL AND kind = ?"
        " AND json_extract(spec, '$.schedule') = ? AND id < ? ORDER BY id DESC LIMIT ?",
        (repo, kind, name, 2**63 - 1 if before is None else before, limit),
    ).fetchall()
    found = (runs_db.read_run(conn, row[0]) for row in rows)
    return [run for run in found if run is not None]


@dataclass(frozen=True)
class RunTotals:
    """A run's jobs added up: what a list of many runs shows without reading every job."""

    jobs: int
    done: int
    #: jobs that ended other than passed or skipped (failed, timed out, error, cancelled)
    bad: int
    passed: int
    #: failed and errors
    failed: int
    skipped: int

    @property
    def ran(self) -> int:
        """Tests that ran to an answer: skipped ones did not."""
        return self.passed + self.failed


_TOTALS = (
    "COUNT(*), SUM(state NOT IN ('queued', 'running')),"
    " SUM(state NOT IN ('queued', 'running', 'passed', 'skipped')),"
    " SUM(passed), SUM(failed + errors), SUM(skipped)"
)


def run_totals(conn: sqlite3.Connection, run_ids: Sequence[int]) -> dict[int, RunTotals]:
    """Each run's totals (runs without jobs are absent)."""
    out: dict[int, RunTotals] = {}
    for start in range(0, len(run_ids), 500):
        chunk = list(run_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT run_id, {_TOTALS} FROM jobs WHERE run_id IN ({marks})"  # noqa: S608
            " GROUP BY run_id",
            chunk,
        )
        for run_id, *counts in rows:
            out[run_id] = RunTotals(*counts)
    return out
