"""The benchmarks chart drawn from rows laid out run after run (as the store reads a branch) is
the chart of the same rows in any other order, and rows not laid out so are drawn by the
general path with the same rules."""

from __future__ import annotations

import dataclasses
import random

from bot.store.benchmarks import BenchmarkResult, BranchRows
from bot.web import benchmarks

REPO = "acme/models"
SERIES = (
    ("a/latency", "ms", "single-gpu"),
    ("a/tokens", "tokens/s", "single-gpu"),
    ("b", "ms", ""),
)


def _runs(commits: int, *, rng: random.Random, first_run: int = 1) -> BranchRows:
    """A run a commit, oldest first, each measuring every series in the same order."""
    columns: dict[str, list] = {f.name: [] for f in dataclasses.fields(BranchRows)}
    for k in range(commits):
        for metric, unit, machine_type in SERIES:
            low = rng.uniform(1.0, 100.0)
            row = {
                "metric": metric,
                "unit": unit,
                "machine_type": machine_type,
                "sha": f"{k:040x}",
                "run_id": first_run + k,
                "recorded_at": 1_700_000_000.0 + 3_600 * k,
                "regression": int(rng.random() < 0.05),
                "summary": (low, low + rng.random(), low + 2 * rng.random(), rng.randint(1, 9)),
            }
            for name, value in row.items():
                columns[name].append(value)
    return BranchRows(**columns)


def _shuffled(rows: BranchRows, rng: random.Random) -> BranchRows:
    order = list(range(len(rows)))
    rng.shuffle(order)
    return BranchRows(
        *([getattr(rows, f.name)[i] for i in order] for f in dataclasses.fields(BranchRows))
    )


def _pulls(rows: BranchRows, rng: random.Random) -> list[BenchmarkResult]:
    return [
        BenchmarkResult(
            REPO,
            "f" * 40,
            "feature",
            machine_type,
            metric,
            unit,
            (rng.uniform(1, 100), rng.uniform(1, 100)),
            run_id=rows.run_id[len(rows) // 2] + 1,
            pull_number=9,
            recorded_at=1_700_000_000.0,
        )
        for metric, unit, machine_type in SERIES
    ]


def test_rows_laid_out_run_after_run_draw_the_chart_of_any_order() -> None:
    rng = random.Random(11)
    for commits in (1, 7, benchmarks.DOTS_UP_TO + 1, benchmarks.MAX_BUCKETS + 3, 1000):
        rows = _runs(commits, rng=rng)
        pulls = _pulls(rows, rng)
        assert benchmarks._run_width(rows) == len(SERIES) or commits == 1
        laid_out = benchmarks.chart(rows, pulls, repo=REPO, web_url="https://gh")
        shuffled = _shuffled(rows, rng)
        assert benchmarks._run_width(shuffled) == 0 or commits == 1
        assert benchmarks.chart(shuffled, pulls, repo=REPO, web_url="https://gh") == laid_out
        assert laid_out.commits == commits and len(laid_out.panels) == len(SERIES)


def test_rows_that_only_look_laid_out_are_drawn_by_the_rules() -> None:
    rng = random.Random(12)
    rows = _runs(300, rng=rng)
    n = len(rows)

    def with_column(name: str, values: list) -> BranchRows:
        return dataclasses.replace(rows, **{name: values})

    variants = [
        # a commit measured again by a later run: drawn at its newest run
        with_column("sha", [*rows.sha[: n - 3], *([rows.sha[0]] * 3)]),
        # a run whose rows were recorded at two times
        with_column("recorded_at", [*rows.recorded_at[:-1], rows.recorded_at[-1] + 5]),
        # runs that measured their series in different orders
        with_column("metric", [*rows.metric[:3], rows.metric[4], rows.metric[3], *rows.metric[5:]]),
    ]
    for variant in variants:
        expected = benchmarks.chart(_shuffled(variant, rng), (), repo=REPO, web_url="https://gh")
        assert benchmarks.chart(variant, (), repo=REPO, web_url="https://gh") == expected
