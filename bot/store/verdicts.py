"""What the bot concluded about failing tests: per run and test, the flaky registry, and the
stored progress of an analysis (re-runs, the bisect) so a restart resumes it.

`test_verdicts` holds, for each failing (or newly fixed) test of a run, how it compares with the
previous run (`status`) and, once the analysis is done, what it is (`verdict`) with its reason,
the first bad commit and the evidence as JSON. `flaky_tests` counts, per repository, the tests
that passed on a re-run. `analysis_state` is one row per run that an analysis is working on,
changed only by compare-and-set on `version`: two processes (or a process and its restarted
self) can never both advance the same step.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: How a failing test compares with the previous run of the same schedule (or the PR's base).
Status = Literal["new", "still failing", "fixed"]
#: What the analysis found; None until it has.
Verdict = Literal["new", "flaky", "pre-existing", "unknown"]
STATUSES: tuple[str, ...] = ("new", "still failing", "fixed")
VERDICTS: tuple[str, ...] = ("new", "flaky", "pre-existing", "unknown")


@dataclass(frozen=True)
class TestVerdict:
    __test__ = False  # not a pytest test class, whatever its name says

    run_id: int
    test: str
    status: Status
    #: "" where the run has one machine type.
    machine_type: str = ""
    folder: str = ""
    verdict: Verdict | None = None
    reason: str = ""
    #: The first commit where the test fails, when a bisect found it.
    first_bad: str | None = None
    evidence: Any = field(default_factory=list)
    updated_at: float = 0.0


@dataclass(frozen=True)
class FlakyTest:
    repo: str
    test: str
    first_seen: float
    last_seen: float
    times: int
    last_run_id: int | None


@dataclass(frozen=True)
class Analysis:
    run_id: int
    phase: str
    state: dict[str, Any]
    #: 0 for an analysis that has no row yet; each swap adds one.
    version: int
    updated_at: float


def _verdict(row: sqlite3.Row) -> TestVerdict:
    return TestVerdict(
        run_id=row["run_id"],
        test=row["test"],
        status=row["status"],
        machine_type=row["machine_type"],
        folder=row["folder"],
        verdict=row["verdict"],
        reason=row["reason"],
        first_bad=row["first_bad"],
        evidence=json.loads(row["evidence"]),
        updated_at=row["updated_at"],
    )


def _check(verdict: TestVerdict) -> None:
    # The table's CHECKs say the same; here the caller learns which value was wrong.
    if verdict.status not in STATUSES:
        raise ValueError(f"{verdict.test}: status {verdict.status!r} is not one of {STATUSES}")
    if verdict.verdict is not None and verdict.verdict not in VERDICTS:
        raise ValueError(f"{verdict.test}: verdict {verdict.verdict!r} is not one of {VERDICTS}")


# ---------------------------------------------------------------------- verdicts


def upsert_verdicts(
    conn: sqlite3.Connection, verdicts: Sequence[TestVerdict], now: float | None = None
) -> None:
    """Writes each (run, test, machine type)'s row, replacing what was there."""
    at = time.time() if now is None else now
    for verdict in verdicts:
        _check(verdict)
    conn.executemany(
        "INSERT INTO test_verdicts (run_id, test, machine_type, folder, status, verdict, reason,"
        " first_bad, evidence, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, test, machine_type) DO UPDATE SET folder = excluded.folder,"
        " status = excluded.status, verdict = excluded.verdict, reason = excluded.reason,"
        " first_bad = excluded.first_bad, evidence = excluded.evidence,"
        " updated_at = excluded.updated_at",
        [
            (
                v.run_id,
                v.test,
                v.machine_type,
                v.folder,
                v.status,
                v.verdict,
                v.reason,
                v.first_bad,
                json.dumps(v.evidence),
                at,
            )
            for v in verdicts
        ],
    )


def set_verdict(
    conn: sqlite3.Connection,
    run_id: int,
    test: str,
    verdict: Verdict,
    *,
    machine_type: str = "",
    reason: str = "",
    first_bad: str | None = None,
    evidence: Any = (),
    now: float | None = None,
) -> bool:
    """Records the analysis's answer for a test the run already lists; False when it does not."""
    if verdict not in VERDICTS:
        raise ValueError(f"{test}: verdict {verdict!r} is not one of {VERDICTS}")
    return (
        conn.execute(
            "UPDATE test_verdicts SET verdict = ?, reason = ?, first_bad = ?, evidence = ?,"
            " updated_at = ? WHERE run_id = ? AND test = ? AND machine_type = ?",
            (
                verdict,
                reason,
                first_bad,
                json.dumps(list(evidence) if isinstance(evidence, tuple) else evidence),
                time.time() if now is None else now,
                run_id,
                test,
                machine_type,
            ),
        ).rowcount
        == 1
    )


def verdicts_of(conn: sqlite3.Connection, run_id: int) -> list[TestVerdict]:
    """A run's tests by status, then name."""
    rows = conn.execute(
        "SELECT * FROM test_verdicts WHERE run_id = ? ORDER BY status, test, machine_type",
        (run_id,),
    ).fetchall()
    return [_verdict(row) for row in rows]


def verdict_history(
    conn: sqlite3.Connection, repo: str, test: str, limit: int = 50
) -> list[TestVerdict]:
    """A test's rows across `repo`'s runs, newest run first (a test's history page)."""
    rows = conn.execute(
        "SELECT v.* FROM test_verdicts AS v JOIN runs ON runs.id = v.run_id"
        " WHERE v.test = ? AND runs.repo = ? ORDER BY v.run_id DESC LIMIT ?",
        (test, repo, limit),
    ).fetchall()
    return [_verdict(row) for row in rows]


def verdict_counts(
    conn: sqlite3.Connection, run_ids: Sequence[int]
) -> dict[int, dict[tuple[str, str | None], int]]:
    """How many of each run's rows have each (status, verdict): what a list of runs shows
    without reading every row."""
    out: dict[int, dict[tuple[str, str | None], int]] = {run_id: {} for run_id in run_ids}
    for chunk in _chunks(run_ids):
        marks = ",".join("?" * len(chunk))
        where = f"WHERE run_id IN ({marks})"
        rows = conn.execute(
            f"SELECT run_id, status, verdict, COUNT(*) FROM test_verdicts {where}"  # noqa: S608
            " GROUP BY run_id, status, verdict",
            chunk,
        )
        for run_id, status, verdict, count in rows:
            out[run_id][(status, verdict)] = count
    return out


def repo_private(conn: sqlite3.Connection, repo: str) -> bool | None:
    """Whether `repo`'s test pages are for its readers only: when any of its runs is. A
    repository that was private once keeps that history for its readers. None when no run of
    it is stored, so nothing tells whether it is private."""
    found = conn.execute("SELECT MAX(private) FROM runs WHERE repo = ?", (repo,)).fetchone()[0]
    return None if found is None else bool(found)


@dataclass(frozen=True)
class CoveringJob:
    """A job of a run whose folder holds a test, with its stored results (`outcome_in` reads
    the test's answer from them, away from the store's connection)."""

    machine_type: str
    #: the job's per-test results as stored (zlib-compressed JSON); None when it has none
    results: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TestInRun:
    """One test in one ended run: the jobs that covered its folder, and what the analysis
    concluded (no verdict rows where the test did not change)."""

    __test__ = False  # not a pytest test class, whatever its name says

    run_id: int
    #: the schedule that started the run (its `spec.schedule`); "" for a run without one
    schedule: str
    head_sha: str
    requested_at: float
    state: str
    jobs: tuple[CoveringJob, ...]
    verdicts: tuple[TestVerdict, ...]


def outcome_history(
    conn: sqlite3.Connection, repo: str, test: str, *, kind: str, limit: int = 365
) -> list[TestInRun]:
    """`test` in `repo`'s newest `limit` ended runs of `kind` (pushes' runs, not a pull
    request's), newest first.

    Only the jobs whose folder holds the test are read, and their results are handed back
    compressed: decoding a year of nightly runs is the caller's, off this connection, which
    every write of the process waits for.
    """
    runs = conn.execute(
        "SELECT id, json_extract(spec, '$.schedule'), head_sha, requested_at, state FROM runs"
        " WHERE repo = ? AND number IS NULL AND kind = ? AND state NOT IN ('queued', 'running')"
        " ORDER BY id DESC LIMIT ?",
        (repo, kind, limit),
    ).fetchall()
    ids = [row[0] for row in runs]
    jobs: dict[int, list[CoveringJob]] = {run_id: [] for run_id in ids}
    found: dict[int, list[TestVerdict]] = {run_id: [] for run_id in ids}
    folders = _folders_holding(test)
    folder_marks = ",".join("?" * len(folders))
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        where = f"WHERE run_id IN ({marks})"
        covering = (
            conn.execute(
                "SELECT run_id, json_extract(spec, '$.machine_type'), results"  # noqa: S608
                f" FROM jobs INDEXED BY jobs_run {where}"
                f" AND json_extract(spec, '$.folder') IN ({folder_marks}) ORDER BY id",
                [*chunk, *folders],
            )
            if folders
            else ()
        )
        for run_id, machine_type, results in covering:
            jobs[run_id].append(CoveringJob(str(machine_type or ""), results))
        rows = conn.execute(
            f"SELECT * FROM test_verdicts {where} AND test = ?"  # noqa: S608 - only marks
            " ORDER BY run_id, machine_type",
            [*chunk, test],
        )
        for row in rows:
            found[row["run_id"]].append(_verdict(row))
    return [
        TestInRun(
            run_id=run_id,
            schedule=str(schedule or ""),
            head_sha=head_sha,
            requested_at=requested_at,
            state=state,
            jobs=tuple(jobs[run_id]),
            verdicts=tuple(found[run_id]),
        )
        for run_id, schedule, head_sha, requested_at, state in runs
    ]


#: How deep a test's folders are looked for: deeper ones are not a test layout.
MAX_FOLDER_DEPTH = 16


def _folders_holding(test: str) -> list[str]:
    """The folders (under `tests/`) whose jobs run `test`, a node id from the repository's root
    (`tests/models/bert/test_x.py::test_y`): every folder above its file, written with and
    without `tests/`, as a schedule's folders may be."""
    parts = test.split("::", 1)[0].split("/")[:-1][:MAX_FOLDER_DEPTH]
    found: list[str] = []
    for depth in range(1, len(parts) + 1):
        folder = "/".join(parts[:depth])
        found.append(folder)
        if folder.startswith("tests/"):
            found.append(folder.removeprefix("tests/"))
    return found


_DECODER = json.JSONDecoder()


def outcome_in(results: bytes | None, test: str) -> str:
    """What a job's stored results say of `test`: passed, failed, error or skipped, or
    "missing" when they do not name it.

    The results are one JSON list written by `json.dumps`, each object's first key its node id:
    the test's object is found by its text and decoded alone, so a job of thousands of results
    costs a search, not a parse. A layout that does not fit falls back on decoding the list.
    """
    if results is None:
        return "missing"
    text = zlib.decompress(results).decode("utf-8", "replace")
    name = json.dumps(test)
    if name not in text:
        return "missing"
    start = text.find('{"node_id": ' + name + ",")
    if start >= 0:
        try:
            row, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            row = None
        if isinstance(row, dict) and row.get("node_id") == test:
            return str(row.get("outcome") or "missing")
    for row in json.loads(text):
        if isinstance(row, dict) and row.get("node_id") == test:
            return str(row.get("outcome") or "missing")
    return "missing"


def _chunks(ids: Sequence[int], size: int = 500) -> list[list[int]]:
    """Ids in groups small enough for one statement's parameters."""
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]


# ---------------------------------------------------------------------- the flaky registry


def record_flaky(
    conn: sqlite3.Connection,
    repo: str,
    test: str,
    *,
    run_id: int | None = None,
    now: float | None = None,
) -> FlakyTest:
    """Counts one more time `test` passed on a re-run in `repo`."""
    at = time.time() if now is None else now
    row = conn.execute(
        "INSERT INTO flaky_tests (repo, test, first_seen, last_seen, times, last_run_id)"
        " VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (repo, test) DO UPDATE SET"
        " last_seen = excluded.last_seen, times = times + 1,"
        " last_run_id = COALESCE(excluded.last_run_id, last_run_id) RETURNING *",
        (repo, test, at, at, run_id),
    ).fetchone()
    return _flaky(row)


def list_flaky(conn: sqlite3.Connection, repo: str) -> list[FlakyTest]:
    """`repo`'s flaky tests, the most recently seen first."""
    rows = conn.execute(
        "SELECT * FROM flaky_tests WHERE repo = ? ORDER BY last_seen DESC, test", (repo,)
    ).fetchall()
    return [_flaky(row) for row in rows]


def get_flaky(conn: sqlite3.Connection, repo: str, test: str) -> FlakyTest | None:
    """`test`'s entry in `repo`'s flaky registry, if it has one."""
    row = conn.execute(
        "SELECT * FROM flaky_tests WHERE repo = ? AND test = ?", (repo, test)
    ).fetchone()
    return None if row is None else _flaky(row)


def _flaky(row: sqlite3.Row) -> FlakyTest:
    return FlakyTest(
        repo=row["repo"],
        test=row["test"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        times=row["times"],
        last_run_id=row["last_run_id"],
    )


# ---------------------------------------------------------------------- analysis state


def get_analysis(conn: sqlite3.Connection, run_id: int) -> Analysis | None:
    row = conn.execute("SELECT * FROM analysis_state WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _analysis(row)


def swap_analysis(
    conn: sqlite3.Connection,
    run_id: int,
    expected_version: int,
    phase: str,
    state: Mapping[str, Any],
    now: float | None = None,
) -> bool:
    """Writes the analysis's next step if it is still at `expected_version` (0: no row yet);
    False when another writer moved it first, who then owns the step."""
    at = time.time() if now is None else now
    text = json.dumps(dict(state))
    if expected_version == 0:
        return (
            conn.execute(
                "INSERT INTO analysis_state (run_id, phase, state, version, updated_at)"
                " VALUES (?, ?, ?, 1, ?) ON CONFLICT (run_id) DO NOTHING",
                (run_id, phase, text, at),
            ).rowcount
            == 1
        )
    return (
        conn.execute(
            "UPDATE analysis_state SET phase = ?, state = ?, version = version + 1,"
            " updated_at = ? WHERE run_id = ? AND version = ?",
            (phase, text, at, run_id, expected_version),
        ).rowcount
        == 1
    )


def open_analyses(conn: sqlite3.Connection, finished: Collection[str]) -> list[Analysis]:
    """The analyses whose phase is not one of `finished`: what a starting process resumes."""
    done = list(finished)
    marks = ", ".join("?" * len(done))
    where = f"WHERE phase NOT IN ({marks})" if done else ""
    rows = conn.execute(
        f"SELECT * FROM analysis_state {where} ORDER BY run_id",  # noqa: S608 - only marks
        done,
    ).fetchall()
    return [_analysis(row) for row in rows]


def _analysis(row: sqlite3.Row) -> Analysis:
    return Analysis(
        run_id=row["run_id"],
        phase=row["phase"],
        state=json.loads(row["state"]),
        version=row["version"],
        updated_at=row["updated_at"],
    )
