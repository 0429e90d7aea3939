"""The local runner: a pull request's tests (or a repository's benchmark) in a subprocess on
this machine.

This is the only place the bot executes code from a pull request, so it is built to give that
code nothing: a fresh checkout in a temporary directory, git with no user or system config and no
hooks, the installation token only in the environment of the fetching git process (as an HTTP
header scoped to the clone URL's host, never in argv or `.git/config`), and a test process with
a minimal environment of its own making. What runs is exactly the approved commit (or its merge
into the base branch); if the branch moved since the approval the job stops with `error`.

Every step on the pull request's content (git writing its tree, the environment build, the
tests) runs confined (`bot/jobs/runners/confine.py`): the job's own directory writable, its
interpreter read-only, nothing else of the bot's. A host that cannot confine runs no job.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bot.clients.git import git_env
from bot.jobs.runners.base import (
    OUTPUT_PLACEHOLDER,
    BenchmarkRequest,
    BoundedLog,
    Captured,
    JobError,
    JobOutcome,
    JobRequest,
    JobState,
    LogSink,
    RunRequest,
    judge_metrics,
    resolve_token,
    run_bounded,
    run_captured,
    stream_process,
)
from bot.jobs.runners.confine import Confinement, ConfinementUnavailable, Jail, python_roots
from bot.jobs.runners.envcache import EnvBuildError, EnvCache, PythonEnv
from bot.jobs.runners.gpus import GpuPool, Lease, MachineUnavailable
from bot.jobs.runners.junit import JUnitReport, parse_junit
from bot.jobs.runners.pytest_command import PYTEST_ENV, pytest_argv
from bot.jobs.runners.verdict import Ending, verdict

logger = logging.getLogger(__name__)

#: Variables a test process may never receive, whatever an operator adds.
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PRIVATE|CREDENTIAL|(^|_)KEY($|_)", re.I)
_RESERVED_NAMES = frozenset({"CUDA_VISIBLE_DEVICES", "HOME", "TMPDIR", *PYTEST_ENV})
#: git settings for every command on a checkout: no hooks, no submodules, no helpers
_GIT_SETTINGS = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("credential.helper", ""),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("advice.detachedHead", "false"),
    ("init.defaultBranch", "main"),
    # Under a root bot the checkout belongs to the sandbox's user from its first confined step
    # on; git that runs after it reads only what the bot fetched, never config the PR wrote.
    ("safe.directory", "*"),
)


@dataclass(frozen=True)
class LocalRunnerConfig:
    #: parent of the per-job temporary directories (default: the system's)
    work_dir: Path | None = None
    kill_grace_s: float = 5.0
    git_timeout_s: float = 900.0
    log_limit_bytes: int = 2 * 1024 * 1024
    junit_limit_bytes: int = 5 * 1024 * 1024
    log_tail_lines: int = 60
    #: added to the test environment (e.g. HF_HOME for a shared model cache); never secrets
    extra_env: Mapping[str, str] = field(default_factory=dict)
    pytest_args: tuple[str, ...] = ()
    #: host paths every test run may read (a model cache, a data set); never the bot's own
    readonly_paths: tuple[Path, ...] = ()
    #: what one repeat of a benchmark may write as its metrics file, and all repeats together:
    #: the files travel in the job's row to the feature that reads them
    metrics_limit_bytes: int = 1024 * 1024
    metrics_total_bytes: int = 4 * 1024 * 1024
    #: how much of a failing benchmark's output its job's reason quotes
    reason_lines: int = 10

    def __post_init__(self) -> None:
        for name in self.extra_env:
            if _SECRET_NAME.search(name) or name in _RESERVED_NAMES:
                raise ValueError(f"{name} may not be set in a test run's environment")


def checkout_git_env(home: Path) -> dict[str, str]:
    """`localgit.git_env()` for untrusted checkouts: an empty HOME, and the `_GIT_SETTINGS`
    given through GIT_CONFIG_* so none of it is written to disk."""
    env = git_env(home)
    env.update(
        GIT_LFS_SKIP_SMUDGE="1",
        GIT_AUTHOR_NAME="maintainer-bot",
        GIT_AUTHOR_EMAIL="maintainer-bot@localhost",
        GIT_COMMITTER_NAME="maintainer-bot",
        GIT_COMMITTER_EMAIL="maintainer-bot@localhost",
    )
    return _with_git_config(env, _GIT_SETTINGS)


def _with_git_config(env: dict[str, str], pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    out = dict(env)
    start = int(out.get("GIT_CONFIG_COUNT", "0"))
    for i, (key, value) in enumerate(pairs, start):
        out[f"GIT_CONFIG_KEY_{i}"] = key
        out[f"GIT_CONFIG_VALUE_{i}"] = value
    out["GIT_CONFIG_COUNT"] = str(start + len(pairs))
    return out


def fetch_env(env: dict[str, str], url: str, token: str | None) -> dict[str, str]:
    """The environment of one fetching git process: the token as an HTTP header for the clone
    URL's host only, and only over HTTP(S) — a local path or ssh URL never gets it."""
    parts = urlsplit(url)
    if not token or parts.scheme not in ("http", "https"):
        return env
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    key = f"http.{parts.scheme}://{parts.netloc}/.extraHeader"
    return _with_git_config(env, ((key, f"Authorization: Basic {basic}"),))


def token_secrets(token: str | None) -> list[str]:
    if not token:
        return []
    return [token, base64.b64encode(f"x-access-token:{token}".encode()).decode()]


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise JobError("the clone URL carries credentials; refusing to use it")
    if url.startswith("-") or parts.scheme == "ext" or "::" in parts.scheme:
        raise JobError(f"unsupported clone URL {url!r}")


@dataclass
class _Job:
    task: asyncio.Task[JobOutcome] | None = None
    cancel_requested: bool = False


class LocalRunner:
    """Runs jobs as subprocesses here; many at once, each waiting for its GPU lease."""

    name = "local"

    def __init__(
        self,
        envs: EnvCache,
        pool: GpuPool | None = None,
        config: LocalRunnerConfig | None = None,
        confinement: Confinement | None = None,
    ) -> None:
        self.envs = envs
        self.pool = pool if pool is not None else GpuPool()
        self.config = config or LocalRunnerConfig()
        self.confinement = confinement or envs.confinement
        self._jobs: dict[str, _Job] = {}
        #: job directories already given to the sandbox's user
        self._handed: set[Path] = set()
        # A cancel that arrives before its run() starts is kept briefly so the run never starts.
        self._cancelled_early: OrderedDict[str, None] = OrderedDict()

    def refusal(self) -> str | None:
        """Why no job can start here (the host cannot confine), for the PR's reply."""
        return self.confinement.refusal

    def running(self) -> list[str]:
        return list(self._jobs)

    async def cancel(self, job_id: str) -> bool:
        """Kill the job's process group and wait until the job has wound down."""
        job = self._jobs.get(job_id)
        if job is None or job.task is None:
            self._cancelled_early[job_id] = None
            while len(self._cancelled_early) > 1000:
                self._cancelled_early.popitem(last=False)
            return False
        job.cancel_requested = True
        job.task.cancel()
        await asyncio.wait({job.task}, timeout=self.config.kill_grace_s + 30)
        return True

    async def run(
        self, request: RunRequest | BenchmarkRequest, on_log: LogSink | None = None
    ) -> JobOutcome:
        """Run one job to its end; its own failures come back as the outcome, never raised."""
        if request.job_id in self._jobs:
            raise ValueError(f"job {request.job_id} is already running")
        started = time.monotonic()
        log = BoundedLog(self.config.log_limit_bytes, on_log)
        timings: dict[str, float] = {}
        if request.job_id in self._cancelled_early:
            del self._cancelled_early[request.job_id]
            return self._outcome("cancelled", "cancelled before it started", log, started, timings)
        job = _Job()
        self._jobs[request.job_id] = job
        job.task = asyncio.create_task(self._execute(request, log, timings, started))
        try:
            return await asyncio.shield(job.task)
        except asyncio.CancelledError:
            if job.task.done() and job.cancel_requested:
                await log.note("cancelled; the test process group was killed")
                self._keep(request, log, None)
                state, reason = verdict(Ending.cancelled(), JUnitReport())
                return self._outcome(state, reason, log, started, timings)
            # The caller itself was cancelled: stop the job, let it clean up, then go.
            job.task.cancel()
            await asyncio.gather(job.task, return_exceptions=True)
            raise
        finally:
            self._jobs.pop(request.job_id, None)

    def _outcome(
        self,
        state: JobState,
        reason: str,
        log: BoundedLog,
        started: float,
        timings: dict[str, float],
        **extra: object,
    ) -> JobOutcome:
        return JobOutcome(
            state=state,
            reason=reason,
            duration_s=round(time.monotonic() - started, 3),
            log=log.text(),
            log_tail=log.tail(self.config.log_tail_lines),
            timings=dict(timings),
            **extra,  # type: ignore[arg-type]
        )

    async def _execute(
        self,
        request: RunRequest | BenchmarkRequest,
        log: BoundedLog,
        timings: dict[str, float],
        started: float,
    ) -> JobOutcome:
        refusal = self.refusal()
        if refusal is not None:
            await log.note(f"error: {refusal}")
            return self._outcome("error", refusal, log, started, timings)
        reason = self.pool.unavailable_reason(request.machine_type)
        if reason is not None:
            await log.note(f"skipped: {reason}")
            return self._outcome("skipped", reason, log, started, timings)
        workdir = make_workdir(self.config.work_dir, "bot-job-")
        try:
            if isinstance(request, BenchmarkRequest):
                return await self._benchmark(request, log, timings, started, workdir)
            return await self._in_workdir(request, log, timings, started, workdir)
        except (JobError, EnvBuildError, ConfinementUnavailable) as exc:
            reason = log.redact(str(exc))
            await log.note(f"error: {reason}")
            return self._outcome("error", reason, log, started, timings)
        except MachineUnavailable as exc:
            return self._outcome("skipped", str(exc), log, started, timings)
        except Exception as exc:
            # A runner bug or a broken machine (no git, full disk) is this job's error, not the
            # job system's crash; the traceback goes to the bot's log for the operator.
            logger.exception("job %s failed in the runner", request.job_id)
            reason = log.redact(f"the runner failed: {type(exc).__name__}: {exc}")
            await log.note(reason)
            return self._outcome("error", reason, log, started, timings)
        finally:
            self._handed.discard(workdir)
            remove_tree(workdir)

    def _waiting(self, log: BoundedLog) -> Callable[[int], Awaitable[None]]:
        async def waiting(ahead: int) -> None:
            what = "GPU" if self.pool.has_gpu else "turn on the CPU"
            await log.note(f"waiting for a free {what} ({ahead} job(s) ahead)")

        return waiting

    def _hand_over(self, workdir: Path) -> None:
        if workdir not in self._handed:
            self.confinement.hand_over(workdir)
            self._handed.add(workdir)

    async def _prepare(
        self,
        request: RunRequest | BenchmarkRequest,
        what: str,
        log: BoundedLog,
        timings: dict[str, float],
        workdir: Path,
    ) -> tuple[Path, Path, Path, str, PythonEnv]:
        """What every job on PR content starts with, tests or a benchmark: a private home and
        tmp, the pinned commit checked out, the folder handed to the sandbox's user, and the
        test environment built or reused; returns (home, tmp, src, tested sha, environment)."""
        home = workdir / "home"
        tmp = workdir / "tmp"
        home.mkdir()
        tmp.mkdir()
        src = workdir / "src"

        phase = time.monotonic()
        await log.note(f"job {request.job_id}: {what}")
        tested = await self._checkout(request, src, home, log)
        self._hand_over(workdir)
        timings["checkout"] = round(time.monotonic() - phase, 3)

        phase = time.monotonic()
        env = await self.envs.ensure(
            request.repo, src, log.note, network=request.network, extras=request.extras
        )
        timings["env"] = round(time.monotonic() - phase, 3)
        return home, tmp, src, tested, env

    async def _in_workdir(
        self,
        request: RunRequest,
        log: BoundedLog,
        timings: dict[str, float],
        started: float,
        workdir: Path,
    ) -> JobOutcome:
        what = f"tests/{request.folder} on {request.machine_type}"
        home, tmp, src, tested, env = await self._prepare(request, what, log, timings, workdir)

        phase = time.monotonic()
        async with self.pool.lease(request.machine_type, on_wait=self._waiting(log)) as lease:
            timings["wait"] = round(time.monotonic() - phase, 3)
            phase = time.monotonic()
            try:
                code, report, junit_text = await self._pytest(
                    request, env, lease, src, home, tmp, workdir, log
                )
            except TimeoutError:
                timings["tests"] = round(time.monotonic() - phase, 3)
                ending = Ending.timed_out(f"timed out after {request.timeout_s:g} s")
                await log.note(ending.reason + "; the test process group was killed")
                self._keep(request, log, None)
                state, reason = verdict(ending, JUnitReport())
                return self._outcome(state, reason, log, started, timings, tested_sha=tested)
            timings["tests"] = round(time.monotonic() - phase, 3)

        state, reason = verdict(
            Ending.exited(code),
            report,
            log=log.text(),
            missing_hint=_missing_hint(request, env),
        )
        await log.note(f"{state}: {reason}" if reason else state)
        self._keep(request, log, junit_text)
        return self._outcome(
            state,
            reason,
            log,
            started,
            timings,
            passed=report.passed,
            failed=report.failed,
            skipped=report.skipped,
            errors=report.errors,
            tests=report.tests,
            junit_xml=junit_text,
            tested_sha=tested,
            exit_code=code,
        )

    # -- checkout -------------------------------------------------------------------------

    async def _checkout(self, request: JobRequest, src: Path, home: Path, log: BoundedLog) -> str:
        """Fetch and check out what the job tests; returns the commit id of HEAD."""
        check_url(request.head_clone_url)
        if request.base_clone_url:
            check_url(request.base_clone_url)
        env = checkout_git_env(home)
        need_token = any(
            urlsplit(u).scheme in ("http", "https")
            for u in (request.head_clone_url, request.base_clone_url)
            if u
        )
        token = await resolve_token(request.token) if need_token else None
        for secret in token_secrets(token):
            log.add_secret(secret)
        pinned = request.head_sha

        if request.head_ref:
            await log.note(f"checking that {request.head_ref} is still at {pinned[:12]}")
            tip = await self._remote_tip(request.head_clone_url, request.head_ref, env, token)
            _check_tip(request.head_ref, tip, pinned)

        await self._init(src, env)
        if request.base_clone_url and request.pull_number is not None:
            merge = await self._try_merge_ref(request, src, env, token, log)
            if merge is not None:
                return merge
            remove_tree(src)
            await self._init(src, env)  # the shallow fetch must not confuse the full one

        head_spec = f"refs/heads/{request.head_ref}" if request.head_ref else pinned
        await log.note(f"fetching {head_spec} from {request.head_clone_url}")
        code = await self._git_logged(
            ["fetch", "--no-tags", "--no-recurse-submodules", "--quiet",
             "--", request.head_clone_url, f"+{head_spec}:refs/bot/head"],
            src, fetch_env(env, request.head_clone_url, token), log,
        )  # fmt: skip
        if code != 0:
            raise JobError(
                f"could not fetch the approved commit {pinned[:12]} from the head repository"
                " (force-pushed away, or the repository is gone)"
            )
        fetched = await self._rev(src, env, "refs/bot/head")
        if request.head_ref:
            _check_tip(request.head_ref, fetched, pinned)
        elif fetched != pinned:
            raise JobError(f"fetched {fetched[:12]}, not the approved commit {pinned[:12]}")

        if not request.base_clone_url:
            await self._tree_git(["checkout", "--quiet", "--detach", pinned], src, env, log)
            return await self._verify(src, env, pinned, merged=False)

        base_ref = request.base_ref
        await log.note(f"fetching {base_ref} from {request.base_clone_url} to merge into")
        code = await self._git_logged(
            ["fetch", "--no-tags", "--no-recurse-submodules", "--quiet",
             "--", request.base_clone_url, f"+refs/heads/{base_ref}:refs/bot/base"],
            src, fetch_env(env, request.base_clone_url, token), log,
        )  # fmt: skip
        if code != 0:
            raise JobError(f"could not fetch the base branch {base_ref}")
        base = await self._rev(src, env, "refs/bot/base")
        if request.base_sha and request.base_sha != base:
            if await self._has_commit(src, env, request.base_sha):
                base = request.base_sha
            else:
                await log.note(f"base {request.base_sha[:12]} is gone; using {base[:12]}")
        code, _, _ = await run_captured(
            ["git", "merge-base", "--is-ancestor", pinned, base], env=env, cwd=src, timeout_s=60
        )
        if code == 0:
            raise JobError(f"the approved commit {pinned[:12]} is already part of {base_ref}")
        await self._tree_git(["checkout", "--quiet", "--detach", base], src, env, log)
        message = f"Merge {pinned[:12]} into {base_ref} (tested by the bot)"
        code = await self._tree_git(
            ["merge", "--no-ff", "--no-edit", "--quiet", "-m", message, pinned],
            src, env, log, check=False,
        )  # fmt: skip
        if code != 0:
            done = await self._tree_read(["diff", "--name-only", "--diff-filter=U"], src, env)
            names = done.out.split()[:10] if done.code == 0 else []
            files = ", ".join(names) or "unknown files"
            raise JobError(
                f"the approved commit {pinned[:12]} does not merge cleanly into {base_ref}"
                f" (conflicts in {files})"
            )
        return await self._verify(src, env, pinned, merged=True)

    async def _try_merge_ref(
        self, request: JobRequest, src: Path, env: dict[str, str], token: str | None,
        log: BoundedLog,
    ) -> str | None:  # fmt: skip
        """GitHub's own merge commit, when it is the merge of exactly the approved commit."""
        assert request.base_clone_url is not None
        ref = f"refs/pull/{request.pull_number}/merge"
        code, _, _ = await run_captured(
            ["git", "fetch", "--no-tags", "--no-recurse-submodules", "--quiet", "--depth=1",
             "--", request.base_clone_url, f"+{ref}:refs/bot/merge"],
            env=fetch_env(env, request.base_clone_url, token), cwd=src,
            timeout_s=self.config.git_timeout_s,
        )  # fmt: skip
        if code != 0:
            await log.note(f"no {ref} to use; merging locally")
            return None
        code, raw, _ = await run_captured(
            ["git", "cat-file", "commit", "refs/bot/merge"], env=env, cwd=src, timeout_s=60
        )
        parents = re.findall(r"^parent ([0-9a-f]{40})$", raw.split("\n\n", 1)[0], re.M)
        if code != 0 or len(parents) != 2 or parents[1] != request.head_sha:
            seen = parents[1][:12] if len(parents) == 2 else "no second parent"
            await log.note(f"{ref} merges {seen}, not the approved commit; merging locally")
            return None
        merge = await self._rev(src, env, "refs/bot/merge")
        await log.note(f"using GitHub's {ref} ({merge[:12]}), the merge of the approved commit")
        await self._tree_git(["checkout", "--quiet", "--detach", merge], src, env, log)
        head = await self._rev(src, env, "HEAD")
        if head != merge:
            raise JobError("the checkout is not at the merge commit it fetched")
        return head

    async def _init(self, src: Path, env: dict[str, str]) -> None:
        code, _, err = await run_captured(
            ["git", "init", "--quiet", "--template=", str(src)],
            env=env, cwd=src.parent, timeout_s=60,
        )  # fmt: skip
        if code != 0:
            raise JobError(f"git init failed: {last_line(err)}")

    async def _remote_tip(
        self, url: str, ref: str, env: dict[str, str], token: str | None
    ) -> str | None:
        code, out, err = await run_captured(
            ["git", "ls-remote", "--", url, f"refs/heads/{ref}"],
            env=fetch_env(env, url, token), cwd=env["HOME"], timeout_s=self.config.git_timeout_s,
        )  # fmt: skip
        if code != 0:
            raise JobError(f"could not read the head repository: {last_line(err)}")
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name == f"refs/heads/{ref}":
                return sha
        return None

    async def _rev(self, src: Path, env: dict[str, str], rev: str) -> str:
        code, out, err = await run_captured(
            ["git", "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}"],
            env=env, cwd=src, timeout_s=60,
        )  # fmt: skip
        if code != 0:
            raise JobError(f"git rev-parse {rev}: {last_line(err)}")
        return out.strip()

    async def _has_commit(self, src: Path, env: dict[str, str], sha: str) -> bool:
        code, _, _ = await run_captured(
            ["git", "cat-file", "-e", f"{sha}^{{commit}}"], env=env, cwd=src, timeout_s=60
        )
        return code == 0

    async def _verify(self, src: Path, env: dict[str, str], pinned: str, *, merged: bool) -> str:
        head = await self._rev(src, env, "HEAD")
        if not merged:
            if head != pinned:
                raise JobError(f"the checkout is at {head[:12]}, not the approved {pinned[:12]}")
            return head
        code, out, _ = await run_captured(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD^2"], env=env, cwd=src, timeout_s=60
        )
        if code != 0 or out.strip() != pinned:
            raise JobError(f"the merge commit {head[:12]} is not a merge of {pinned[:12]}")
        return head

    async def _git_logged(
        self, args: list[str], cwd: Path, env: dict[str, str], log: BoundedLog
    ) -> int:
        await log.write("$ git " + " ".join(args))
        return await stream_process(
            ["git", *args],
            env=env,
            cwd=cwd,
            on_line=log.write,
            timeout_s=self.config.git_timeout_s,
            kill_grace_s=2.0,
        )

    def _tree_jail(self, src: Path) -> Jail:
        return Jail(cwd=src, writable=[src.parent], network=False)

    async def _tree_git(
        self, args: list[str], src: Path, env: dict[str, str], log: BoundedLog,
        *, check: bool = True,
    ) -> int:  # fmt: skip
        """git writing the PR's tree (checkout, merge): confined, since it writes what the PR
        chose (file names, links, attributes) and is the first step on them."""
        self._hand_over(src.parent)
        await log.write("$ git " + " ".join(args))
        code = await stream_process(
            self.confinement.wrap(["git", *args], self._tree_jail(src)),
            env=env,
            cwd=src,
            on_line=log.write,
            timeout_s=self.config.git_timeout_s,
            kill_grace_s=2.0,
        )
        if check and code != 0:
            raise JobError(f"git {args[0]} failed")
        return code

    async def _tree_read(self, args: list[str], src: Path, env: dict[str, str]) -> Captured:
        self._hand_over(src.parent)
        return await run_bounded(
            self.confinement.wrap(["git", *args], self._tree_jail(src)),
            env=env, cwd=src, timeout_s=60,
        )  # fmt: skip

    # -- tests ----------------------------------------------------------------------------

    def test_env(
        self, env: PythonEnv, lease: Lease, src: Path, home: Path, tmp: Path
    ) -> dict[str, str]:
        """Everything the test process gets; nothing is copied from the bot's environment."""
        pythonpath = [str(src)] + ([str(src / "src")] if (src / "src").is_dir() else [])
        out = {
            "PATH": f"{env.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "USER": "runner",
            "LOGNAME": "runner",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONNOUSERSITE": "1",
            "PYTHONPATH": os.pathsep.join(pythonpath),
            **PYTEST_ENV,
            "CUDA_VISIBLE_DEVICES": lease.cuda_visible_devices,
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",  # the ids nvidia-smi printed
            "CI": "true",
        }
        out.update(self.config.extra_env)
        return out

    async def _pytest(
        self,
        request: RunRequest,
        env: PythonEnv,
        lease: Lease,
        src: Path,
        home: Path,
        tmp: Path,
        workdir: Path,
        log: BoundedLog,
    ) -> tuple[int, JUnitReport, str | None]:
        junit = workdir / "junit.xml"
        targets = list(request.tests) or [request.target]
        argv = pytest_argv(env.python, junit, targets, self.config.pytest_args)
        where = f"CUDA_VISIBLE_DEVICES={lease.cuda_visible_devices or '(none: CPU)'}"
        await log.note(" ".join([where, *(f"{k}={v}" for k, v in PYTEST_ENV.items())]))
        await log.write("$ python -m pytest " + " ".join(argv[3:]))
        jail = Jail(
            cwd=src,
            writable=[workdir],
            readonly=[*python_roots(env.python), *self.config.readonly_paths],
            network=request.network,
            gpus=lease.devices,
            limits=request.limits,
        )
        await log.note(self._confinement_note(request))
        code = await stream_process(
            self.confinement.wrap(argv, jail),
            env=self.test_env(env, lease, src, home, tmp),
            cwd=src,
            on_line=log.write,
            timeout_s=request.timeout_s,
            kill_grace_s=self.config.kill_grace_s,
        )
        report, text = await asyncio.to_thread(self._read_junit, junit, src)
        return code, report, text

    def _read_junit(self, path: Path, src: Path) -> tuple[JUnitReport, str | None]:
        """The report the tests wrote: their own file, so a link (to the bot's key, say) or
        anything but a regular file is refused, and no more than the limit is read."""
        limit = self.config.junit_limit_bytes
        try:
            data = read_untrusted(path, limit)
        except FileNotFoundError:
            return JUnitReport(error="pytest wrote no JUnit report"), None
        except OSError as exc:
            return JUnitReport(error=f"the JUnit report could not be read: {exc.strerror}"), None
        if len(data) > limit:
            return JUnitReport(error=f"the JUnit report is over {limit} bytes; not kept"), None
        return parse_junit(data, root=src), data.decode("utf-8", "replace")

    def _confinement_note(self, request: JobRequest) -> str:
        if not self.confinement.confined:
            return f"NOT confined: {self.confinement.reason}"
        network = "on" if request.network else "off (loopback only)"
        return f"confined: this job's folder only, network {network}"

    def _keep(self, request: JobRequest, log: BoundedLog, junit_text: str | None) -> None:
        if request.artifacts_dir is None:
            return
        request.artifacts_dir.mkdir(parents=True, exist_ok=True)
        (request.artifacts_dir / "log.txt").write_text(log.text())
        if junit_text is not None:
            (request.artifacts_dir / "junit.xml").write_text(junit_text)

    # -- benchmarks -----------------------------------------------------------------------

    async def _benchmark(
        self,
        request: BenchmarkRequest,
        log: BoundedLog,
        timings: dict[str, float],
        started: float,
        workdir: Path,
    ) -> JobOutcome:
        """The repository's benchmark command, `repeats` times on the pinned commit as it is,
        each repeat as confined as a test run and within the job's time limit; the outcome's
        `result` holds every repeat's metrics file as text, in order."""
        what = (
            f"benchmark {' '.join(request.command)} × {request.repeats} on {request.machine_type}"
        )
        home, tmp, src, tested, env = await self._prepare(request, what, log, timings, workdir)

        phase = time.monotonic()
        outputs: list[str] = []
        async with self.pool.lease(request.machine_type, on_wait=self._waiting(log)) as lease:
            timings["wait"] = round(time.monotonic() - phase, 3)
            phase = time.monotonic()
            for repeat in range(1, request.repeats + 1):
                text, problem = await self._repeat(
                    request, repeat, env, lease, src, home, tmp, workdir, log
                )
                if problem is not None:
                    timings["benchmark"] = round(time.monotonic() - phase, 3)
                    reason = log.redact(problem)
                    await log.note(f"error: {reason}")
                    self._keep(request, log, None)
                    return self._outcome("error", reason, log, started, timings, tested_sha=tested)
                outputs.append(text)
                if sum(len(o) for o in outputs) > self.config.metrics_total_bytes:
                    timings["benchmark"] = round(time.monotonic() - phase, 3)
                    reason = (
                        f"the metrics files of {repeat} repeats are over"
                        f" {self.config.metrics_total_bytes} bytes together; not kept"
                    )
                    await log.note(f"error: {reason}")
                    self._keep(request, log, None)
                    return self._outcome("error", reason, log, started, timings, tested_sha=tested)
            timings["benchmark"] = round(time.monotonic() - phase, 3)
        reason = f"{request.repeats} repeat(s) measured"
        await log.note(f"passed: {reason}")
        self._keep(request, log, None)
        return self._outcome(
            "passed",
            reason,
            log,
            started,
            timings,
            tested_sha=tested,
            exit_code=0,
            result={"outputs": outputs},
        )

    async def _repeat(
        self,
        request: BenchmarkRequest,
        repeat: int,
        env: PythonEnv,
        lease: Lease,
        src: Path,
        home: Path,
        tmp: Path,
        workdir: Path,
        log: BoundedLog,
    ) -> tuple[str, str | None]:
        """One run of the command: the text of the metrics file it wrote, or why there is
        none (what the command printed first, for the run's page)."""
        which = f"repeat {repeat} of {request.repeats}"
        output = workdir / f"metrics-{repeat}.json"
        clear_path(output)  # an earlier repeat could have put something there
        argv = request.argv(str(env.python), str(output))
        jail = Jail(
            cwd=src,
            writable=[workdir],
            readonly=[*python_roots(env.python), *self.config.readonly_paths],
            network=request.network,
            gpus=lease.devices,
            limits=request.limits,
        )
        if repeat == 1:
            await log.note(self._confinement_note(request))
        await log.note(f"{which}: $ {' '.join(argv)}")
        printed: list[str] = []

        async def on_line(line: str) -> None:
            if len(printed) < self.config.reason_lines:
                printed.append(line[:300])
            await log.write(line)

        def began() -> str:
            lines = [ln for ln in printed if ln.strip()]
            return "; its output began:\n" + "\n".join(lines) if lines else "; it printed nothing"

        try:
            code = await stream_process(
                self.confinement.wrap(argv, jail),
                env=self.test_env(env, lease, src, home, tmp),
                cwd=src,
                on_line=on_line,
                timeout_s=request.timeout_s,
                kill_grace_s=self.config.kill_grace_s,
            )
        except TimeoutError:
            return "", f"{which} timed out after {request.timeout_s:g} s{began()}"
        if code != 0:
            return "", f"{which}: the benchmark command exited with {code}{began()}"
        limit = self.config.metrics_limit_bytes
        try:
            data = await asyncio.to_thread(read_untrusted, output, limit)
        except FileNotFoundError:
            return "", (
                f"{which} wrote no metrics file (the command's {OUTPUT_PLACEHOLDER} names where"
                f" it goes){began()}"
            )
        except OSError as exc:
            return "", f"{which}: its metrics file could not be read: {exc.strerror}"
        if len(data) > limit:
            return "", f"{which}: its metrics file is over {limit} bytes; not kept"
        return await judge_metrics(request, which, data, self.config.reason_lines)


def _check_tip(ref: str, tip: str | None, pinned: str) -> None:
    if tip is None:
        raise JobError(f"head moved: the branch {ref} no longer exists in the head repository")
    if tip != pinned:
        raise JobError(
            f"head moved: {ref} is now at {tip[:12]}, not the approved commit {pinned[:12]};"
            " nothing newer than the approved commit runs, so a maintainer must approve again"
        )


def _missing_hint(request: RunRequest, env: PythonEnv) -> str:
    """Where the missing module's package would come from, named as the operator or the
    repository's maintainers set it."""
    if env.key is None:  # an interpreter the operator chose; nothing was built
        return (
            f"install it in the interpreter BOT_TEST_PYTHON names ({env.python}), or unset"
            " BOT_TEST_PYTHON so the environment is built from the repository's dependency files"
        )
    if request.extras is None:
        chosen = "unset, so every group was installed"
    elif request.extras:
        chosen = "now " + ", ".join(f'"{e}"' for e in request.extras)
    else:
        chosen = "now [], so none was installed"
    return (
        "add the package that provides it to the project's dependencies or to an optional"
        " dependency group in pyproject.toml; `[slow_ci] extras` in .github/bot.toml chooses"
        f" the groups the test environment installs ({chosen})"
    )


def clear_path(path: Path) -> None:
    """Nothing at `path` any more, whatever a job left there (a file, a link, a folder)."""
    if path.is_dir() and not path.is_symlink():
        remove_tree(path)
    else:
        path.unlink(missing_ok=True)


def make_workdir(parent: Path | None, prefix: str) -> Path:
    """A fresh job directory (absolute, so no step depends on the bot's working directory)."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent)).absolute()


def read_untrusted(path: Path, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of a file a job wrote, refusing links and special files: the
    job could have put a link to any of the bot's files in its place."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "failed"


def remove_tree(path: Path) -> None:
    """Remove a checkout even where tests made files or folders read-only."""

    def unlock(_func: object, name: str, _exc: object) -> None:
        target = Path(name)
        with contextlib.suppress(OSError):
            target.parent.chmod(stat.S_IRWXU)
            if target.is_dir() and not target.is_symlink():
                target.chmod(stat.S_IRWXU)
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink()

    if path.exists():
        shutil.rmtree(path, onerror=unlock)
