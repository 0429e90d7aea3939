"""The store's disk footprint: bytes per delivery and per slow-test job, kept and pruned.

Stores N real webhook payloads (../shared/data/payloads, else the project's fixture) through
`deliveries.insert_deliveries`, as the server does, and N finished jobs through `runs.finish_job`
with a realistic 200 KB pytest log and a 500-test JUnit report (its per-test results too). Each
kind goes into a database of its own; sizes are page counts after VACUUM, so the figures are what
the rows occupy, not free pages. Then it prunes everything (bot/store/retention.py) and measures
what a pruned delivery and job still hold, and projects a year at 2,000 deliveries and 50 slow
jobs a day, with 90-day retention and without.

    python bench/store_footprint.py [-n 2000]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.jobs.records import JobLimits  # noqa: E402
from bot.jobs.runners.base import JobOutcome  # noqa: E402
from bot.jobs.runners.junit import parse_junit  # noqa: E402
from bot.store import deliveries, runs  # noqa: E402
from bot.store.engine import connect  # noqa: E402
from bot.store.retention import DAY_S, prune_all  # noqa: E402

PAYLOADS = ROOT.parent / "shared" / "data" / "payloads"
FIXTURE = ROOT / "tests" / "fixtures" / "issue_comment.created.json"
#: A transformers-like day: mostly pull-request and comment traffic, pushes, a rare ping.
MIX = {
    "pull_request.opened.json": 25,
    "pull_request.ready_for_review.json": 10,
    "issue_comment.created.json": 40,
    "push.branch.json": 24,
    "ping.json": 1,
}
DELIVERIES_PER_DAY, JOBS_PER_DAY, RETENTION_DAYS = 2000, 50, 90
LOG_BYTES, TESTS = 200 * 1024, 500


def _payloads() -> list[tuple[str, bytes]]:
    if PAYLOADS.is_dir():
        found = [
            (name, (PAYLOADS / name).read_bytes()) for name in MIX if (PAYLOADS / name).is_file()
        ]
        return [(name, body) for name, body in found for _ in range(MIX[name])]
    return [(FIXTURE.name, FIXTURE.read_bytes())]


def _size(conn: sqlite3.Connection) -> int:
    conn.execute("VACUUM")
    count, size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
    return count * size


def _deliveries(conn: sqlite3.Connection, n: int, finished_at: float) -> None:
    payloads = _payloads()
    rng = random.Random(1)
    batch = []
    for _ in range(n):
        name, body = payloads[rng.randrange(len(payloads))]
        event = name.split(".")[0]
        batch.append(
            deliveries.Delivery(
                id=f"{rng.getrandbits(128):032x}",
                event=event,
                action=None if event in ("push", "ping") else name.split(".")[1],
                repo="huggingface/transformers",
                installation_id=12345678,
                headers={
                    "X-GitHub-Event": event,
                    "X-GitHub-Delivery": f"{rng.getrandbits(128):032x}",
                    "X-GitHub-Hook-ID": "512345678",
                    "X-GitHub-Hook-Installation-Target-ID": "987654",
                    "X-GitHub-Hook-Installation-Target-Type": "integration",
                    "User-Agent": "GitHub-Hookshot/a1b2c3d",
                },
                body=body,
                status="done",
                received_at=finished_at,
            )
        )
        if len(batch) == 500:
            deliveries.insert_deliveries(conn, batch)
            batch = []
    if batch:
        deliveries.insert_deliveries(conn, batch)
    conn.execute("UPDATE deliveries SET finished_at = ?", (finished_at,))


def _log(rng: random.Random) -> str:
    """A pytest run's output: collection, progress lines, warnings, a failure's traceback."""
    lines = ["============================= test session starts =============================="]
    lines.append("platform linux -- Python 3.12.3, pytest-8.3.4, pluggy-1.5.0")
    size = 0
    while size < LOG_BYTES:
        model = rng.choice(["bert", "gpt2", "llama", "t5", "whisper", "vit", "mistral"])
        verb = rng.choice(["forward", "generate", "save_load", "attention"])
        test = f"test_{verb}_{rng.randrange(99)}"
        kind = rng.random()
        if kind < 0.8:
            line = (
                f"tests/models/{model}/test_modeling_{model}.py::{model.title()}ModelTest::{test}"
                f" PASSED [{rng.randrange(100):3d}%]"
            )
        elif kind < 0.95:
            line = (
                f"/usr/lib/python3/site-packages/torch/nn/modules/module.py:{rng.randrange(2000)}:"
                f" UserWarning: {model} attention mask of shape ({rng.randrange(64)},"
                f" {rng.randrange(4096)}) is deprecated"
            )
        else:
            line = (
                f"E       AssertionError: Tensor-likes are not close! Mismatched elements:"
                f" {rng.randrange(500)} / {rng.randrange(5000)} ({rng.random():.1%})\n"
                f"E       Greatest absolute difference: {rng.random():.6f} at index"
                f" ({rng.randrange(8)}, {rng.randrange(512)})"
            )
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def _junit(rng: random.Random) -> str:
    cases = []
    for i in range(TESTS):
        model = rng.choice(["bert", "gpt2", "llama", "t5", "whisper"])
        cls = f"tests.models.{model}.test_modeling_{model}.{model.title()}ModelTest"
        attrs = f'classname="{cls}" name="test_case_{i}" time="{rng.random() * 30:.3f}"'
        roll = rng.random()
        if roll < 0.02:
            trace = "\n".join(
                f'  File "src/transformers/models/{model}/modeling_{model}.py", line'
                f" {rng.randrange(3000)}, in forward\n    hidden = self.layer(hidden)"
                for _ in range(12)
            )
            message = f"AssertionError: 0.{rng.randrange(10**6)} != 0.0"
            body = f'<failure message="{message}">{trace}\nE   AssertionError</failure>'
            cases.append(f"<testcase {attrs}>{body}</testcase>")
        elif roll < 0.12:
            cases.append(
                f'<testcase {attrs}><skipped message="test requires multiple GPUs"/></testcase>'
            )
        else:
            cases.append(f"<testcase {attrs}/>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"'
        f' tests="{TESTS}" time="1234.5">' + "".join(cases) + "</testsuite></testsuites>"
    )


def _jobs(conn: sqlite3.Connection, n: int, finished_at: float) -> tuple[int, int, int]:
    """Stores `n` finished slow-test jobs; returns the compressed bytes of one job's blobs."""
    rng = random.Random(2)
    limits = JobLimits()
    for i in range(n):
        run_id, _ = runs.insert_run(
            conn,
            kind="slow_ci",
            repo="huggingface/transformers",
            number=30000 + i,
            head_sha=f"{rng.getrandbits(160):040x}",
            base_ref="main",
            requested_by="maintainer",
            requested_at=finished_at,
            private=True,
            runner="local",
            spec={"folders": ["tests/models/bert"]},
            jobs=[("tests/models/bert", {"folders": ["tests/models/bert"]})],
            key=f"run-{i}",
            now=finished_at,
        )
        job = conn.execute("SELECT id FROM jobs WHERE run_id = ?", (run_id,)).fetchone()[0]
        conn.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (job,))
        xml = _junit(rng)
        report = parse_junit(xml)
        outcome = JobOutcome(
            state="failed" if report.failed else "passed",
            passed=report.passed,
            failed=report.failed,
            skipped=report.skipped,
            errors=report.errors,
            duration_s=report.time_s,
            tests=report.tests,
            log=_log(rng),
            junit_xml=xml,
            tested_sha=f"{rng.getrandbits(160):040x}",
            exit_code=1 if report.failed else 0,
            timings={"checkout": 12.0, "env": 3.0, "wait": 0.0, "tests": report.time_s},
        )
        runs.finish_job(conn, job, outcome, limits, finished_at)
    row = conn.execute(
        "SELECT AVG(length(log)), AVG(length(junit)), AVG(length(results)) FROM jobs"
    ).fetchone()
    return tuple(int(v) for v in row)  # type: ignore[return-value]


def _measure(fill, n: int) -> tuple[float, float, object]:
    """Bytes per row kept and per row once pruned, and what `fill` returned."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(str(Path(tmp) / "bot.sqlite3"))
        empty = _size(conn)
        old = time.time() - 400 * DAY_S
        conn.execute("BEGIN")
        extra = fill(conn, n, old)
        conn.execute("COMMIT")
        full = _size(conn)
        conn.execute("BEGIN")
        counts = prune_all(conn, time.time(), RETENTION_DAYS * DAY_S)
        conn.execute("COMMIT")
        pruned = _size(conn)
        conn.close()
    assert counts, "nothing was pruned"
    return (full - empty) / n, (pruned - empty) / n, extra


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="deliveries and jobs (default 2000)")
    args = parser.parse_args()
    source = PAYLOADS if PAYLOADS.is_dir() else FIXTURE
    raw = sum(len(body) for _, body in _payloads()) / len(_payloads())
    d_full, d_pruned, _ = _measure(_deliveries, args.n)
    j_full, j_pruned, blobs = _measure(_jobs, max(args.n // 10, 50))
    print(f"payloads: {source} (mean raw body {raw / 1000:.1f} KB)")
    print(f"per delivery on disk: {d_full:,.0f} bytes kept, {d_pruned:,.0f} bytes once pruned")
    print(
        f"per job ({LOG_BYTES // 1024} KB log, {TESTS}-test JUnit and results): {j_full:,.0f} bytes"
        f" kept (log {blobs[0]:,}, junit {blobs[1]:,}, results {blobs[2]:,} compressed),"
        f" {j_pruned:,.0f} bytes once pruned"
    )
    per_day_full = DELIVERIES_PER_DAY * d_full + JOBS_PER_DAY * j_full
    per_day_pruned = DELIVERIES_PER_DAY * d_pruned + JOBS_PER_DAY * j_pruned
    year_none = 365 * per_day_full
    year_kept = RETENTION_DAYS * per_day_full + (365 - RETENTION_DAYS) * per_day_pruned
    print(
        f"a year at {DELIVERIES_PER_DAY:,} deliveries and {JOBS_PER_DAY} slow jobs a day:"
        f" {_mb(year_none)} kept for ever, {_mb(year_kept)} with {RETENTION_DAYS}-day retention"
        f"; past {RETENTION_DAYS} days it grows {_mb(per_day_pruned)} a day (the pruned rows)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
