"""The style runner on its own: what ruff is given, and how a job stops."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.jobs.runners.base import JobRequest, RunRequest
from bot.jobs.runners.confine import Confinement
from handlers.style.plan import StyleResult
from handlers.style.plan import summary as style_summary
from handlers.style.runner import (
    StyleRequest,
    StyleRunner,
    StyleRunnerConfig,
    ruff_env,
    style_request,
)

ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}
TOKEN = "ghs_" + "s3cret" * 6  # a made-up token the test looks for


def _git(cwd, *args: str) -> str:
    ident = ["-c", "user.name=Dev", "-c", "user.email=dev@example.invalid"]
    done = subprocess.run(
        ["git", *ident, *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture
def remote(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "a.py").write_text("x = 1\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "base")
    base = _git(work, "rev-parse", "HEAD")
    (work / "a.py").write_text("x=1\n")
    _git(work, "commit", "-qam", "head")
    head = _git(work, "rev-parse", "HEAD")
    return work, base, head


def _request(remote, **kw) -> StyleRequest:
    work, base, head = remote
    fields: dict = {"job_id": "1", "run_id": "1", "repo": "o/r", "head_ref": "main"}
    fields.update(head_clone_url=str(work), base_clone_url=str(work), files=("a.py",))
    fields.update(head_sha=head, base_sha=base)
    return StyleRequest(**{**fields, **kw})


def test_a_style_job_is_a_job_request_without_a_folder_or_a_machine_type():
    """The job system builds `/style`'s request the way it builds a test run's, from the run's
    spec, into a shape of the style job's own: nothing of a test run is invented for it."""
    spec = {
        "comments_url": "/repos/o/r/issues/9/comments",
        "request": {
            "head_clone_url": "https://example.invalid/o/r.git",
            "head_ref": "feature",
            "base_clone_url": "https://example.invalid/o/r.git",
            "base_sha": "b" * 40,
            "files": ["a.py"],
            "push": False,
        },
    }
    run = SimpleNamespace(id=4, repo="o/r", head_sha="a" * 40, base_ref=None, number=9, spec=spec)
    job = SimpleNamespace(id=5, spec={"runner": "style"}, reason=None)
    request = style_request(run, job, None)
    assert isinstance(request, StyleRequest) and isinstance(request, JobRequest)
    assert not isinstance(request, RunRequest)
    assert not hasattr(request, "folder") and not hasattr(request, "machine_type")
    assert (request.job_id, request.run_id, request.pull_number) == ("5", "4", 9)
    assert (request.head_ref, request.files, request.push) == ("feature", ("a.py",), False)
    assert request.timeout_s == 600.0
    del spec["request"]["base_sha"]
    with pytest.raises(TypeError, match="base_sha"):
        style_request(run, job, None)


def test_ruff_gets_a_minimal_environment_of_its_own():
    env = ruff_env(Path("/tmp/h"))
    assert set(env) == {"PATH", "HOME", "XDG_CONFIG_HOME", "LANG", "NO_COLOR"}


async def test_ruff_sees_no_token_in_its_argv_or_environment(remote, tmp_path):
    seen = tmp_path / "seen.json"
    spy = (
        "import json, os, sys\n"
        f"with open({str(seen)!r}, 'a') as out:\n"
        "    out.write(json.dumps([sys.argv, dict(os.environ)]) + '\\n')\n"
    )
    # The spy writes outside its job, which only an unconfined runner lets it do.
    runner = StyleRunner(
        StyleRunnerConfig(work_dir=tmp_path / "jobs", ruff=(sys.executable, "-c", spy)),
        Confinement("unconfined"),
    )
    outcome = await runner.run(_request(remote, token=lambda: TOKEN))
    assert outcome.result is not None and outcome.result["outcome"] == "nothing"
    calls = [json.loads(line) for line in seen.read_text().splitlines()]
    assert len(calls) == 3
    for argv, env in calls:
        assert TOKEN not in json.dumps([argv, env])
        assert "--config" in argv and "--no-cache" in argv
        assert set(env) == {"PATH", "HOME", "XDG_CONFIG_HOME", "LANG", "NO_COLOR"}
    assert not list((tmp_path / "jobs").iterdir())  # the checkout is gone


async def test_a_cancelled_job_ends_cancelled_and_a_stopped_bot_gets_the_cancel(remote, tmp_path):
    slow = (sys.executable, "-c", "import time; time.sleep(30)")
    runner = StyleRunner(StyleRunnerConfig(work_dir=tmp_path / "jobs", ruff=slow))
    job = asyncio.create_task(runner.run(_request(remote)))
    async with asyncio.timeout(10):
        while "1" not in runner._tasks:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert await runner.cancel("1")
    assert (await job).state == "cancelled"

    job = asyncio.create_task(runner.run(_request(remote, job_id="2")))
    await asyncio.sleep(0.3)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job


@pytest.fixture
def hostile_remote(tmp_path):
    """A head with more files than one argument list holds, a binary `.py`, one ruff cannot
    parse, and one with tens of thousands of errors ruff cannot fix."""
    work = tmp_path / "hostile"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "README.md").write_text("x\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "base")
    base = _git(work, "rev-parse", "HEAD")
    names = [f"pkg/{'deeply_nested_folder_name/' * 3}module_{i:04d}.py" for i in range(1200)]
    for name in names:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text("x=1\n")
    (work / "binary.py").write_bytes(b"x = 1\x00\xff\xfe\n")
    (work / "broken.py").write_text("def f(:\n")
    (work / "errors.py").write_text("".join(f"y{i} = undefined_{i}\n" for i in range(30000)))
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "head")
    head = _git(work, "rev-parse", "HEAD")
    return work, base, head, [*names, "binary.py", "broken.py", "errors.py"]


async def test_thousands_of_files_a_binary_and_an_error_flood_get_a_true_answer(
    hostile_remote, tmp_path
):
    work, base, head, files = hostile_remote
    runner = StyleRunner(StyleRunnerConfig(work_dir=tmp_path / "jobs"))
    request = _request((work, base, head), files=tuple(files), push=False)
    outcome = await runner.run(request)
    assert outcome.state == "passed", outcome.reason
    result = outcome.result
    assert result is not None and result["outcome"] == "suggested"
    assert len(result["files_fixed"]) == 1200  # every batch's files, fixed
    skipped = dict(result["skipped"])
    assert "binary.py" in skipped and "broken.py" in skipped, skipped
    assert result["remaining_total"] >= 30000  # counted, not cut to "nothing to fix"
    assert len(result["remaining"]) <= 30
    summary = StyleResult.from_json(result)
    text = style_summary(summary)
    assert "Nothing to fix" not in text and "binary.py" in text
    assert f"ruff cannot fix {result['remaining_total']} error(s)" in text


async def test_an_error_flood_alone_is_never_nothing_to_fix(hostile_remote, tmp_path):
    work, base, head, _ = hostile_remote
    runner = StyleRunner(StyleRunnerConfig(work_dir=tmp_path / "jobs"))
    outcome = await runner.run(_request((work, base, head), files=("errors.py",)))
    result = StyleResult.from_json(outcome.result or {})
    assert result.outcome == "nothing" and result.remaining_total == 30000
    assert "Nothing to fix" not in style_summary(result)
