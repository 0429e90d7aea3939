"""`run-slow` latency: from posting the comment's delivery to the reply and the pending status.

`bot serve` runs as its own process, as deployed; the sandbox GitHub runs in this one, both on
loopback. Each of 50
`run-slow: toy` comments goes to a pull request of its own; the clock stops when the sandbox
holds both the bot's comment and a `pending` `pytest/custom-tests` status on the head commit.
Measured twice in one run: alone, and while 20 reviewer-request deliveries on 3,000-file pull
requests are being handled (each pages through 30 pages of files). Then the overhead of one job
over running the same pytest command by hand in the same checkout, with a warm environment.

    python bench/slow_ci_latency.py [--comments 50] [--big-prs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from served_bot import Bot  # noqa: E402

from bot.clients.git import git_env  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.jobs.runners import EnvCache, EnvConfig, GpuPool, LocalRunner, RunRequest  # noqa: E402
from bot.jobs.runners.local import LocalRunnerConfig  # noqa: E402
from bot.kit.comments import MARKER_PREFIX  # noqa: E402
from tests.sandbox import SandboxGitHub  # noqa: E402

REPO = "acme/models"
PAST = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
TOY = {"tests/models/toy/test_toy.py": "def test_one():\n    assert 1 + 1 == 2\n"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def replied(github: SandboxGitHub, number: int, sha: str) -> None:
    while True:
        has_comment = any(MARKER_PREFIX in c["body"] for c in github.comments(REPO, number))
        has_status = any(s["state"] == "pending" for s in github.statuses(REPO, sha))
        if has_comment and has_status:
            return
        await asyncio.sleep(0.002)


async def measure(bot: Bot, numbers: list[int], user: str) -> list[float]:
    timings = []
    for number in numbers:
        sha = bot.github.pull(REPO, number).head_sha
        payload = bot.github.issue_comment_payload(REPO, number, "run-slow: toy", user)
        started = time.perf_counter()
        await bot.deliver("issue_comment", payload)
        async with asyncio.timeout(60):
            await replied(bot.github, number, sha)
        timings.append(time.perf_counter() - started)
    return timings


def open_prs(github: SandboxGitHub, prefix: str, count: int, files: dict[str, str]) -> list[int]:
    numbers = []
    for i in range(count):
        branch = f"{prefix}-{i}"
        github.commit(
            REPO, branch, files, author="carol", date=PAST, pushed_at=PAST, message=branch
        )
        numbers.append(github.open_pull(REPO, branch, author="carol"))
    return numbers


async def latency(args: argparse.Namespace) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-slow-ci-") as tmp:
        github = SandboxGitHub(Path(tmp) / "github")
        await github.start()
        github.create_repo(
            REPO,
            files={**TOY, "README.md": "x\n", ".github/review-owners": "* @owner\n"},
            collaborators={"maint": "write", "owner": "write"},
            pushed_at=PAST,
        )
        alone = open_prs(github, "alone", args.comments, {"a.py": "1\n"})
        loaded = open_prs(github, "loaded", args.comments, {"b.py": "1\n"})
        big_files = {f"src/file_{i:04}.py": "x = 1\n" for i in range(3000)}
        big = open_prs(github, "big", args.big_prs, big_files)
        bot = Bot(github, Path(tmp), args.worker_concurrency)
        try:
            await bot.ready()
            results = {"alone": await measure(bot, alone, "maint")}
            load = [
                bot.deliver("pull_request", github.pull_request_payload(REPO, n, "opened"))
                for n in big
            ]
            sending = asyncio.gather(*load)
            results["with 20 reviewer requests on 3,000-file PRs"] = await measure(
                bot, loaded, "maint"
            )
            await sending
            requested = sum(bool(github.requested_reviewers(REPO, n)[0]) for n in big)
            results["_big_prs_done_during_measurement"] = [float(requested)]
            return results
        finally:
            await bot.close()
            await github.close()


async def overhead() -> tuple[float, float]:
    """Wall time of a job and of the same pytest command by hand, on this repository's bert."""
    head = subprocess.run(  # noqa: ASYNC221 (set-up, before anything is timed)
        ["git", "rev-parse", "HEAD"], cwd=ROOT, env=git_env(), capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        runner = LocalRunner(
            EnvCache(EnvConfig(python=sys.executable)),
            GpuPool(devices=[]),
            LocalRunnerConfig(work_dir=Path(tmp)),
        )
        request = RunRequest(
            job_id="bench", run_id="bench", repo="bench", head_clone_url=str(ROOT),
            head_sha=head, folder="models/bert",
        )  # fmt: skip
        await runner.run(request)  # warm: the page cache, the interpreter's imports
        started = time.perf_counter()
        outcome = await runner.run(request)
        job = time.perf_counter() - started
        checkout = Path(tmp) / "by-hand"
        clone = ["git", "clone", "--quiet", str(ROOT), str(checkout)]
        await asyncio.to_thread(subprocess.run, clone, env=git_env(), check=True)
        env = {"PATH": "/usr/bin:/bin", "RUN_SLOW": "yes", "CUDA_VISIBLE_DEVICES": "",
               "HOME": tmp, "PYTHONPATH": str(checkout)}  # fmt: skip
        command = [sys.executable, "-m", "pytest", "-v", "-rsfE", "-p", "no:cacheprovider",
                   f"--junitxml={tmp}/junit.xml", "tests/models/bert"]  # fmt: skip

        def by_hand_run() -> None:
            subprocess.run(command, cwd=checkout, env=env, capture_output=True, check=False)

        await asyncio.to_thread(by_hand_run)  # warm, as the job was
        started = time.perf_counter()
        await asyncio.to_thread(by_hand_run)
        by_hand = time.perf_counter() - started
        assert outcome.state == "passed", outcome.reason
        return job, by_hand


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=50)
    parser.add_argument("--big-prs", type=int, default=20)
    parser.add_argument("--worker-concurrency", type=int, default=Settings.worker_concurrency)
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(latency(args))
    done = results.pop("_big_prs_done_during_measurement")[0]
    print(
        f"run-slow comment -> reply and pending status, {args.comments} comments each"
        f" (worker concurrency {args.worker_concurrency})"
    )
    met = True
    for name, values in results.items():
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        mean = statistics.mean(values) * 1000
        print(f"  {name:<48} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  mean {mean:7.1f} ms")
        met &= p50 <= 300 and p99 <= 1000
    print(f"  (reviewer requests finished on {int(done)} of {args.big_prs} big PRs meanwhile)")
    print(f"target (p50 <= 300 ms, p99 <= 1 s in both): {'met' if met else 'NOT met'}")
    if args.skip_overhead:
        return 0
    job, by_hand = asyncio.run(overhead())
    print(
        f"job overhead over the same pytest by hand (tests/models/bert, warm environment):"
        f" {job:.2f} s vs {by_hand:.2f} s -> {job - by_hand:+.2f} s, ratio {job / by_hand:.2f}x"
    )
    print(f"target (<= 2 s): {'met' if job - by_hand <= 2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
