"""Retention: the bulky parts of finished work are dropped once they are older than a set age.

What goes: a delivery's body and headers (its `delivery_bodies` row; the `deliveries` row stays,
so the delivery is still counted and listed, with its event, status and error), and a job's log,
JUnit XML and per-test results (set to NULL; the job's counts, failures and timings stay). What
never goes: anything unfinished. A delivery is pruned only once `done` or `failed`, a job only
once it has ended and its run has ended too, so a retry, a replay in progress or a run still
reporting always finds its data.

The schema has no "pruned" column, so a pruned delivery is one without a body row, and a pruned
job one whose blobs are NULL. Both make the next prune cheap: the bodies left are the unpruned
ones (walked oldest first by rowid), and candidate jobs are found through `runs`, whose rows hold
no blobs (reading a job's `finished_at` means reading past its blobs).

`prune` is plain SQL over a connection and does one bounded batch, so the server runs it through
`Store.call` in the group commit without holding the write lock for long; `prune_store` repeats
batches until nothing is left, and `run_retention` does that at start and then every hour.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass, fields

from bot.config import Settings
from bot.metrics import Metrics
from bot.store.engine import Store, StoreClosed

log = logging.getLogger(__name__)

DAY_S = 86_400.0
#: How often the background loop prunes; retention is counted in days, so an hour is fine-grained.
INTERVAL_S = 3600.0
#: Rows per batch: a batch frees a few MB of pages in a few milliseconds of one group commit.
DELIVERY_BATCH = 500
JOB_BATCH = 50
#: Arrival order is taken for time order to within this much (a clock stepped back by NTP).
_CLOCK_SLACK_S = DAY_S


@dataclass(frozen=True)
class PruneCounts:
    """What one prune removed; the field names are the `what` label of `bot_pruned_total`."""

    delivery_bodies: int = 0
    job_logs: int = 0
    junit: int = 0
    results: int = 0

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def prune(
    conn: sqlite3.Connection,
    now: float,
    max_age_s: float,
    *,
    delivery_batch: int = DELIVERY_BATCH,
    job_batch: int = JOB_BATCH,
) -> PruneCounts:
    """Drops, in one bounded batch, the bodies and blobs of work finished before `now - max_age_s`.

    Runs inside the caller's transaction; repeat until it returns nothing (an empty batch is
    cheap: the scans skip what was pruned before).
    """
    cutoff = now - max_age_s
    # CROSS JOIN keeps delivery_bodies the outer loop: walked by rowid, the oldest unpruned body
    # comes first, and the walk ends at the last delivery received before the cutoff (whatever
    # finished before the cutoff arrived before it), never reading the bodies still kept.
    seqs = [
        row[0]
        for row in conn.execute(
            "SELECT b.seq FROM delivery_bodies b CROSS JOIN deliveries d ON d.seq = b.seq"
            " WHERE b.seq <= ? AND d.status IN ('done', 'failed') AND d.finished_at < ?"
            " ORDER BY b.seq LIMIT ?",
            (_last_seq_received_before(conn, cutoff + _CLOCK_SLACK_S), cutoff, delivery_batch),
        )
    ]
    if seqs:
        conn.executemany("DELETE FROM delivery_bodies WHERE seq = ?", [(seq,) for seq in seqs])
    jobs = conn.execute(
        "SELECT j.id, j.log IS NOT NULL, j.junit IS NOT NULL, j.results IS NOT NULL"
        " FROM runs r CROSS JOIN jobs j INDEXED BY jobs_run ON j.run_id = r.id"
        " WHERE r.state NOT IN ('queued', 'running') AND r.finished_at < ?"
        " AND j.state NOT IN ('queued', 'running')"
        " AND (j.log IS NOT NULL OR j.junit IS NOT NULL OR j.results IS NOT NULL)"
        " AND j.finished_at < ?"
        " ORDER BY r.id, j.id LIMIT ?",
        (cutoff, cutoff, job_batch),
    ).fetchall()
    if jobs:
        conn.executemany(
            "UPDATE jobs SET log = NULL, junit = NULL, results = NULL WHERE id = ?",
            [(row[0],) for row in jobs],
        )
    return PruneCounts(
        delivery_bodies=len(seqs),
        job_logs=sum(row[1] for row in jobs),
        junit=sum(row[2] for row in jobs),
        results=sum(row[3] for row in jobs),
    )


def _last_seq_received_before(conn: sqlite3.Connection, t: float) -> int:
    """The last seq received before `t`, by bisection over seqs (arrival order is time order,
    to within `_CLOCK_SLACK_S`): about 20 lookups by rowid where a scan would read every row."""
    lo, hi = conn.execute("SELECT MIN(seq), MAX(seq) FROM deliveries").fetchone()
    if lo is None:
        return 0
    found = lo - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        row = conn.execute(
            "SELECT seq, received_at FROM deliveries WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,)
        ).fetchone()
        if row is not None and row[1] < t:
            found, lo = row[0], row[0] + 1
        else:
            hi = mid - 1
    return found


def prune_all(conn: sqlite3.Connection, now: float, max_age_s: float) -> PruneCounts:
    """Batch after batch on one connection until one finds nothing (command line, benchmark)."""
    total = PruneCounts()
    while counts := prune(conn, now, max_age_s):
        total += counts
    return total


async def prune_store(store: Store, now: float, max_age_s: float) -> PruneCounts:
    """Batch after batch through the group commit, so webhooks keep committing in between."""
    total = PruneCounts()
    while counts := await store.call(lambda conn: prune(conn, now, max_age_s)):
        total += counts
    return total


async def run_retention(
    store: Store, settings: Settings, metrics: Metrics, *, interval_s: float = INTERVAL_S
) -> None:
    """Prunes at start, then every `interval_s`; `BOT_RETENTION_DAYS=0` keeps everything."""
    if settings.retention_days <= 0:
        return
    max_age_s = settings.retention_days * DAY_S
    while True:
        try:
            counts = await prune_store(store, time.time(), max_age_s)
        except StoreClosed:
            return
        except Exception:
            # A full disk or a locked file must not end the loop: the next hour tries again.
            log.exception("retention: pruning failed")
        else:
            metrics.count_pruned(counts.as_dict())
            if counts:
                log.info("retention: pruned %s", counts.as_dict())
        await asyncio.sleep(interval_s)
