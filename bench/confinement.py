"""What confinement costs a job: the same job with and without bubblewrap, in one run.

Two figures, each the median of `--rounds` (20) runs, the two kinds interleaved so that the
machine's state weighs on both alike:

- a process's start: `python -c pass` with the test interpreter, bare and confined the way a
  test run is (its job folder writable, the interpreter read-only, limits set);
- a whole job of the local runner on a one-test folder (checkout, the confined git steps, the
  confined pytest, reading its JUnit), with the host's confinement and with none.

The target: a confined start at most 100 ms later than a bare one.

    python bench/confinement.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.clients.git import git_env  # noqa: E402
from bot.jobs.runners import EnvCache, EnvConfig, GpuPool, LocalRunner, RunRequest  # noqa: E402
from bot.jobs.runners.confine import Confinement, Jail, detect, python_roots  # noqa: E402
from bot.jobs.runners.local import LocalRunnerConfig  # noqa: E402

TEST = "def test_one():\n    assert 1 + 1 == 2\n"


def start_times(confinement: Confinement, rounds: int) -> tuple[list[float], list[float]]:
    bare: list[float] = []
    confined: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-confine-") as tmp:
        folder = Path(tmp)
        confinement.hand_over(folder)
        jail = Jail(cwd=folder, writable=[folder], readonly=python_roots(sys.executable))
        argv = [sys.executable, "-c", "pass"]
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "LANG": "C.UTF-8"}
        for _ in range(rounds):
            for times, command in ((bare, argv), (confined, confinement.wrap(argv, jail))):
                started = time.perf_counter()
                subprocess.run(command, env=env, cwd=folder, check=True)
                times.append(time.perf_counter() - started)
    return bare, confined


def toy_repository(root: Path) -> str:
    repo = root / "toy"
    (repo / "tests" / "models" / "toy").mkdir(parents=True)
    (repo / "tests" / "models" / "toy" / "test_toy.py").write_text(TEST)
    env = git_env(root, {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
                         "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"})  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "toy"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, env=env, check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip


async def job_times(confinement: Confinement, rounds: int) -> tuple[list[float], list[float]]:
    bare: list[float] = []
    confined: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-confine-jobs-") as tmp:
        root = Path(tmp)
        sha = toy_repository(root)
        runners = {
            "bare": LocalRunner(
                EnvCache(EnvConfig(python=sys.executable), Confinement("unconfined")),
                GpuPool(devices=[]),
                LocalRunnerConfig(work_dir=root / "jobs"),
            ),
            "confined": LocalRunner(
                EnvCache(EnvConfig(python=sys.executable), confinement),
                GpuPool(devices=[]),
                LocalRunnerConfig(work_dir=root / "jobs"),
            ),
        }
        for n in range(rounds + 1):
            for name, times in (("bare", bare), ("confined", confined)):
                request = RunRequest(
                    job_id=f"{name}-{n}", run_id="bench", repo="bench/toy",
                    head_clone_url=str(root / "toy"), head_sha=sha, folder="models/toy",
                )  # fmt: skip
                started = time.perf_counter()
                outcome = await runners[name].run(request)
                if outcome.state != "passed":
                    raise SystemExit(f"the {name} job did not pass: {outcome.reason}")
                if n:  # the first round warms the page cache and the interpreter's imports
                    times.append(time.perf_counter() - started)
    return bare, confined


def report(what: str, bare: list[float], confined: list[float]) -> float:
    b, c = statistics.median(bare), statistics.median(confined)
    print(
        f"{what}: bare {b * 1000:.1f} ms, confined {c * 1000:.1f} ms,"
        f" +{(c - b) * 1000:.1f} ms ({c / b:.2f}x), median of {len(bare)}"
    )
    return c - b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    confinement = detect()
    if not confinement.confined:
        raise SystemExit(f"this host cannot confine: {confinement.reason}")
    print(f"bubblewrap at {confinement.bwrap}; as root: {confinement.host_user is not None}")
    added = report("process start", *start_times(confinement, args.rounds))
    report(
        "whole job (checkout, git, pytest, JUnit)",
        *asyncio.run(job_times(confinement, args.rounds)),
    )
    print(f"target: confined start <= bare + 100 ms: {'met' if added <= 0.1 else 'NOT met'}")


if __name__ == "__main__":
    main()
