"""Scheduled runs: what a new failure costs to pin down, and how early a run ends.

Bisect cost: test runs spent per new failure, against the size of the first-parent range between
two scheduled runs (10, 100 and 500 commits), the breaking commit drawn at random: the bisect
probes (`handlers.scheduled_ci.bisect.Bisect`, fed the answers a real test would give) plus the
verification runs before them (3 re-runs at the new commit, 1 run at the previous run's commit).
Then 5 tests broken by the same commit, bisected together and one by one.

Makespan: a scheduled run of 40 model folders of known durations (lognormal, a few long ones, as
model test suites are) on 4 GPUs, each GPU taking the next job when it frees up. The order the bot
uses (`order_jobs`: longest first from past durations) against the reference's fixed order
(folders alphabetically, as its matrix lists them), as ratios to the lower bound max(longest job,
total / GPUs). 200 draws; the median and the worst.

    python bench/scheduled_ci.py [--draws 200]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handlers.scheduled_ci.bisect import Bisect  # noqa: E402
from handlers.scheduled_ci.plan import order_jobs  # noqa: E402

VERIFY_RUNS = 3 + 1  # re-runs at the new commit, one run at the previous run's commit
TREE = ROOT.parent / "shared" / "data" / "transformers_tree.txt"


def bisect_runs(size: int, bad_at: int, tests: list[str]) -> int:
    """Test runs a bisect spends: one run per (commit, group of tests) probed."""
    commits = [f"{i:040x}" for i in range(1, size + 1)]
    bisect = Bisect.start(commits, tests)
    runs = 0
    while not bisect.done:
        probes = bisect.next_probes()
        if not probes:
            break
        for sha, probed in probes:
            runs += 1
            failing = commits.index(sha) >= bad_at
            bisect.record(sha, dict.fromkeys(probed, "failed" if failing else "passed"))
    found = {r.first_bad for r in bisect.results().values()}
    assert found == {commits[bad_at]}, (found, commits[bad_at])
    return runs


def bench_bisect(draws: int, rng: random.Random) -> None:
    print("bisect: test runs per new failure (verification 4 + bisect probes)")
    for size in (10, 100, 500):
        spent = [
            VERIFY_RUNS + bisect_runs(size, rng.randrange(size), ["t::a"]) for _ in range(draws)
        ]
        bound = VERIFY_RUNS + math.ceil(math.log2(size))
        print(
            f"  {size:4d} commits   median {statistics.median(spent):5.1f}   worst {max(spent):3d}"
            f"   (bound 4 + ceil(log2 n) = {bound})"
        )
    tests = [f"t::case_{i}" for i in range(5)]
    together, alone = [], []
    for _ in range(draws):
        bad = rng.randrange(100)
        together.append(bisect_runs(100, bad, tests))
        alone.append(sum(bisect_runs(100, bad, [test]) for test in tests))
    print(
        f"  5 tests broken by one commit of 100: together {statistics.median(together):.0f} probe"
        f" runs, one by one {statistics.median(alone):.0f}"
        f" ({statistics.median(alone) / statistics.median(together):.1f}x)"
    )


def makespan(order: list[tuple[str, str]], durations: dict[tuple[str, str], float], gpus: int):
    free = [0.0] * gpus
    heapq.heapify(free)
    for job in order:
        start = heapq.heappop(free)
        heapq.heappush(free, start + durations[job])
    return max(free)


def folders(count: int) -> list[str]:
    names = []
    if TREE.exists():
        for line in TREE.read_text().splitlines():
            parts = line.strip().split("/")
            if len(parts) >= 3 and parts[:2] == ["tests", "models"] and parts[2] not in names:
                names.append(parts[2])
    while len(names) < count:
        names.append(f"model{len(names):03d}")
    return names[:count]


def bench_makespan(draws: int, rng: random.Random, gpus: int = 4) -> None:
    names = folders(40)
    ours, fixed = [], []
    for _ in range(draws):
        jobs = [(f"models/{name}", "single-gpu") for name in rng.sample(names, len(names))]
        durations = {job: rng.lognormvariate(math.log(300), 1.0) for job in jobs}
        bound = max(max(durations.values()), sum(durations.values()) / gpus)
        ours.append(makespan(order_jobs(jobs, durations), durations, gpus) / bound)
        fixed.append(makespan(sorted(jobs), durations, gpus) / bound)
    print(f"makespan: 40 folders on {gpus} GPUs, ratio to max(longest, total / GPUs)")
    print(
        f"  longest first (the bot)   median {statistics.median(ours):.3f}   worst {max(ours):.3f}"
    )
    print(
        f"  alphabetical (reference)  median {statistics.median(fixed):.3f}"
        f"   worst {max(fixed):.3f}"
    )
    print(f"  target (<= 1.1x the bound): {'met' if max(ours) <= 1.1 else 'NOT met'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    bench_bisect(args.draws, rng)
    bench_makespan(args.draws, rng)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
