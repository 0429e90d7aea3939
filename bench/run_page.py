"""Run-page render time: the page the commit status links to, for a run with 20 jobs and
5,000 test results (the budget is 50 ms), and one with 50,000 results (paginated).

`bot serve`'s application is served on loopback from a database seeded with finished runs;
each figure is the median of repeated GETs of the page, timed at the client (so it includes
reading the results from the store, rendering and the HTTP round trip), with the template
render alone timed beside it.

    python bench/run_page.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import time_get  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.jobs.records import JobLimits  # noqa: E402
from bot.server import serving  # noqa: E402
from bot.server.app import create_app  # noqa: E402
from bot.server.runtime import Runtime  # noqa: E402
from bot.store.engine import Store  # noqa: E402
from bot.web import results  # noqa: E402
from bot.web.access import Viewer  # noqa: E402
from bot.web.render import render  # noqa: E402
from bot.web.routes import run_counts  # noqa: E402
from tests.support.seed_runs import results_for, seed_run  # noqa: E402

BUDGET_MS = 50.0


def _seed(database: str, per_job: int) -> int:
    jobs = [
        (
            f"tests/models/model_{i:02d}",
            results_for(
                f"tests/models/model_{i:02d}", per_job, failed=3 if i % 4 == 0 else 0, skipped=20
            ),
        )
        for i in range(20)
    ]
    store = Store(database)
    try:
        # Big enough that nothing is dropped: the page, not the store's bound, is measured.
        return seed_run(store, jobs=jobs, limits=JobLimits(results_bytes=256 * 1024 * 1024))
    finally:
        store.close()


async def _time_render(runtime: Runtime, run_id: int, repeats: int) -> float:
    run = await runtime.jobs.get_run(run_id)
    jobs = await runtime.jobs.jobs_of(run_id)
    tests = [
        results.bucketed((job.spec["folder"], t) for t in await runtime.jobs.job_tests(job.id))
        for job in jobs
    ]
    nav = {
        "handle": "bot",
        "viewer": Viewer(login=None, operator=False, via="anonymous"),
        "csrf": "",
        "web_url": "https://github.com",
        "public_url": "",
        "here": "/",
    }
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        view = results.select(tests)
        render(
            "run.html",
            nav=nav,
            refresh=None,
            run=run,
            jobs=jobs,
            totals=run_counts(jobs),
            progress=None,
            results=view,
        )
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def main(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database = str(Path(tmp) / "bot.sqlite3")
        store = Store(database)
        store.close()
        warm_up = _seed(database, 5)
        small = _seed(database, 250)
        large = _seed(database, 2500)
        settings = Settings(
            webhook_secret="bench-secret-" + "x" * 20,
            database=database,
            job_work_dir=str(Path(tmp) / "jobs"),
        )
        runtime = Runtime(settings)
        runner, base = await serving.start(create_app(settings, runtime=runtime), "127.0.0.1", 0)
        try:
            # Templates compile on a process's first page, not on each run's.
            await time_get(f"{base}/runs/{warm_up}", 1)
            for label, run_id in (("5,000 results", small), ("50,000 results", large)):
                cold_ms, page_ms, size = await time_get(f"{base}/runs/{run_id}", repeats)
                print(
                    f"run page, 20 jobs, {label}: {page_ms:.1f} ms a GET (median of {repeats}),"
                    f" {size / 1024:.0f} KiB of HTML, {page_ms / BUDGET_MS:.2f}x the"
                    f" {BUDGET_MS:.0f} ms budget; its first GET (results not yet cached)"
                    f" {cold_ms:.1f} ms"
                    f" ({cold_ms / BUDGET_MS:.2f}x)"
                )
            _, filtered_ms, _ = await time_get(f"{base}/runs/{large}?outcome=failed", repeats)
            print(f"run page, 50,000 results, failures only: {filtered_ms:.1f} ms a GET")
            render_ms = await _time_render(runtime, small, repeats)
            print(f"template alone, 5,000 results: {render_ms:.1f} ms")
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    asyncio.run(main(parser.parse_args().repeats))
