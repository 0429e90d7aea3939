"""Render time of the scheduled runs' pages: a test's history across a year of nightly runs
(365 scheduled runs), and a schedule's page listing its newest 100 runs with their pass rate.

The store is seeded with 365 finished runs of one schedule, each of 10 model folders on two
machine types (20 jobs); the folder of the test looked at holds 1,000 tests a job, the others 50,
so the history reads 730 jobs' results, each with a thousand entries. The test fails in one run
out of twelve, and is flaky in one out of thirty. `bot serve`'s application is served on
loopback; each figure is the median of repeated GETs, timed at the client (reading the store,
decoding the results, rendering and the HTTP round trip), with the parts of the history page
timed alone beside it.

    python bench/scheduled_pages.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import served, time_get  # noqa: E402

from bot.jobs.runners.junit import TestResult  # noqa: E402
from bot.server.runtime import Runtime  # noqa: E402
from bot.store import verdicts as verdicts_db  # noqa: E402
from bot.store.engine import Store  # noqa: E402
from bot.store.verdicts import TestVerdict  # noqa: E402
from bot.web import scheduled  # noqa: E402
from bot.web.access import Viewer  # noqa: E402
from bot.web.render import render  # noqa: E402
from tests.support.seed_runs import write_scheduled_run  # noqa: E402

REPO = "acme/models"
RUNS = 365
FOLDERS = [f"models/model_{i:02d}" for i in range(10)]
MACHINES = ("single-gpu", "multi-gpu")
BIG, SMALL = 1000, 50
TARGET_FOLDER = FOLDERS[3]
TARGET = f"tests/{TARGET_FOLDER}/test_modeling.py::ModelTest::test_case_00500"
DAY = 86_400.0


def _results(folder: str, n: int, failing: str | None) -> list[TestResult]:
    out = []
    for i in range(n):
        node = f"tests/{folder}/test_modeling.py::ModelTest::test_case_{i:05d}"
        if node == failing:
            out.append(TestResult(node, "failed", 1.0, message="AssertionError: 3 != 2"))
        elif i % 10 == 9:
            out.append(TestResult(node, "skipped", 0.0, message="needs a bigger machine"))
        else:
            out.append(TestResult(node, "passed", 0.2))
    return out


def _seed(database: str) -> None:
    store = Store(database)
    start = time.time() - RUNS * DAY
    # One results list per (folder, outcome of the target): the runs share them.
    passing = {f: _results(f, BIG if f == TARGET_FOLDER else SMALL, None) for f in FOLDERS}
    failing = _results(TARGET_FOLDER, BIG, TARGET)

    def seed_one(day: int) -> None:
        fails = day % 12 == 5 or day % 30 == 7

        def write(conn) -> None:
            jobs = [
                (f, m, failing if fails and f == TARGET_FOLDER else passing[f])
                for f in FOLDERS
                for m in MACHINES
            ]
            run_id = write_scheduled_run(
                conn, repo=REPO, head_sha=f"{day:040x}", jobs=jobs, at=start + day * DAY
            )
            if fails:
                flaky = day % 30 == 7
                verdicts_db.upsert_verdicts(
                    conn,
                    [
                        TestVerdict(
                            run_id,
                            TARGET,
                            "new",
                            "single-gpu",
                            TARGET_FOLDER,
                            "flaky" if flaky else "new",
                            "passed 1 of 3 re-runs" if flaky else "passes at the previous commit",
                            None if flaky else f"{day:040x}",
                        )
                    ],
                )

        store.call_sync(write)

    try:
        for day in range(RUNS):
            seed_one(day)
    finally:
        store.close()


async def _time_parts(runtime: Runtime, repeats: int) -> tuple[float, float, float]:
    """The history page's parts alone, in ms: the store's read, decoding, the template."""
    reads, decodes, renders = [], [], []
    nav = {
        "handle": "bot",
        "viewer": Viewer(login=None, operator=False, via="anonymous"),
        "csrf": "",
        "web_url": "https://github.com",
        "public_url": "",
        "here": "/",
    }
    for _ in range(repeats):
        begin = time.perf_counter()
        rows = await runtime.store.call(
            lambda conn: verdicts_db.outcome_history(
                conn, REPO, TARGET, kind=scheduled.SCHEDULED_KIND, limit=RUNS
            )
        )
        reads.append((time.perf_counter() - begin) * 1000)
        begin = time.perf_counter()
        history = scheduled.history_of(rows, TARGET)
        decodes.append((time.perf_counter() - begin) * 1000)
        begin = time.perf_counter()
        render(
            "test_history.html",
            nav=nav,
            refresh=None,
            repo=REPO,
            test=TARGET,
            history=history,
            flaky=None,
            flaky_url=scheduled.flaky_url(REPO),
            runs_covered=RUNS,
            schedule_url=scheduled.schedule_url,
        )
        renders.append((time.perf_counter() - begin) * 1000)
    assert len(rows) == RUNS and history.counts["failed"] > 0 and history.counts["flaky"] > 0
    return statistics.median(reads), statistics.median(decodes), statistics.median(renders)


async def main(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database = str(Path(tmp) / "bot.sqlite3")
        begin = time.perf_counter()
        _seed(database)
        print(
            f"seeded {RUNS} scheduled runs of {len(FOLDERS) * len(MACHINES)} jobs"
            f" in {time.perf_counter() - begin:.1f} s"
        )
        async with served(database, Path(tmp)) as (base, runtime):
            history = f"{base}/tests/{REPO}?" + urlencode({"test": TARGET})
            cold, warm, size = await time_get(history, repeats)
            print(
                f"test history, {RUNS} runs ({RUNS * len(MACHINES)} jobs' results read):"
                f" {warm:.1f} ms a GET (median of {repeats}), {size / 1024:.0f} KiB of HTML;"
                f" first GET {cold:.1f} ms"
            )
            read_ms, decode_ms, render_ms = await _time_parts(runtime, repeats)
            print(
                f"  of which: store read {read_ms:.1f} ms (on the store's connection),"
                f" decoding {decode_ms:.1f} ms (off the event loop), template {render_ms:.1f} ms"
            )
            cold, warm, size = await time_get(f"{base}/schedules/{REPO}/nightly", repeats)
            print(
                f"schedule page, newest 100 of {RUNS} runs: {warm:.1f} ms a GET"
                f" (median of {repeats}), {size / 1024:.0f} KiB of HTML; first GET {cold:.1f} ms"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    asyncio.run(main(parser.parse_args().repeats))
