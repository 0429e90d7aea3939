"""Render time of the benchmarks chart page, and of its JSON and CSV exports, for a repository
with 1,000 commits of the default branch × 20 metrics.

The store is seeded straight through `record_results`: 1,000 push runs on `main`, each
recording 20 metrics of 5 repeats (one result in 50 flagged a regression), and 100 pull
requests' runs between them, each measuring its head and its base (4,000 more rows). `bot
serve`'s application is served on loopback; each figure is the median of repeated GETs, timed at
the client (reading the store, drawing, rendering and the HTTP round trip), with the page's
parts timed alone beside it. The page keeps its chart until a result is recorded, so it is
timed both ways: unchanged (the cached chart, rendered), and with a push recording its results
before each GET (read and drawn again), with that GET's parts timed alone after a push too.

`--against REV` measures REV first, from a temporary `git worktree` of it, then this tree, in one
run, and prints both with their ratios.

    python bench/benchmarks_page.py [--repeats 10] [--against HEAD]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp


def _root() -> Path:
    """The tree whose bot is measured: this one, or the one `--root` names (how `--against`
    measures its baseline with this same script). Read before the bot is imported."""
    if "--root" in sys.argv[:-1]:
        return Path(sys.argv[sys.argv.index("--root") + 1]).resolve()
    return Path(__file__).resolve().parent.parent


ROOT = _root()
sys.path.insert(0, str(ROOT))

from timing import served, time_get  # noqa: E402

from bot.server.runtime import Runtime  # noqa: E402
from bot.store import benchmarks as benchmarks_db  # noqa: E402
from bot.store.benchmarks import BenchmarkResult  # noqa: E402
from bot.store.engine import Store  # noqa: E402
from bot.web import benchmarks  # noqa: E402
from bot.web.access import Viewer  # noqa: E402
from bot.web.render import render  # noqa: E402
from tests.support.seed_runs import benchmark_run  # noqa: E402

REPO = "acme/models"
COMMITS = 1_000
METRICS = [
    f"{arch}/{what}"
    for arch in ("bert", "gpt2", "llama", "t5", "vit")
    for what in (
        "forward_latency_cpu",
        "forward_latency_gpu",
        "generate_tokens_per_s_cpu",
        "generate_tokens_per_s_gpu",
    )
]
REPEATS = 5
PULLS = 100
HOUR = 3600.0


def _run(conn, sha: str, number: int | None, at: float) -> int:
    return benchmark_run(conn, repo=REPO, sha=sha, number=number, at=at)


def _record_push(conn, k: int, rng: random.Random) -> None:
    """Push number `k` on `main`, measured now."""
    sha = f"{k:040x}"
    at = time.time()
    run_id = _run(conn, sha, None, at)
    benchmarks_db.record_results(conn, _rows(sha, "main", run_id, at, None, rng, k))


def _rows(
    sha: str, branch: str, run_id: int, at: float, pull: int | None, rng: random.Random, k: int
) -> list[BenchmarkResult]:
    out = []
    for m, metric in enumerate(METRICS):
        base = 10.0 + m + 0.002 * k
        out.append(
            BenchmarkResult(
                repo=REPO,
                sha=sha,
                branch=branch,
                machine_type="single-gpu",
                metric=metric,
                unit="tokens/s" if "tokens" in metric else "ms",
                values=tuple(rng.gauss(base, 0.2) for _ in range(REPEATS)),
                run_id=run_id,
                pull_number=pull,
                recorded_at=at,
                regression=pull is None and (k * 7 + m) % 50 == 0,
            )
        )
    return out


def _seed(database: str) -> None:
    store = Store(database)
    rng = random.Random(23)
    start = time.time() - COMMITS * HOUR

    def write(conn) -> None:
        for k in range(COMMITS):
            at = start + k * HOUR
            sha = f"{k:040x}"
            rows = _rows(sha, "main", _run(conn, sha, None, at), at, None, rng, k)
            if k % (COMMITS // PULLS) == 5:
                number = 1 + k // (COMMITS // PULLS)
                pull_run = _run(conn, f"{k:039x}f", number, at + 60)
                rows += _rows(f"{k:039x}f", f"pr-{number}", pull_run, at + 60, number, rng, k)
                rows += _rows(sha, "main", pull_run, at + 60, number, rng, k)
            benchmarks_db.record_results(conn, rows)

    try:
        store.call_sync(write)
    finally:
        store.close()


async def _time_redrawn(runtime: Runtime, url: str, repeats: int, pushes: list[int]) -> float:
    """The median GET, in ms, when a push recorded its results just before: the chart is
    read and drawn again each time, as on the first view after a new result."""
    rng = random.Random(5)
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(repeats):
            k = COMMITS + len(pushes)
            pushes.append(k)
            await runtime.store.call(lambda conn, k=k: _record_push(conn, k, rng))
            begin = time.perf_counter()
            async with session.get(url) as response:
                body = await response.read()
                assert response.status == 200, body[:500]
            times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times)


async def _time_parts(runtime: Runtime, repeats: int, pushes: list[int]) -> dict[str, float]:
    """The parts of a GET after a push, alone, in ms: the store's reads, the chart, the
    template."""
    nav = {
        "handle": "bot",
        "viewer": Viewer(login=None, operator=False, via="anonymous"),
        "csrf": "",
        "web_url": "https://github.com",
        "public_url": "",
        "here": "/",
    }
    rng = random.Random(7)
    parts: dict[str, list[float]] = {}

    def timed(name: str, begin: float) -> float:
        now = time.perf_counter()
        parts.setdefault(name, []).append((now - begin) * 1000)
        return now

    for _ in range(repeats):
        k = COMMITS + len(pushes)
        pushes.append(k)
        await runtime.store.call(lambda conn, k=k: _record_push(conn, k, rng))

        def read(conn):
            begin = time.perf_counter()
            benchmarks_db.results_version(conn, REPO)
            begin = timed("results_version", begin)
            branches = benchmarks_db.chart_branches(conn, REPO)
            begin = timed("chart_branches", begin)
            rows = benchmarks_db.branch_rows(conn, REPO, branches[0], runs=benchmarks.CHART_RUNS)
            begin = timed("branch_rows", begin)
            pulls = benchmarks_db.pull_results_from(
                conn,
                REPO,
                first_run=min(rows.run_id),
                limit=benchmarks.MARKS_PER_PANEL * benchmarks.MAX_PANELS,
            )
            begin = timed("pull_results_from", begin)
            names = benchmarks_db.metric_names(conn, REPO, benchmarks.MAX_CHOICES)
            timed("metric_names", begin)
            return rows, pulls, names

        rows, pulls, names = await runtime.store.call(read, single=True)
        begin = time.perf_counter()
        chart = benchmarks.chart(rows, pulls, repo=REPO, web_url="https://github.com")
        begin = timed("chart", begin)
        render(
            "benchmarks.html",
            nav=nav,
            refresh=None,
            repo=REPO,
            branch="main",
            branches=["main"],
            metrics=benchmarks.choices(names, ()),
            chart=chart,
            empty="",
            here="/",
            json_url="/",
            csv_url="/",
            dots_up_to=benchmarks.DOTS_UP_TO,
        )
        timed("template", begin)
    assert chart.commits == COMMITS and len(chart.panels) == len(METRICS), chart.commits
    return {name: statistics.median(times) for name, times in parts.items()}


async def measure(repeats: int) -> dict[str, float]:
    """Every figure of this tree's bot, in ms, printed as it is measured."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        database = str(Path(tmp) / "bot.sqlite3")
        begin = time.perf_counter()
        _seed(database)
        rows = COMMITS * len(METRICS) + PULLS * 2 * len(METRICS)
        print(
            f"seeded {COMMITS} commits × {len(METRICS)} metrics × {REPEATS} repeats and"
            f" {PULLS} pull requests ({rows} results) in {time.perf_counter() - begin:.1f} s"
        )
        async with served(database, Path(tmp)) as (base, runtime):
            cold, warm, size = await time_get(f"{base}/benchmarks/{REPO}", repeats)
            figures.update({"page, first GET": cold, "page, unchanged (cached chart)": warm})
            print(
                f"chart page, {COMMITS} commits × {len(METRICS)} metrics: {warm:.1f} ms a GET"
                f" (median of {repeats}), {size / 1024:.0f} KiB of HTML; first GET {cold:.1f} ms"
            )
            pushes: list[int] = []
            redrawn = await _time_redrawn(runtime, f"{base}/benchmarks/{REPO}", repeats, pushes)
            figures["page, after a push (redrawn)"] = redrawn
            print(
                f"  after a new push's results each time (the chart drawn again):"
                f" {redrawn:.1f} ms a GET (median of {repeats}; target ≤ 50 ms)"
            )
            parts = await _time_parts(runtime, repeats, pushes)
            figures.update({f"  part: {name}": ms for name, ms in parts.items()})
            print(
                "  of which, alone after a push: "
                + ", ".join(f"{name} {ms:.1f} ms" for name, ms in parts.items())
                + " (the chart is drawn off the event loop)"
            )
            for path, what in (
                (".json", "JSON, default limit (1,000 rows)"),
                (".json?limit=10000", "JSON, limit=10000 (the most)"),
                (".csv", "CSV, default limit (1,000 rows)"),
                (".csv?limit=10000", "CSV, limit=10000 (the most)"),
                (f".json?metric={METRICS[3]}&since=2000-01-01", "JSON, one metric since a date"),
            ):
                cold, warm, size = await time_get(f"{base}/benchmarks/{REPO}{path}", repeats)
                figures[what] = warm
                print(
                    f"{what}: {warm:.1f} ms a GET (median of {repeats}),"
                    f" {size / 1024:.0f} KiB; first GET {cold:.1f} ms"
                )
    return figures


def against(rev: str, repeats: int) -> dict[str, float]:
    """The figures of `rev`, measured by this script in a temporary worktree of it."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        figures = Path(tmp) / "figures.json"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", str(tree), rev], check=True)
        try:
            subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--root",
                    str(tree),
                    "--repeats",
                    str(repeats),
                    "--figures",
                    str(figures),
                ],
                check=True,
            )
            return json.loads(figures.read_text())
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--against", metavar="REV", help="measure REV first, then this tree")
    parser.add_argument("--root", help="measure the bot of this tree (what --against runs)")
    parser.add_argument("--figures", help="also write the figures to this JSON file")
    args = parser.parse_args()
    before = None
    if args.against:
        print(f"== {args.against} (a worktree of it)")
        before = against(args.against, args.repeats)
        print(f"== this tree ({ROOT})")
    after = asyncio.run(measure(args.repeats))
    if args.figures:
        Path(args.figures).write_text(json.dumps(after))
    if before is not None:
        print(f"\n{'':38} {args.against:>10} {'this tree':>10}  ratio (before/after)")
        for name, ms in after.items():
            if name in before:
                print(f"{name:38} {before[name]:8.1f}ms {ms:8.1f}ms  {before[name] / ms:5.2f}×")


if __name__ == "__main__":
    main()
