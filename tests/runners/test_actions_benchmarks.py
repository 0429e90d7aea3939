"""Benchmarks on the Actions runner, against the sandbox GitHub running this repository's
`benchmarks.yml`: the command dispatched as a JSON argv on the default branch, every repeat's
metrics file back from the artifact in order and judged by the feature's reader, each way a run
can fail said as the local runner says it, a lost runner run once more (and only once), and the
artifact read as the hostile input it is: bombs, too many files, names that climb out, twins."""

from __future__ import annotations

import asyncio
import io
import json
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.jobs.runners.actions import (
    BENCHMARK_ARTIFACT_PREFIX,
    ERROR_MARK,
    REPEAT_MARK,
    ActionsConfig,
    ActionsRunner,
    ArtifactLimits,
    ArtifactRefused,
    LogExcerpt,
    benchmark_correlation,
    benchmark_failure,
    read_benchmark_artifact,
)
from bot.jobs.runners.base import BenchmarkRequest, JobOutcome
from handlers.benchmarks.metrics import read_metrics
from tests.runners.test_actions_runner import MiB, deflate_bomb, forge_zip, stored
from tests.sandbox import SandboxGitHub

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/bench"
WORKFLOW = (ROOT / ".github" / "workflows" / "benchmarks.yml").read_text()
#: Writes github-action-benchmark's custom format; its value is the repeat's number (counted in a
#: file of the checkout), so the order of the repeats can be seen.
BENCH = """\
import json, pathlib, sys

count = pathlib.Path("count.txt")
n = len(count.read_text()) + 1 if count.exists() else 1
count.write_text("x" * n)
print("repeat says", n, flush=True)
print("ARGV", json.dumps(sys.argv[1:]), flush=True)
with open(sys.argv[sys.argv.index("--json") + 1], "w") as f:
    json.dump([{"name": "latency", "unit": "ms", "value": float(n)}], f)
"""
COMMAND = ("python", "bench.py", "--json", "{output}")
METRIC = b'[{"name": "latency", "unit": "ms", "value": 1.5}]'


def served(hub: SandboxGitHub, bench: str = BENCH, workflow: str = WORKFLOW) -> str:
    """The repository with the workflow and the benchmark on main; main's commit."""
    hub.create_repo(
        REPO,
        files={".github/workflows/benchmarks.yml": workflow, "bench.py": bench, "README.md": "x"},
    )
    sha = hub.git(REPO).branch_sha("main")
    assert sha is not None
    return sha


def request(hub: SandboxGitHub, sha: str, **fields: Any) -> BenchmarkRequest:
    values: dict[str, Any] = {
        "job_id": "7",
        "run_id": "3",
        "repo": REPO,
        "head_clone_url": f"{hub.url}/{REPO}.git",
        "head_sha": sha,
        "command": COMMAND,
        "repeats": 3,
        "timeout_s": 60.0,
        "token": lambda: hub.token,
        "check_metrics": read_metrics,
        "options": {
            "workflow": "benchmarks.yml",
            "ref": "main",
            "labels": {"single-gpu": ["self-hosted", "gpu-1"]},
            "run_key": "benchmarks:push:d1",
        },
    }
    values.update(fields)
    return BenchmarkRequest(**values)


def runner(hub: SandboxGitHub) -> ActionsRunner:
    return ActionsRunner(ActionsConfig(api_url=hub.url, poll_s=0.2))


async def run(actions: ActionsRunner, job: BenchmarkRequest) -> JobOutcome:
    try:
        async with asyncio.timeout(90):
            return await actions.run(job)
    finally:
        await actions.close()


def values(outcome: JobOutcome) -> list[float]:
    assert outcome.result is not None
    return [read_metrics(text.encode())[0].value for text in outcome.result["outputs"]]


# ---------------------------------------------------------------- a run, start to end


async def test_the_workflow_is_dispatched_on_the_default_branch_and_every_repeat_comes_back(hub):
    sha = served(hub)
    job = request(hub, sha)
    outcome = await run(runner(hub), job)
    assert outcome.state == "passed", outcome.reason + outcome.log
    assert outcome.reason == "3 repeat(s) measured"
    assert values(outcome) == [1.0, 2.0, 3.0]  # in the order they ran
    assert outcome.tested_sha == sha and outcome.exit_code == 0
    (body,) = hub.dispatches(REPO)
    correlation = benchmark_correlation(job)
    assert body["ref"] == "main" and body["return_run_details"] is True
    assert body["inputs"] == {
        "sha": sha,
        "command": json.dumps(list(COMMAND)),
        "repeats": "3",
        "timeout_s": "60",
        "machine_type": "single-gpu",
        "runner_labels": '["self-hosted", "gpu-1"]',
        "run_id": "3",
        "job_id": "7",
        "correlation": correlation,
    }
    (workflow_run,) = hub.workflow_runs(REPO)
    assert f"[{correlation}]" in workflow_run["display_title"]
    (artifact,) = hub.artifacts(REPO, workflow_run["id"])
    assert artifact["name"] == f"{BENCHMARK_ARTIFACT_PREFIX}{correlation}"
    # The workflow's log reached the job's: each repeat announced, then what it printed.
    assert outcome.log.count(REPEAT_MARK) == 3 and "repeat says 3" in outcome.log
    assert hub.token not in outcome.log


async def test_shell_words_in_the_command_reach_it_as_written_and_run_nothing(hub, tmp_path):
    sha = served(hub)
    hostile = ("$(touch pwned)", "`touch pwned2`", "; touch pwned3", "*", "a b", "--x={output}")
    job = request(hub, sha, command=(*COMMAND, *hostile), repeats=1)
    outcome = await run(runner(hub), job)
    assert outcome.state == "passed", outcome.reason
    (line,) = [ln for ln in outcome.log.splitlines() if ln.startswith("ARGV ")]
    argv = json.loads(line.removeprefix("ARGV "))
    assert argv[2:7] == list(hostile[:5])
    assert argv[1] == argv[7].removeprefix("--x=") and argv[1].endswith("metrics-1.json")
    assert not list(tmp_path.rglob("pwned*"))


# ---------------------------------------------------------------- the command's failures


@pytest.mark.parametrize(
    ("bench", "reason"),
    [
        pytest.param(
            BENCH.replace("flush=True)\n", "flush=True)\nif n == 2: 1 / 0\n", 1),
            "repeat 2 of 3: the benchmark command exited with 1; its output began:\n"
            "repeat says 2\nTraceback (most recent call last):",
            id="exits non-zero",
        ),
        pytest.param(
            "import sys\nprint('measuring')\nopen(sys.argv[-1], 'w').write('not json\\nat all')\n",
            "repeat 1 of 3: the metrics file is not JSON",
            id="writes no JSON",
        ),
        pytest.param(
            "import json, sys\njson.dump({'x': 1}, open(sys.argv[-1], 'w'))\n",
            "repeat 1 of 3: the metrics file is in neither format",
            id="JSON in neither format",
        ),
        pytest.param(
            "print('forgot the file')\n",
            "repeat 1 of 3 wrote no metrics file (the command's {output} names where it goes)",
            id="writes no file",
        ),
        pytest.param(
            "import time\nprint('sleeping', flush=True)\ntime.sleep(30)\n",
            "repeat 1 of 3 timed out after 1 s; its output began:\nsleeping",
            id="runs past its time",
        ),
    ],
)
async def test_a_command_that_fails_ends_the_job_in_error_with_its_first_lines(hub, bench, reason):
    sha = served(hub, bench)
    outcome = await run(runner(hub), request(hub, sha, timeout_s=1.0))
    assert outcome.state == "error"
    assert outcome.reason.startswith(reason), outcome.reason
    assert outcome.result is None
    assert len(hub.dispatches(REPO)) == 1  # the command's failure is not a lost runner


async def test_a_file_in_no_format_is_quoted_from_its_first_lines(hub):
    sha = served(hub, "import sys\nopen(sys.argv[-1], 'w').write('this is not json\\nat all\\n')\n")
    outcome = await run(runner(hub), request(hub, sha))
    assert outcome.state == "error"
    assert outcome.reason.endswith("the file began:\nthis is not json\nat all")


async def test_inputs_the_workflow_refuses_end_in_error_with_its_words(hub):
    sha = served(hub)
    # A command that names no {output} cannot be built as a request; a workflow that checks
    # less than the bot does is what the second line of defence is for.
    job = request(hub, sha)
    actions = runner(hub)
    original = actions._dispatch

    async def hostile(job_: Any, workflow: str) -> Any:
        job_.inputs["repeats"] = "3; touch /tmp/pwned"
        return await original(job_, workflow)

    actions._dispatch = hostile  # type: ignore[method-assign]
    outcome = await run(actions, job)
    assert (outcome.state, outcome.reason) == ("error", "repeats: expected a number from 1 to 100")


async def test_a_run_that_fails_before_any_runner_takes_it_is_an_error_not_a_lost_runner(hub):
    broken = WORKFLOW.replace(
        "${{ fromJSON(inputs.runner_labels) }}", "${{ fromJSON(inputs.sha) }}"
    )
    sha = served(hub, workflow=broken)
    outcome = await run(runner(hub), request(hub, sha))
    assert outcome.state == "error"
    assert "the workflow run ended failure before any runner took it" in outcome.reason
    assert len(hub.dispatches(REPO)) == 1


async def test_a_workflow_the_repository_lacks_is_named(hub):
    sha = served(hub)
    outcome = await run(runner(hub), request(hub, sha, options={"workflow": "nope.yml"}))
    assert outcome.state == "error"
    assert outcome.reason == (
        "the workflow .github/workflows/nope.yml was not found on main"
        " (copy benchmarks.yml from the bot's repository, or set [benchmarks] workflow)"
    )


# ---------------------------------------------------------------- runners that go away


@pytest.mark.parametrize("conclusion", ["failure", "cancelled"])
async def test_a_lost_runner_runs_the_job_once_more(hub, conclusion):
    sha = served(hub)
    hub.lose_runner(conclusion)
    job = request(hub, sha)
    outcome = await run(runner(hub), job)
    assert outcome.state == "passed", outcome.reason
    assert values(outcome) == [1.0, 2.0, 3.0]
    first, second = (body["inputs"]["correlation"] for body in hub.dispatches(REPO))
    assert (first, second) == (benchmark_correlation(job, 1), benchmark_correlation(job, 2))
    assert f"ended {conclusion} without its artifact: the runner sandbox-runner-1" in outcome.log
    assert "the job runs once more" in outcome.log


async def test_a_runner_lost_twice_ends_the_job_in_error(hub):
    sha = served(hub)
    hub.lose_runner(times=2)
    outcome = await run(runner(hub), request(hub, sha))
    assert outcome.state == "error"
    assert "was lost before the run's last step" in outcome.reason
    assert outcome.reason.endswith("the second attempt lost its runner too")
    assert len(hub.dispatches(REPO)) == 2


async def test_a_cancel_the_bot_asked_for_is_not_run_again(hub):
    sha = served(hub, "import time\ntime.sleep(60)\n")
    job = request(hub, sha)
    actions = runner(hub)
    task = asyncio.create_task(run(actions, job))
    async with asyncio.timeout(30):
        while not any(r["status"] == "in_progress" for r in hub.workflow_runs(REPO)):
            await asyncio.sleep(0.05)
        # The runner follows the run once it has found it (its next poll): until then there is
        # nothing of it to cancel.
        while not await actions.cancel("7"):
            await asyncio.sleep(0.05)
    outcome = await task
    assert outcome.state == "cancelled"
    assert len(hub.dispatches(REPO)) == 1


async def test_a_restart_follows_the_second_attempt_it_finds(hub):
    sha = served(hub)
    hub.lose_runner()
    hold = hub.hold_next_run()
    hold2 = hub.hold_next_run()
    job = request(hub, sha)
    first = asyncio.create_task(run(runner(hub), job))
    async with asyncio.timeout(60):
        while len(hub.dispatches(REPO)) < 2:
            if hold.run_id is not None:
                hold.release()
            await asyncio.sleep(0.05)
        await hold2.reached.wait()
    first.cancel()  # the bot stops while the second attempt waits for a runner
    await asyncio.gather(first, return_exceptions=True)
    later = asyncio.create_task(run(runner(hub), request(hub, sha, resumed=True)))
    hold2.release()
    outcome = await later
    assert outcome.state == "passed", outcome.reason
    assert len(hub.dispatches(REPO)) == 2  # nothing dispatched again
    assert "started before" in outcome.log


# ---------------------------------------------------------------- hostile artifacts


def artifact_swap(actions: ActionsRunner, hub: SandboxGitHub, data: bytes | None) -> None:
    """The run's artifact replaced by `data` (None: removed) before the runner reads it."""
    original = actions._fetch

    async def swapped(gh: Any, watch: Any, wanted: str, read: Callable[..., Any]) -> Any:
        with hub.lock:
            repo = hub.repo(REPO)
            run_ = repo.workflow_runs[watch.run_id]
            for artifact_id in list(run_.artifacts):
                if data is None:
                    run_.artifacts.remove(artifact_id)
                else:
                    repo.artifacts[artifact_id].data = data
        return await original(gh, watch, wanted, read)

    actions._fetch = swapped  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("members", "refusal"),
    [
        pytest.param(
            [("metrics-1.json", zipfile.ZIP_DEFLATED, deflate_bomb(64), 64 * MiB, 0)],
            "is refused: its metrics-1.json is larger than 1048576 bytes",
            id="a bomb",
        ),
        pytest.param(
            [("metrics-1.json", zipfile.ZIP_DEFLATED, deflate_bomb(64), 100, 0)],
            "is damaged: its metrics-1.json could not be read",
            id="a bomb whose header lies",
        ),
        pytest.param(
            [stored(f"junk-{i}.txt", b"") for i in range(500)],
            "holds 500 files, more than 100",
            id="too many files",
        ),
        pytest.param(
            [stored("../metrics-1.json", METRIC)],
            "holds '../metrics-1.json', a name that climbs out of the artifact; not read",
            id="a name that climbs out",
        ),
        pytest.param(
            [stored("metrics-1.json", METRIC), stored("metrics-1.json", b"[]")],
            "holds 'metrics-1.json' twice; not read",
            id="two files of one name",
        ),
        pytest.param(None, "is not a zip file", id="not a zip"),
    ],
)
async def test_a_hostile_artifact_ends_the_job_in_error_with_the_reason(hub, members, refusal):
    sha = served(hub)
    job = request(hub, sha, repeats=1)
    actions = runner(hub)
    artifact_swap(actions, hub, b"MZ" * 100 if members is None else forge_zip(members))
    outcome = await run(actions, job)
    assert outcome.state == "error"
    name = f"{BENCHMARK_ARTIFACT_PREFIX}{benchmark_correlation(job)}"
    assert outcome.reason.startswith(f"the artifact {name} {refusal}"), outcome.reason
    assert len(hub.dispatches(REPO)) == 1


async def test_a_succeeded_run_without_its_artifact_is_an_error_not_a_lost_runner(hub):
    sha = served(hub)
    job = request(hub, sha)
    actions = runner(hub)
    artifact_swap(actions, hub, None)
    outcome = await run(actions, job)
    assert outcome.state == "error"
    name = f"{BENCHMARK_ARTIFACT_PREFIX}{benchmark_correlation(job)}"
    assert outcome.reason == f"the run uploaded no artifact {name}"
    assert len(hub.dispatches(REPO)) == 1


def read(members: list[tuple[str, int, bytes, int, int]], repeats: int = 2, **limits: int):
    data = forge_zip(members)
    return read_benchmark_artifact(io.BytesIO(data), ArtifactLimits(**limits), repeats)


def refusal(members: list[tuple[str, int, bytes, int, int]], repeats: int = 2, **limits: int):
    with pytest.raises(ArtifactRefused) as caught:
        read(members, repeats, **limits)
    return str(caught.value)


def test_the_metrics_files_are_read_by_their_repeat_and_the_rest_left_unread() -> None:
    files = read(
        [
            stored("log.txt", b"[benchmark] repeat 1 of 2: $ x\nhello\n"),
            stored("metrics-2.json", b"[2]"),
            stored("metrics-1.json", b"[1]"),
            stored("metrics-3.json", b"[3]"),  # past the repeats: not one of them
            stored("sub/metrics-1.json", b"[9]"),  # not where the upload puts them
            stored("plots/", b""),
        ]
    )
    assert dict(files.outputs) == {1: b"[1]", 2: b"[2]"}
    assert files.others == 2
    assert files.log.head == ["[benchmark] repeat 1 of 2: $ x", "hello"]


@pytest.mark.parametrize(
    "name", ["../metrics-1.json", "/etc/passwd", "a/../../b", "..\\metrics-1.json", "C:x", "\\x"]
)
def test_a_name_that_climbs_out_is_refused_whatever_it_is_called(name) -> None:
    message = refusal([stored("metrics-1.json", METRIC), stored(name, b"x")])
    assert message.endswith("a name that climbs out of the artifact; not read")


def test_a_bomb_costs_bounded_memory_and_is_refused() -> None:
    bomb, crc = deflate_bomb(256), zlib.crc32(bytes(256 * MiB))
    members = [("metrics-1.json", zipfile.ZIP_DEFLATED, bomb, 256 * MiB, crc)]
    tracemalloc.start()
    try:
        message = refusal(members)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == "is refused: its metrics-1.json is larger than 1048576 bytes"
    assert peak < 16 * MiB, f"peak {peak} bytes"


def test_the_repeats_files_together_are_bounded_too() -> None:
    members = [stored(f"metrics-{n}.json", b"x" * 600) for n in (1, 2)]
    message = refusal(members, metrics_bytes=1000, metrics_total_bytes=1000)
    assert message == "is refused: its metrics files are larger than 1000 bytes together"


def test_the_member_cap_makes_room_for_every_repeat_and_its_log() -> None:
    members = [stored(f"metrics-{n}.json", METRIC) for n in range(1, 101)]
    files = read([*members, stored("log.txt", b"")], repeats=100)
    assert len(files.outputs) == 100
    assert "more than 101" in refusal([*members, stored("log.txt", b""), stored("x", b"")], 100)


def test_foreign_compression_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("metrics-1.json", METRIC)
    with pytest.raises(ArtifactRefused, match="compressed with bzip2"):
        read_benchmark_artifact(io.BytesIO(buffer.getvalue()), ArtifactLimits(), 1)


# ---------------------------------------------------------------- the reason of a failed run


def excerpt(text: str) -> LogExcerpt:
    log = LogExcerpt(64 * 1024)
    log.feed(text)
    log.finish()
    return log


def test_a_failed_repeat_is_told_with_what_that_repeat_printed() -> None:
    log = excerpt(
        f"[benchmark] on runner r1\n{REPEAT_MARK}1 of 2: $ x\nfirst ok\n"
        f"{REPEAT_MARK}2 of 2: $ x\n\nboom\n{ERROR_MARK}repeat 2 of 2: the benchmark command"
        " exited with 3\n"
    )
    assert benchmark_failure(log, "failure") == (
        "repeat 2 of 2: the benchmark command exited with 3; its output began:\nboom"
    )
    silent = excerpt(f"{REPEAT_MARK}1 of 1: $ x\n{ERROR_MARK}repeat 1 of 1 timed out after 5 s\n")
    assert (
        benchmark_failure(silent, "failure")
        == "repeat 1 of 1 timed out after 5 s; it printed nothing"
    )


def test_a_failure_before_the_repeats_is_told_in_the_workflows_words_or_with_the_run() -> None:
    log = excerpt(f"[benchmark] on runner r1\n{ERROR_MARK}sha: expected 40 lowercase hex digits\n")
    assert benchmark_failure(log, "failure") == "sha: expected 40 lowercase hex digits"
    quiet = excerpt("[benchmark] on runner r1\n")
    assert benchmark_failure(quiet, "failure", "https://gh/run/1") == (
        "the workflow run ended failure before the benchmark ended (https://gh/run/1)"
    )
