"""The local runner end to end: real git repositories, real pytest subprocesses, real signals."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from bot.config import Settings
from bot.jobs.runners import GpuPool, LocalRunner, LocalRunnerConfig, RunRequest
from bot.jobs.runners.envcache import PythonEnv
from bot.jobs.runners.junit import JUnitReport
from bot.jobs.runners.local import _missing_hint, checkout_git_env, fetch_env
from bot.jobs.runners.verdict import Ending, verdict
from bot.server.runtime import local_runner
from tests.runners.helpers import TOY_PYPROJECT, Git, request_for
from tests.support.processes import alive, marked

PASSING = """\
def test_one():
    assert 1 + 1 == 2


class TestMore:
    def test_two(self):
        assert "a" in "abc"
"""

FAILING = """\
def double(x):
    return x * 2


def test_ok():
    assert double(2) == 4


def test_wrong():
    value = double(3)
    assert value == 7
"""


def toy(git: Git, tmp_path: Path, tests: dict[str, str], name: str = "origin") -> tuple[Path, str]:
    repo = tmp_path / name
    files = {"pyproject.toml": TOY_PYPROJECT}
    files.update({f"tests/models/toy/{n}": text for n, text in tests.items()})
    return repo, git.init(repo, files)


async def test_passing_folder(git: Git, tmp_path: Path, runner: LocalRunner) -> None:
    repo, sha = toy(git, tmp_path, {"test_pass.py": PASSING})
    lines: list[str] = []
    artifacts = tmp_path / "artifacts"
    outcome = await runner.run(request_for(repo, sha, artifacts_dir=artifacts), lines.append)

    assert outcome.state == "passed", outcome.log
    assert (outcome.passed, outcome.failed, outcome.skipped, outcome.errors) == (2, 0, 0, 0)
    assert outcome.tested_sha == sha and outcome.exit_code == 0
    assert {t.node_id for t in outcome.tests} == {
        "tests/models/toy/test_pass.py::test_one",
        "tests/models/toy/test_pass.py::TestMore::test_two",
    }
    assert any("test_one PASSED" in line for line in lines)  # streamed as it ran
    assert "test_one PASSED" in outcome.log and outcome.junit_xml.startswith("<?xml")
    assert (artifacts / "junit.xml").read_text() == outcome.junit_xml
    assert "test_one PASSED" in (artifacts / "log.txt").read_text()
    assert set(outcome.timings) == {"checkout", "env", "wait", "tests"}
    assert list((tmp_path / "work").iterdir()) == []  # the checkout is gone


async def test_failing_test_reports_its_assertion(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    repo, sha = toy(git, tmp_path, {"test_fail.py": FAILING})
    outcome = await runner.run(request_for(repo, sha))

    assert outcome.state == "failed" and outcome.exit_code == 1
    assert (outcome.passed, outcome.failed) == (1, 1)
    (failure,) = outcome.failures
    assert failure.node_id == "tests/models/toy/test_fail.py::test_wrong"
    assert failure.assertion == "assert 6 == 7"
    assert failure.source == "assert value == 7"
    assert failure.location == "tests/models/toy/test_fail.py:11"
    assert "1 failed" in outcome.reason

    # `run-slow --failed`: only the failed test runs again.
    again = await runner.run(request_for(repo, sha, job_id="job-2", tests=(failure.node_id,)))
    assert [t.node_id for t in again.tests] == [failure.node_id]
    assert again.state == "failed"


async def test_no_tests_collected_is_skipped(git: Git, tmp_path: Path, runner: LocalRunner) -> None:
    repo, sha = toy(git, tmp_path, {"helpers.py": "X = 1\n"})
    outcome = await runner.run(request_for(repo, sha))
    assert (outcome.state, outcome.reason) == ("skipped", "no tests collected")
    assert outcome.exit_code == 5


class _DumbHttp:
    """A git repository over plain HTTP (git's "dumb" protocol) that records auth headers."""

    def __init__(self, bare: Path) -> None:
        self.bare = bare
        self.authorizations: list[str | None] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> _DumbHttp:
        @web.middleware
        async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
            self.authorizations.append(request.headers.get("Authorization"))
            return await handler(request)

        app = web.Application(middlewares=[record])
        app.router.add_static("/toy.git", self.bare)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/toy.git"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_no_token_or_secret_reaches_the_tests(
    git: Git, tmp_path: Path, runner: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "ghs_FAKEinstallationTOKEN0123456789"
    secrets = {
        "GITHUB_WEBHOOK_SECRET": "whsec-fake-webhook-secret-42",
        "GITHUB_TOKEN": "ghp_fake_personal_token_abcdef",
        "GITHUB_PRIVATE_KEY": "-----BEGIN FAKE KEY-----",
        "SLACK_BOT_TOKEN": "xoxb-fake-slack-token-98765",
        "BOT_DATABASE": "/secret/place.sqlite3",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    probe = """\
import json, os, pathlib

def test_dump():
    config = pathlib.Path(".git/config").read_text()
    info = {"cwd": os.getcwd(), "env": dict(os.environ), "config": config}
    print("SEEN", json.dumps(info))
    print("ENVIRONMENT", json.dumps(dict(os.environ)))
    print("GITCONFIG", config)
    assert False, "show the captured output in the log"
"""
    repo, sha = toy(git, tmp_path, {"test_env.py": probe})
    bare = tmp_path / "toy.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(bare))
    git(bare, "update-server-info")
    calls = []

    async def provider() -> str:
        calls.append(1)
        return token

    async with _DumbHttp(bare) as server:
        request = request_for(server.url, sha, head_ref="main", token=provider)
        outcome = await runner.run(request)

    assert outcome.state == "failed", outcome.log
    assert calls == [1]  # the token was asked for and sent with the fetch, as a header
    assert any(a and a.startswith("Basic ") for a in server.authorizations)
    seen = next(ln for ln in outcome.log.splitlines() if ln.startswith("SEEN "))
    info = json.loads(seen.removeprefix("SEEN "))
    assert "ENVIRONMENT" in outcome.log and "RUN_SLOW" in outcome.log  # the dump is in the log
    for value in [token, *secrets.values()]:
        assert value not in outcome.log
        assert value not in json.dumps(info)
    assert not {n for n in info["env"] if n.startswith(("GITHUB_", "SLACK_", "BOT_", "GIT_"))}
    assert info["env"]["RUN_SLOW"] == "yes" and info["env"]["CUDA_VISIBLE_DEVICES"] == ""
    assert "extraheader" not in info["config"].lower() and "hookspath" not in info["config"]
    assert info["cwd"].startswith(str(tmp_path / "work")) and not Path(info["cwd"]).exists()


def test_token_only_in_the_fetch_environment(tmp_path: Path) -> None:
    env = checkout_git_env(tmp_path)
    https = fetch_env(env, "https://github.com/owner/repo.git", "ghs_secret_token_1234")
    header_keys = [k for k, v in https.items() if v == "http.https://github.com/.extraHeader"]
    assert header_keys and "ghs_secret_token_1234" not in json.dumps(https)  # base64, in env
    assert fetch_env(env, "/srv/git/repo", "ghs_secret_token_1234") == env  # no header for paths
    assert fetch_env(env, "git@github.com:o/r.git", "ghs_secret_token_1234") == env
    assert env["HOME"] == str(tmp_path) and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert ("core.hooksPath", "/dev/null") in [
        (env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"])
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    ]


async def test_head_moved_since_the_approval(git: Git, tmp_path: Path, runner: LocalRunner) -> None:
    repo, approved = toy(git, tmp_path, {"test_pass.py": PASSING})
    git.commit(repo, {"tests/models/toy/test_new.py": PASSING}, "pushed after the approval")
    outcome = await runner.run(request_for(repo, approved, head_ref="main"))
    assert outcome.state == "error"
    assert outcome.reason.startswith("head moved: main is now at")
    assert approved[:12] in outcome.reason and "test_one" not in outcome.log

    gone = await runner.run(request_for(repo, "1" * 40, job_id="job-2"))
    assert gone.state == "error" and "could not fetch the approved commit" in gone.reason


async def test_fork_merged_into_base(git: Git, tmp_path: Path, runner: LocalRunner) -> None:
    base, _ = toy(git, tmp_path, {"test_a.py": PASSING}, name="base")
    fork = tmp_path / "fork"
    git(tmp_path, "clone", "--quiet", str(base), str(fork))
    git(fork, "checkout", "--quiet", "-b", "feature")
    head = git.commit(fork, {"tests/models/toy/test_pr.py": PASSING}, "the PR")
    git.commit(base, {"tests/models/toy/test_base.py": PASSING}, "base moved on")

    request = request_for(
        fork,
        head,
        head_ref="feature",
        base_clone_url=str(base),
        base_ref="main",
        pull_number=1,
    )
    outcome = await runner.run(request)

    assert outcome.state == "passed", outcome.log
    files = {t.node_id.split("::")[0].rsplit("/", 1)[1] for t in outcome.tests}
    assert files == {"test_a.py", "test_pr.py", "test_base.py"}  # PR and base, together
    assert outcome.tested_sha != head and "merging locally" in outcome.log
    assert f"Merge {head[:12]} into main" in outcome.log


async def test_github_merge_ref_used_only_when_it_merges_the_pinned_sha(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    base, _ = toy(git, tmp_path, {"test_a.py": PASSING}, name="base")
    git(base, "checkout", "--quiet", "-b", "feature")
    old_head = git.commit(base, {"tests/models/toy/test_pr.py": PASSING}, "the PR")
    git(base, "checkout", "--quiet", "main")
    git.commit(base, {"tests/models/toy/test_base.py": PASSING}, "base moved on")

    def merge_ref(head: str) -> str:
        tree = git(base, "merge-tree", "--write-tree", "main", head)
        merge = git(base, "commit-tree", tree, "-p", "main", "-p", head, "-m", "GitHub's merge")
        git(base, "update-ref", "refs/pull/7/merge", merge)
        return merge

    merge = merge_ref(old_head)
    request = request_for(
        base, old_head, head_ref="feature", base_clone_url=str(base), base_ref="main",
        pull_number=7,
    )  # fmt: skip
    used = await runner.run(request)
    assert used.state == "passed", used.log
    assert used.tested_sha == merge and "using GitHub's refs/pull/7/merge" in used.log

    # The PR got a new commit; GitHub's merge ref still merges the old one: merge locally.
    git(base, "checkout", "--quiet", "feature")
    new_head = git.commit(base, {"tests/models/toy/test_pr2.py": PASSING}, "more")
    git(base, "checkout", "--quiet", "main")
    request = request_for(
        base, new_head, job_id="job-2", head_ref="feature", base_clone_url=str(base),
        base_ref="main", pull_number=7,
    )  # fmt: skip
    stale = await runner.run(request)
    assert stale.state == "passed", stale.log
    assert stale.tested_sha not in (merge, new_head)
    assert "not the approved commit; merging locally" in stale.log
    assert len(stale.tests) == 8  # 4 files of 2 tests: base, PR and its new commit


async def test_cancel_kills_the_process_group(
    git: Git, tmp_path: Path, make_runner: Callable[..., LocalRunner]
) -> None:
    runner = make_runner(pytest_args=("-s",))  # the test's prints reach the log as they come
    # The job's PIDs are its own namespace's: its processes are found on the host by a mark.
    mark = f"mark-{time.time_ns()}"
    sleeper = f"""\
import subprocess, time

def test_sleep():
    subprocess.Popen([{mark!r}, "60"], executable="/bin/sleep", env={{"PATH": "/usr/bin"}})
    print("STARTED", flush=True)
    time.sleep(60)
"""
    repo, sha = toy(git, tmp_path, {"test_sleep.py": sleeper})
    lines: list[str] = []
    job = asyncio.create_task(runner.run(request_for(repo, sha), lines.append))
    deadline = time.monotonic() + 30
    while not any("STARTED" in line for line in lines):
        assert time.monotonic() < deadline and not job.done()
        await asyncio.sleep(0.05)
    (child_pid,) = marked(mark)
    assert alive(child_pid)

    started = time.monotonic()
    assert await runner.cancel("job-1") is True
    outcome = await asyncio.wait_for(job, 5)
    assert time.monotonic() - started < 5
    assert outcome.state == "cancelled"
    await asyncio.sleep(0.2)  # let init reap the orphaned grandchild
    assert not alive(child_pid) and not marked(mark)
    assert runner.running() == []
    assert await runner.cancel("job-1") is False


async def test_timeout_kills_and_reports(git: Git, tmp_path: Path, runner: LocalRunner) -> None:
    slow = "import time\n\n\ndef test_x():\n    time.sleep(60)\n"
    repo, sha = toy(git, tmp_path, {"test_slow.py": slow})
    started = time.monotonic()
    outcome = await runner.run(request_for(repo, sha, timeout_s=2))
    assert outcome.state == "timed_out" and outcome.reason == "timed out after 2 s"
    assert time.monotonic() - started < 15


async def test_without_gpu_jobs_take_turns_and_multi_gpu_is_skipped(
    git: Git, tmp_path: Path, make_runner: Callable[..., LocalRunner]
) -> None:
    probe = """\
import os, time

def test_turn():
    start = time.monotonic()
    time.sleep(0.5)
    visible = os.environ['CUDA_VISIBLE_DEVICES']
    print(f"STAMP {start} {time.monotonic()} {visible!r}", flush=True)
"""
    repo, sha = toy(git, tmp_path, {"test_turn.py": probe})
    runner = make_runner(GpuPool(devices=[]), pytest_args=("-s",))
    logs: dict[str, list[str]] = {"a": [], "b": []}
    a, b = await asyncio.gather(
        runner.run(request_for(repo, sha, job_id="a"), logs["a"].append),
        runner.run(request_for(repo, sha, job_id="b"), logs["b"].append),
    )
    assert a.state == b.state == "passed"
    lines = logs["a"] + logs["b"]
    stamps = [ln.split("STAMP ", 1)[1].split() for ln in lines if "STAMP " in ln]
    spans = sorted((float(start), float(end)) for start, end, _ in stamps)
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]  # one at a time
    assert all(visible == "''" for _, _, visible in stamps)
    assert any("waiting for a free turn on the CPU" in ln for ln in logs["a"] + logs["b"])

    multi = await runner.run(request_for(repo, sha, job_id="c", machine_type="multi-gpu"))
    assert multi.state == "skipped" and multi.reason.startswith("no multi-GPU machine: ")


def test_requests_refuse_what_could_escape_the_tests_folder() -> None:
    sha = "a" * 40
    for folder in ("../etc", "models/../../x", "/abs", "models//bert", "-k", ""):
        with pytest.raises(ValueError):
            request_for("/r", sha, folder=folder)
    with pytest.raises(ValueError):
        request_for("/r", sha, tests=("tests/models/other/test_x.py::t",))
    with pytest.raises(ValueError):
        request_for("/r", "HEAD")
    with pytest.raises(ValueError):
        request_for("/r", sha, head_ref="--upload-pack=evil")
    assert "token" not in repr(request_for("/r", sha, token=lambda: "ghs_x"))
    assert isinstance(request_for("/r", sha), RunRequest)


def test_operator_env_may_not_carry_secrets() -> None:
    with pytest.raises(ValueError):
        LocalRunnerConfig(extra_env={"HF_TOKEN": "x"})
    with pytest.raises(ValueError):
        LocalRunnerConfig(extra_env={"CUDA_VISIBLE_DEVICES": "0"})
    assert LocalRunnerConfig(extra_env={"HF_HOME": "/cache/hf"}).extra_env["HF_HOME"]


async def test_merge_conflict_is_an_error_naming_the_files(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    base, _ = toy(git, tmp_path, {"test_a.py": PASSING}, name="base")
    git(base, "checkout", "--quiet", "-b", "feature")
    head = git.commit(base, {"tests/models/toy/test_a.py": "def test_pr():\n    pass\n"}, "PR")
    git(base, "checkout", "--quiet", "main")
    git.commit(base, {"tests/models/toy/test_a.py": "def test_main():\n    pass\n"}, "main")
    request = request_for(base, head, head_ref="feature", base_clone_url=str(base), base_ref="main")
    outcome = await runner.run(request)
    assert outcome.state == "error"
    assert "does not merge cleanly into main (conflicts in tests/models/toy/test_a.py)" in (
        outcome.reason
    )


async def test_a_missing_module_names_itself_and_the_setting(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    """pytest exits 4 before any JUnit when a conftest cannot import: the log names the module."""
    conftest = "import torch_not_installed_here\n"
    repo, sha = toy(git, tmp_path, {"conftest.py": conftest, "test_pass.py": PASSING})
    outcome = await runner.run(request_for(repo, sha))
    assert (outcome.state, outcome.exit_code) == ("error", 4)
    assert "the test environment has no module 'torch_not_installed_here'" in outcome.reason
    assert "BOT_TEST_PYTHON" in outcome.reason  # the interpreter the operator chose lacks it

    module = "import six_not_installed_here.moves\n\n\ndef test_x():\n    pass\n"
    repo, sha = toy(git, tmp_path, {"test_mod.py": module}, name="second")
    outcome = await runner.run(request_for(repo, sha, job_id="job-2"))
    assert (outcome.state, outcome.exit_code) == ("error", 2)  # a collection error, in JUnit
    assert "no module 'six_not_installed_here'" in outcome.reason


def test_a_missing_module_in_a_built_environment_names_extras() -> None:
    """Where the bot built the environment, the fix is the repository's own: its dependencies,
    or `[slow_ci] extras`, whose value now is said."""
    log = (
        "ImportError while loading conftest '/job/src/tests/models/conftest.py'.\n"
        "tests/models/conftest.py:4: in <module>\n    import torch\n"
        "E   ModuleNotFoundError: No module named 'torch'\n"
    )
    built = PythonEnv(python=Path("/envs/k/bin/python"), key="k" * 64, path=Path("/envs/k"))
    for extras, said in ((("dev",), 'now "dev"'), ((), "now []"), (None, "every group")):
        hint = _missing_hint(request_for("/r", "a" * 40, extras=extras), built)
        state, reason = verdict(Ending.exited(4), JUnitReport(), log=log, missing_hint=hint)
        assert state == "error"
        assert reason.startswith("pytest exited with code 4 (usage error); the test environment")
        assert "no module 'torch'" in reason and "`[slow_ci] extras` in .github/bot.toml" in reason
        assert said in reason
    assert verdict(Ending.exited(4), JUnitReport(), log="ERROR: usage: pytest [options]\n")[1] == (
        "pytest exited with code 4 (usage error)"
    )
    for bad in (("--index-url=http://evil",), "models"):
        with pytest.raises(ValueError):
            request_for("/r", "a" * 40, extras=bad)
    assert request_for("/r", "a" * 40, extras=["models"]).extras == ("models",)  # from a spec


async def test_a_job_runs_with_the_default_paths_from_another_folder(
    git: Git, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The defaults are relative (`var/jobs`): read in the folder the bot starts in, they stay
    there when the process is elsewhere, and the job's steps all find their folders."""
    start = tmp_path / "install"
    start.mkdir()
    monkeypatch.chdir(start)
    settings = Settings.from_env({"BOT_TEST_PYTHON": sys.executable})
    monkeypatch.chdir(tmp_path)
    assert settings.job_work_dir == str(start / "var" / "jobs")
    runner = local_runner(settings)
    repo, sha = toy(git, tmp_path, {"test_pass.py": PASSING})
    lines: list[str] = []
    outcome = await runner.run(request_for(repo, sha), lines.append)
    assert outcome.state == "passed", outcome.log
    assert (start / "var" / "jobs").is_dir() and not (tmp_path / "var").exists()
    assert list((start / "var" / "jobs").iterdir()) == []  # the job's folder was there, and gone


async def test_a_junit_report_swapped_for_a_link_to_the_bots_files_is_not_read(
    git: Git, tmp_path: Path, runner: LocalRunner
) -> None:
    """The report is the job's own file: a test that puts a link there (to the bot's key, say)
    after pytest wrote it must not get the bot, which reads the report, to read the target."""
    key = tmp_path / "app.private-key.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nswapped-report-key-material\n")
    conftest = f"""\
import os


def pytest_unconfigure(config):
    path = config.option.xmlpath
    if path:
        os.remove(path)
        os.symlink({str(key)!r}, path)
"""
    repo, sha = toy(git, tmp_path, {"test_pass.py": PASSING, "conftest.py": conftest})
    artifacts = tmp_path / "artifacts"
    outcome = await runner.run(request_for(repo, sha, artifacts_dir=artifacts))
    assert outcome.junit_xml is None
    assert "swapped-report-key-material" not in outcome.log + outcome.reason
    assert not (artifacts / "junit.xml").exists()
    assert outcome.state == "error" and "JUnit report" in outcome.reason, outcome.reason
