"""How many slow jobs on GitHub Actions one bot process follows: 500 jobs in flight at once,
then the webhooks of all of them, and the time to absorb them.

`bot serve` runs as its own process, as deployed, against the sandbox GitHub in this one: 50
pull requests each get `run-slow` of 10 folders, 500 jobs, each a `workflow_dispatch` of
`slow-tests.yml`. Every dispatched run is held `queued` until all 500 are
followed; then all are released at once, and their `workflow_run` / `workflow_job` webhooks
(requested, queued, in progress, completed: six a run) arrive while the bot downloads 500
artifacts and reports 50 runs (comment, status, check run). The test step is scripted (a JUnit
file with one passing test), since what is measured is the bot, not pytest. Besides the wall
time, the bot process's own CPU time says what the figures cost it (the sandbox here takes its
share of the two cores).

    python bench/actions_scale.py [--prs 50] [--folders 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from served_bot import SECRET, Bot  # noqa: E402

from tests.sandbox import SandboxGitHub  # noqa: E402

REPO = "acme/models"
JUNIT = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="1"'
    ' failures="0" errors="0" skipped="0" time="0.01"><testcase classname="tests.models.{f}'
    '.test_it" name="test_it" time="0.01"/></testsuite></testsuites>'
)


def _scripted(inputs: dict[str, str]) -> tuple[int, str, str]:
    folder = inputs["folder"].rsplit("/", 1)[-1]
    return 0, JUNIT.format(f=folder), f"tests/{inputs['folder']}/test_it.py::test_it PASSED\n"


async def main(prs: int, folders: int) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory() as tmp:
        hub = SandboxGitHub(Path(tmp) / "github")
        await hub.start()
        bot = Bot(hub, Path(tmp), 16, {"BOT_ACTIONS_POLL_SECONDS": "600"})
        try:
            await bot.ready()
            hub.webhook_target(f"{bot.url}/webhook", SECRET)
            names = [f"m{i}" for i in range(folders)]
            files = {f"tests/models/{n}/test_it.py": "def test_it():\n    pass\n" for n in names}
            files[".github/workflows/slow-tests.yml"] = (
                ROOT / ".github" / "workflows" / "slow-tests.yml"
            ).read_text()
            files[".github/bot.toml"] = (
                '[slow_ci]\nreminder = false\nrunner = "github-actions"\n'
                'machine_types = ["single-gpu"]\n'
            )
            hub.create_repo(REPO, files=files, collaborators={"maint": "write"}, pushed_at=past)
            numbers = []
            for i in range(prs):
                hub.commit(
                    REPO,
                    f"b{i}",
                    {f"src{i}.py": "x = 1\n"},
                    author="carol",
                    date=past,
                    pushed_at=past,
                )
                numbers.append(hub.open_pull(REPO, f"b{i}", author="carol"))
            hub.actions_test_step = _scripted
            hub.actions_concurrency = prs * folders
            jobs = prs * folders
            holds = [hub.hold_next_run() for _ in range(jobs)]
            requests_before = len(hub.requests)

            cpu = bot.cpu_seconds()
            start = time.perf_counter()
            line = "run-slow: " + ", ".join(names)
            for number in numbers:
                await bot.deliver(
                    "issue_comment", hub.issue_comment_payload(REPO, number, line, "maint")
                )
            # Counters, no one event to wait on: looked at every 50 ms.
            while sum(h.reached.is_set() for h in holds) < jobs:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            dispatched = time.perf_counter() - start
            dispatch_cpu = bot.cpu_seconds() - cpu
            print(
                f"{jobs} jobs dispatched, all in flight at once, in {dispatched:.1f} s"
                f" ({jobs / dispatched:.0f} jobs/s); the bot's CPU: {dispatch_cpu:.1f} s"
                f" ({1000 * dispatch_cpu / jobs:.0f} ms a job, the {prs} comments' reads included)"
            )

            hooks_before = len(hub.sent_webhooks())
            cpu = bot.cpu_seconds()
            start = time.perf_counter()
            for hold in holds:
                hold.release()
            await hub.actions_idle(within=1800)
            heads = [hub.pull(REPO, n).head_sha for n in numbers]
            while not all(  # noqa: ASYNC110
                (hub.statuses(REPO, sha) or [{}])[0].get("state") == "success" for sha in heads
            ):
                await asyncio.sleep(0.05)
            absorbed = time.perf_counter() - start
            absorb_cpu = bot.cpu_seconds() - cpu
            hooks = len(hub.sent_webhooks()) - hooks_before
            per_job = (len(hub.requests) - requests_before) / jobs
            print(
                f"released: {hooks} webhooks absorbed, {jobs} artifacts read and {prs} runs"
                f" reported success in {absorbed:.1f} s ({hooks / absorbed:.0f} webhooks/s,"
                f" {jobs / absorbed:.0f} jobs/s); the bot's CPU: {absorb_cpu:.1f} s"
                f" ({1000 * absorb_cpu / jobs:.0f} ms a job)"
            )
            print(f"GitHub API requests per job, the run's reports included: {per_job:.1f}")
        finally:
            await bot.close()
            await hub.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prs", type=int, default=50)
    parser.add_argument("--folders", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.prs, args.folders))
