"""What the bot adds around a benchmark command, against the same command run by hand.

A small git repository whose benchmark command (`python bench/toy.py {output}`) writes one metric
in github-action-benchmark's custom format. Each round, interleaved so that the machine's state
weighs on both alike (the first round only warms the page cache and the imports):

- by hand: the command in a checkout of the commit, with the interpreter the job uses;
- the bot: the local runner's `BenchmarkRequest` on the same commit (a fresh checkout from the
  clone URL, the test environment (built before the first round, then reused as the runner's
  cache reuses it; `--env given`: an interpreter named in the configuration, as
  `BOT_TEST_PYTHON` names one), the command confined as pull requests' code is, each
  metrics file judged by the feature's reader), then what it measured recorded as the
  benchmarks feature records a push: the metrics read, the previous push's results read for
  the comparison, the rows written and committed (one fsync) to a store.

The issue's target: the bot's median at most 2 s above the command's, median of 10 rounds. The
job's own timings (checkout, env, wait, benchmark) and the recording are reported beside it,
so a miss says where the time goes.

    python bench/benchmark_overhead.py [--rounds 10] [--repeats 1] [--env built|given]
                                       [--unconfined]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.clients.git import git_env  # noqa: E402
from bot.jobs.runners import EnvCache, EnvConfig, GpuPool, LocalRunner  # noqa: E402
from bot.jobs.runners.base import BenchmarkRequest, JobOutcome, benchmark_argv  # noqa: E402
from bot.jobs.runners.confine import Confinement, detect  # noqa: E402
from bot.jobs.runners.local import LocalRunnerConfig  # noqa: E402
from bot.store import benchmarks as benchmarks_db  # noqa: E402
from bot.store.benchmarks import BenchmarkResult  # noqa: E402
from bot.store.engine import Store  # noqa: E402
from handlers.benchmarks.metrics import read_metrics  # noqa: E402
from tests.support.seed_runs import benchmark_run  # noqa: E402

REPO = "bench/toy"
COMMAND = ("python", "bench/toy.py", "{output}")
#: The benchmark: a few milliseconds of arithmetic, timed, written as one custom-format metric.
TOY = """\
import json
import sys
import time

began = time.perf_counter()
total = sum(i * i for i in range(100_000))
took = (time.perf_counter() - began) * 1000
with open(sys.argv[1], "w") as out:
    json.dump([{"name": "toy/sum_of_squares", "unit": "ms", "value": took}], out)
"""
TARGET_S = 2.0


def toy_repository(root: Path) -> tuple[Path, str, Path]:
    """The repository, its commit, and a maintainer's checkout of it."""
    repo = root / "toy"
    (repo / "bench").mkdir(parents=True)
    (repo / "bench" / "toy.py").write_text(TOY)
    env = git_env(root, {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
                         "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"})  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "toy"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, env=env, check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    checkout = root / "checkout"
    subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], env=env, check=True)
    return repo, sha, checkout


def by_hand(checkout: Path, python: str, repeats: int) -> float:
    """The command `repeats` times as a maintainer would run it in their checkout."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(checkout), "LANG": "C.UTF-8"}
    started = time.perf_counter()
    for repeat in range(repeats):
        output = checkout / f"metrics-{repeat}.json"
        argv = benchmark_argv(COMMAND, python, str(output))
        subprocess.run(argv, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
        read_metrics(output.read_bytes())
    return time.perf_counter() - started


async def record(store: Store, outcome: JobOutcome, run_id: int, sha: str) -> None:
    """What the feature does with a push's finished job: every repeat's metrics read, the
    previous push's results read (what it compares with), this run's rows written."""
    series: dict[str, tuple[str, list[float]]] = {}
    for text in outcome.result["outputs"]:
        for metric in read_metrics(text.encode()):
            series.setdefault(metric.name, (metric.unit, []))[1].append(metric.value)
    rows = [
        BenchmarkResult(REPO, sha, "main", "single-gpu", name, unit, tuple(values), run_id)
        for name, (unit, values) in series.items()
    ]

    def write(conn) -> None:
        benchmarks_db.latest_before(conn, REPO, "main", "single-gpu", run_id)
        benchmarks_db.record_results(conn, rows)

    await store.call(write)


async def rounds(
    confinement: Confinement, n: int, repeats: int, env: str
) -> tuple[list[float], list[float], dict[str, list[float]]]:
    hand: list[float] = []
    bot: list[float] = []
    phases: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        root = Path(tmp)
        repo, sha, checkout = toy_repository(root)
        config = EnvConfig(python=sys.executable)
        if env == "built":
            config = EnvConfig(cache_dir=root / "envs")
        runner = LocalRunner(
            EnvCache(config, confinement),
            GpuPool(devices=[]),
            LocalRunnerConfig(work_dir=root / "jobs"),
        )
        began = time.perf_counter()
        python = str((await runner.envs.ensure(REPO, checkout)).python)
        print(f"test environment: {python} (ready in {time.perf_counter() - began:.1f} s)")
        store = Store(str(root / "bot.sqlite3"))
        try:
            for n_round in range(n + 1):
                took = by_hand(checkout, python, repeats)
                run_id = await store.call(
                    lambda conn: benchmark_run(conn, repo=REPO, sha=sha, at=time.time())
                )
                request = BenchmarkRequest(
                    job_id=f"bench-{n_round}", run_id=str(run_id), repo=REPO,
                    head_clone_url=str(repo), head_sha=sha, command=COMMAND, repeats=repeats,
                    check_metrics=read_metrics,
                )  # fmt: skip
                started = time.perf_counter()
                outcome = await runner.run(request)
                if outcome.state != "passed":
                    raise SystemExit(f"the benchmark job did not pass: {outcome.reason}")
                job_done = time.perf_counter()
                await record(store, outcome, run_id, sha)
                ended = time.perf_counter()
                if n_round:
                    hand.append(took)
                    bot.append(ended - started)
                    for phase, seconds in outcome.timings.items():
                        phases.setdefault(phase, []).append(seconds)
                    phases.setdefault("recording", []).append(ended - job_done)
                    phases.setdefault("job, outside its phases", []).append(
                        outcome.duration_s - sum(outcome.timings.values())
                    )
        finally:
            store.close()
    return hand, bot, phases


def median_ms(values: Sequence[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="runs of the command per job")
    parser.add_argument(
        "--env",
        choices=("built", "given"),
        default="built",
        help="a test environment the runner builds and reuses, or this interpreter as given",
    )
    parser.add_argument(
        "--unconfined", action="store_true", help="run the job without bubblewrap (for contrast)"
    )
    args = parser.parse_args()
    confinement = Confinement("unconfined") if args.unconfined else detect()
    if not args.unconfined and not confinement.confined:
        raise SystemExit(f"this host cannot confine ({confinement.reason}); try --unconfined")
    how = f"bubblewrap at {confinement.bwrap}" if confinement.confined else "none"
    print(f"confinement: {how}; {args.repeats} repeat(s) a job; median of {args.rounds} rounds")
    hand, bot, phases = asyncio.run(rounds(confinement, args.rounds, args.repeats, args.env))
    h, b = statistics.median(hand), statistics.median(bot)
    print(f"by hand:  {median_ms(hand)}")
    print(f"the bot:  {median_ms(bot)} (job and recording)")
    print(f"overhead: {(b - h) * 1000:+.0f} ms, {b / h:.1f}× the command by hand")
    print("  of the bot's: " + ", ".join(f"{k} {median_ms(v)}" for k, v in phases.items()))
    print(f"target: overhead ≤ {TARGET_S:g} s: {'met' if b - h <= TARGET_S else 'NOT met'}")


if __name__ == "__main__":
    main()
