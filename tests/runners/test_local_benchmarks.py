"""The local runner's benchmarks: a repository's own command, run confined on the pinned commit,
repeated, each repeat's metrics file handed back as untrusted text."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.jobs.runners import GpuPool, LocalRunner
from bot.jobs.runners.base import BenchmarkRequest
from tests.runners.helpers import TOY_PYPROJECT, Git

#: Writes github-action-benchmark's custom format; the latency is read from `latency.txt`, so a
#: commit changes what it measures. It also says where it ran, for the tests to look at.
BENCH = """\
import json, os, sys

out = sys.argv[sys.argv.index("--json") + 1]
value = float(open("latency.txt").read())
print("INTERPRETER", sys.executable)
print("OUTPUT", out)
print("SEEN", json.dumps(dict(os.environ)))
with open(out, "w") as f:
    json.dump([{"name": "latency", "unit": "ms", "value": value}], f)
"""
COMMAND = ("python", "bench.py", "--json", "{output}")


def bench_repo(git: Git, tmp_path: Path, files: dict[str, str] | None = None) -> tuple[Path, str]:
    repo = tmp_path / "origin"
    return repo, git.init(
        repo,
        {
            "pyproject.toml": TOY_PYPROJECT,
            "bench.py": BENCH,
            "latency.txt": "12.5\n",
            **(files or {}),
        },
    )


def bench_request(repo: Path | str, sha: str, **kw: object) -> BenchmarkRequest:
    fields = {
        "job_id": "job-1",
        "run_id": "run-1",
        "repo": "owner/toy",
        "head_clone_url": str(repo),
        "head_sha": sha,
        "command": COMMAND,
        "repeats": 3,
        "timeout_s": 60.0,
        **kw,
    }
    return BenchmarkRequest(**fields)  # type: ignore[arg-type]


def lines_starting(log: str, word: str) -> list[str]:
    return [ln.removeprefix(word + " ") for ln in log.splitlines() if ln.startswith(word + " ")]


async def test_every_repeat_writes_its_own_file_and_comes_back_as_text(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    repo, sha = bench_repo(git, tmp_path)
    artifacts = tmp_path / "artifacts"
    outcome = await runner.run(bench_request(repo, sha, artifacts_dir=artifacts))

    assert outcome.state == "passed", outcome.log
    assert outcome.tested_sha == sha and outcome.exit_code == 0
    outputs = outcome.result["outputs"]
    assert len(outputs) == 3
    assert [json.loads(o) for o in outputs] == [
        [{"name": "latency", "unit": "ms", "value": 12.5}]
    ] * 3
    paths = lines_starting(outcome.log, "OUTPUT")
    assert len(set(paths)) == 3  # a fresh file per repeat, in the job's folder
    assert all(p.startswith(str(tmp_path / "work")) for p in paths)
    # `python` is the test environment's interpreter (here the one the runner was given).
    assert set(lines_starting(outcome.log, "INTERPRETER")) == {runner.envs.config.python}
    assert set(outcome.timings) == {"checkout", "env", "wait", "benchmark"}
    assert "3 repeat(s)" in (artifacts / "log.txt").read_text()
    assert list((tmp_path / "work").iterdir()) == []  # the checkout is gone


async def test_the_pinned_commit_is_measured_not_the_branch_tip(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    repo, first = bench_repo(git, tmp_path)
    git.commit(repo, {"latency.txt": "99\n"}, "slower")
    outcome = await runner.run(bench_request(repo, first, repeats=1))
    assert outcome.state == "passed", outcome.log
    assert json.loads(outcome.result["outputs"][0])[0]["value"] == 12.5
    assert outcome.tested_sha == first


def test_a_benchmark_takes_no_base_and_an_argv_with_an_output() -> None:
    sha = "a" * 40
    with pytest.raises(ValueError, match="no base"):
        bench_request("/x", sha, base_clone_url="/y", base_ref="main")
    with pytest.raises(ValueError, match="argv list"):
        bench_request("/x", sha, command="python bench.py {output}")
    with pytest.raises(ValueError, match=r"\{output\}"):
        bench_request("/x", sha, command=("python", "bench.py"))
    with pytest.raises(ValueError, match="repeats"):
        bench_request("/x", sha, repeats=0)
    with pytest.raises(ValueError, match="optional dependency group"):
        bench_request("/x", sha, extras=["ok", "--index-url=http://evil"])
    request = bench_request("/x", sha, command=["python", "b.py", "--out={output}"])
    assert request.argv("/env/bin/python", "/job/m.json") == [
        "/env/bin/python",
        "b.py",
        "--out=/job/m.json",
    ]


async def test_no_token_or_secret_reaches_the_benchmark(
    git: Git, tmp_path: Path, runner: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "GITHUB_WEBHOOK_SECRET": "whsec-fake-webhook-secret-42",
        "GITHUB_TOKEN": "ghp_fake_personal_token_abcdef",
        "SLACK_BOT_TOKEN": "xoxb-fake-slack-token-98765",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    repo, sha = bench_repo(git, tmp_path)
    outcome = await runner.run(bench_request(repo, sha, repeats=1))
    assert outcome.state == "passed", outcome.log
    (seen,) = lines_starting(outcome.log, "SEEN")
    env = json.loads(seen)
    for value in secrets.values():
        assert value not in outcome.log
    assert not {n for n in env if n.startswith(("GITHUB_", "SLACK_", "BOT_", "GIT_"))}
    assert env["CUDA_VISIBLE_DEVICES"] == ""


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "print('loading the model')\nprint('out of memory')\nraise SystemExit(3)\n",
            "repeat 1 of 3: the benchmark command exited with 3; its output began:\n"
            "loading the model\nout of memory",
        ),
        (
            "print('measured, but forgot to write')\n",
            "repeat 1 of 3 wrote no metrics file",
        ),
    ],
    ids=["exits-non-zero", "writes-no-file"],
)
async def test_a_failing_command_ends_the_job_in_error_with_its_first_lines(
    git: Git, tmp_path: Path, runner: LocalRunner, script: str, expected: str
) -> None:
    repo, sha = bench_repo(git, tmp_path, {"bench.py": script})
    outcome = await runner.run(bench_request(repo, sha))
    assert outcome.state == "error"
    assert outcome.reason.startswith(expected), outcome.reason
    assert outcome.result is None
    assert "repeat 2 of 3" not in outcome.log  # the first failure ends the job


async def test_a_repeat_that_runs_too_long_is_killed_and_the_job_is_an_error(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    script = "import time\nprint('warming up', flush=True)\ntime.sleep(60)\n"
    repo, sha = bench_repo(git, tmp_path, {"bench.py": script})
    started = time.monotonic()
    outcome = await runner.run(bench_request(repo, sha, timeout_s=2))
    assert outcome.state == "error"
    assert outcome.reason.startswith("repeat 1 of 3 timed out after 2 s; its output began:\n")
    assert "warming up" in outcome.reason
    assert time.monotonic() - started < 15


async def test_a_metrics_file_swapped_for_a_link_to_the_bots_files_is_not_read(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    key = tmp_path / "app.private-key.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nswapped-metrics-key-material\n")
    script = f"import os, sys\nos.symlink({str(key)!r}, sys.argv[-1])\n"
    repo, sha = bench_repo(git, tmp_path, {"bench.py": script})
    outcome = await runner.run(bench_request(repo, sha, command=("python", "bench.py", "{output}")))
    assert outcome.state == "error" and "could not be read" in outcome.reason, outcome.reason
    assert "swapped-metrics-key-material" not in outcome.log + outcome.reason
    assert outcome.result is None


async def test_a_metrics_file_over_the_limit_is_not_kept(
    git: Git, tmp_path: Path, make_runner: Callable[..., LocalRunner]
) -> None:
    runner = make_runner(metrics_limit_bytes=100)
    script = "import sys\nopen(sys.argv[-1], 'w').write('[' + ' ' * 500 + ']')\n"
    repo, sha = bench_repo(git, tmp_path, {"bench.py": script})
    outcome = await runner.run(bench_request(repo, sha, command=("python", "bench.py", "{output}")))
    assert outcome.state == "error" and "over 100 bytes" in outcome.reason


async def test_a_file_the_features_reader_refuses_ends_the_job_with_the_files_first_lines(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    script = "import sys\nopen(sys.argv[-1], 'w').write('garbage line one\\nline two\\n')\n"
    repo, sha = bench_repo(git, tmp_path, {"bench.py": script})
    read: list[bytes] = []

    def check(data: bytes) -> None:
        read.append(data)
        raise ValueError("the metrics file is not JSON")

    request = bench_request(
        repo, sha, command=("python", "bench.py", "{output}"), check_metrics=check
    )
    outcome = await runner.run(request)
    assert outcome.state == "error"
    assert outcome.reason == (
        "repeat 1 of 3: the metrics file is not JSON; the file began:\ngarbage line one\nline two"
    )
    assert read == [b"garbage line one\nline two\n"]


async def test_a_multi_gpu_benchmark_on_a_machine_without_one_is_skipped(
    git: Git, tmp_path: Path, make_runner: Callable[..., LocalRunner]
) -> None:
    runner = make_runner(GpuPool(devices=[]))
    repo, sha = bench_repo(git, tmp_path)
    outcome = await runner.run(bench_request(repo, sha, machine_type="multi-gpu"))
    assert outcome.state == "skipped" and outcome.result is None
