"""The sandbox's GitHub Actions runner: a dispatched run really runs its test step.

A run is created `queued` by the dispatch endpoint; here it is announced (`workflow_run`
requested, `workflow_job` queued), picked up by one of a few sandbox runners (`in_progress`, a
`runner_name`, the labels its `runs-on` asked for), and its test step runs the way the spec's
`slow-tests.yml` does: the pinned `sha` is fetched from the sandbox's own git repository into a
temporary folder and verified, then the runners' one pytest command line
(`bot/jobs/runners/pytest_command.py`, the one `slow-tests.yml` writes in shell) runs on
`tests/<folder>` (or the node ids of the `tests` input) in its own process group with a
minimal environment (no token, nothing of the bot's), within a time limit. The reports (`junit.xml`,
`log.txt`) become the artifact `slow-tests-<correlation>` whether the tests passed or not, as an
`if: always()` upload does; then the job and the run complete (`workflow_job`/`workflow_run`
completed). Exit 0 or 5 (nothing collected) is `success`, a time-out `timed_out`, a cancel
through the API kills the process group and ends `cancelled`, anything else is `failure`.

A workflow whose inputs are `benchmarks.yml`'s runs that workflow's steps instead: its report
folder first (so its upload always has something), the inputs checked with the workflow's own
messages, the pinned checkout, then the command `repeats` times with `{output}` and a first word
`python` in place (`benchmark_argv`, the argv every runner of the bot runs), each repeat within
its time limit, its output in `log.txt` after a `[benchmark] repeat` line and one
`[benchmark] error:` line where it stopped; the artifact `benchmarks-<correlation>` holds the
metrics files and `log.txt`. A test can make the next runs lose their runner
(`SandboxGitHub.lose_runner`): picked up, then gone before any step, the job failed or cancelled
with GitHub's words for it and no artifact.

Everything here runs on the event loop, with subprocesses awaited, so the sandbox keeps
answering while tests run; a semaphore bounds how many run at once, as a pool of runners would.
Webhooks go to the target the harness set (`SandboxGitHub.webhook_target`), signed, in order per
run, each after the state it describes is visible to a poll; one that a test dropped is recorded
but never sent, and one that cannot be delivered (the bot is down) is lost, as on GitHub.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from bot.clients.git import git_env
from bot.jobs.runners.actions import (
    ARTIFACT_PREFIX,
    BENCHMARK_ARTIFACT_PREFIX,
    BENCHMARK_INPUTS,
    ERROR_MARK,
    REPEAT_MARK,
)
from bot.jobs.runners.base import (
    OUTPUT_PLACEHOLDER,
    BoundedLog,
    benchmark_argv,
    run_captured,
    stream_process,
)
from bot.jobs.runners.pytest_command import PYTEST_ENV, pytest_argv
from tests.sandbox.http import LoopbackServer
from tests.sandbox.state import Artifact, RunHold, WebhookDelivery, WorkflowRun, now_iso
from tests.sandbox.webhooks import send_webhook

if TYPE_CHECKING:
    from tests.sandbox.github_server import SandboxGitHub

log = logging.getLogger(__name__)

ARTIFACT_RETENTION_DAYS = 90
LOG_LIMIT_BYTES = 8 * 1024 * 1024
GIT_TIMEOUT_S = 120.0
KILL_GRACE_S = 3.0
#: GitHub gives up on a delivery after ten seconds.
DELIVERY_TIMEOUT_S = 10.0
_SHA = re.compile(r"^[0-9a-f]{40}$")
_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
_CORRELATION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_REPEATS = re.compile(r"^[1-9][0-9]{0,2}$")
_SECONDS = re.compile(r"^[1-9][0-9]{0,5}$")
#: What GitHub says of a job whose runner went away, by the conclusion it gives the job.
RUNNER_LOST = {
    "failure": (
        "The self-hosted runner: {runner} lost communication with the server. Verify the"
        " machine is running and has a healthy network connection. Anything in your workflow"
        " that terminates the runner process, starves it for CPU/Memory, or blocks its network"
        " access can cause this error."
    ),
    "cancelled": (
        "The runner has received a shutdown signal. This can happen when the runner service is"
        " stopped, or a manually started runner is canceled."
    ),
}
_AZURE_ERROR = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error>"
)


# --------------------------------------------------------------------------- blob storage


@dataclass
class _Blob:
    data: bytes
    content_type: str
    expires_at: float


class BlobStorage(LoopbackServer):
    """Where GitHub's download links point: another origin than the API (a port of its own),
    unauthenticated links that expire, and a refusal of any `Authorization` header, as Azure's
    blob storage refuses a GitHub token. A client that follows the API's 302 with aiohttp drops
    its token on the way (the origin changes), as it does against GitHub."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._blobs: dict[str, _Blob] = {}
        self._lock = threading.Lock()  # links are made on the API's worker threads

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_sandbox/{kind}/{name}", self.serve)
        return app

    def link(self, kind: str, data: bytes, content_type: str, suffix: str) -> str:
        """A URL that serves `data` for `ttl_s` seconds to anyone who has it."""
        if not self.url:
            raise RuntimeError("the sandbox's blob storage is not started")
        name = secrets.token_urlsafe(24) + suffix
        now = time.time()
        with self._lock:
            for key in [k for k, blob in self._blobs.items() if blob.expires_at <= now]:
                del self._blobs[key]
            self._blobs[f"{kind}/{name}"] = _Blob(data, content_type, now + self.ttl_s)
        return f"{self.url}/_sandbox/{kind}/{name}"

    def expire_links(self) -> None:
        """Every link given so far stops working, as a minute passing would."""
        with self._lock:
            for blob in self._blobs.values():
                blob.expires_at = 0.0

    async def serve(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            return _azure_error(
                400,
                "InvalidAuthenticationInfo",
                "Authentication information is not given in the correct format. Check the value"
                " of Authorization header.",
            )
        key = f"{request.match_info['kind']}/{request.match_info['name']}"
        with self._lock:
            blob = self._blobs.get(key)
        if blob is None:
            return _azure_error(404, "BlobNotFound", "The specified blob does not exist.")
        if blob.expires_at <= time.time():
            return _azure_error(
                403, "AuthenticationFailed", "Signature not valid in the specified time frame."
            )
        return web.Response(body=blob.data, content_type=blob.content_type)


def _azure_error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=_AZURE_ERROR.format(code=code, message=message),
        content_type="application/xml",
    )


# --------------------------------------------------------------------------- one run


@dataclass
class _Execution:
    """What one run's steps leave behind for its end: logs, the reports folder, how far it got."""

    full_name: str
    run_id: int
    workspace: Path
    job_log: BoundedLog = field(default_factory=lambda: BoundedLog(LOG_LIMIT_BYTES))
    test_log: BoundedLog = field(default_factory=lambda: BoundedLog(LOG_LIMIT_BYTES))
    #: the reports folder exists, so the `if: always()` upload has something to upload
    reports_made: bool = False
    #: the artifact's name before the correlation id
    artifact_prefix: str = ARTIFACT_PREFIX
    #: the runner went away: no step after that one ran, the upload neither
    lost: bool = False

    @property
    def reports(self) -> Path:
        return self.workspace / "reports"

    async def say(self, line: str) -> None:
        await self.job_log.write(line)

    async def test_output(self, line: str) -> None:
        await self.test_log.write(line)
        await self.job_log.write(line)


class Actions:
    """Runs the sandbox's dispatched workflow runs; one per `SandboxGitHub`."""

    def __init__(self, hub: SandboxGitHub) -> None:
        self.hub = hub
        self.blobs = BlobStorage()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._work: dict[int, asyncio.Task[str]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._free: list[int] = []
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """On the sandbox's start-up: the loop runs are scheduled on, the runners, the storage."""
        self._loop = asyncio.get_running_loop()
        self._closed = False
        if not self.blobs.url:
            await self.blobs.start()

    async def close(self) -> None:
        """Stops every run where it is (its processes killed, no more webhooks) and the storage."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.blobs.close()
        self.blobs.url = ""  # a sandbox started again serves its storage afresh

    def launch(self, full_name: str, run_id: int) -> None:
        """Starts a run that the dispatch endpoint created; callable from any thread."""
        self._require_loop().call_soon_threadsafe(self._spawn, full_name, run_id)

    def cancel(self, run_id: int) -> None:
        """Interrupts a run whose `cancel_requested` is set; callable from any thread."""
        self._require_loop().call_soon_threadsafe(self._interrupt, run_id)

    async def idle(self, within: float) -> None:
        """Returns once every dispatched run completed and its last webhook went out."""
        hub = self.hub
        async with asyncio.timeout(within):
            while True:
                with hub.lock:
                    running = any(
                        run.status != "completed"
                        for repo in hub.repos.values()
                        for run in repo.workflow_runs.values()
                    )
                tasks = [task for task in self._tasks.values() if not task.done()]
                if not running and not tasks:
                    return
                if tasks:
                    await asyncio.wait(tasks, timeout=0.1)
                else:
                    await asyncio.sleep(0.02)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the sandbox GitHub is not serving: start() it first")
        return self._loop

    def _spawn(self, full_name: str, run_id: int) -> None:
        if self._closed:
            return
        task = asyncio.create_task(self._lifecycle(full_name, run_id), name=f"sandbox-run-{run_id}")
        self._tasks[run_id] = task
        task.add_done_callback(lambda done: self._forget(run_id, done))

    def _forget(self, run_id: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(run_id) is task:
            del self._tasks[run_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox workflow run %s broke", run_id, exc_info=task.exception())

    def _interrupt(self, run_id: int) -> None:
        work = self._work.get(run_id)
        if work is not None:
            work.cancel()

    def _run(self, full_name: str, run_id: int) -> WorkflowRun:
        return self.hub.repo(full_name).workflow_runs[run_id]

    # ------------------------------------------------------------------ the run's life

    async def _lifecycle(self, full_name: str, run_id: int) -> None:
        execution = _Execution(full_name, run_id, self.hub.root / "actions" / f"run-{run_id}")
        try:
            conclusion = await self._execute(execution)
            await self._finish(execution, conclusion)
        finally:  # also when the sandbox closes mid-run
            await asyncio.to_thread(shutil.rmtree, execution.workspace, ignore_errors=True)

    async def _execute(self, execution: _Execution) -> str:
        """Announces the queued run, then runs its steps until they end or a cancel stops them;
        returns the conclusion. Closing the sandbox stops it without one."""
        hub = self.hub
        full_name, run_id = execution.full_name, execution.run_id
        await self._announce(full_name, run_id, "workflow_run", "requested")
        await self._announce(full_name, run_id, "workflow_job", "queued")
        with hub.lock:
            run = self._run(full_name, run_id)
            hold, cancelled = run.hold, run.cancel_requested
        if hold is not None:
            hold.reached.set()
        if cancelled:
            return "cancelled"
        work = asyncio.create_task(self._steps(execution, hold))
        self._work[run_id] = work
        try:
            return await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the sandbox is closing: nothing more happens to this run
            await execution.say("##[error]The operation was canceled.")
            return "cancelled"
        except Exception as exc:  # a bug of the sandbox shows in the run, not as a hang
            log.exception("sandbox workflow run %s failed to run", run_id)
            await execution.say(f"##[error]The sandbox runner failed: {exc!r}")
            return "failure"
        finally:
            self._work.pop(run_id, None)

    async def _steps(self, execution: _Execution, hold: RunHold | None) -> str:
        """Waits for a hold and a free runner, then runs the job; returns the conclusion."""
        if hold is not None:
            await hold.released.wait()
        hub = self.hub
        with hub.lock:
            run = self._run(execution.full_name, execution.run_id)
            startup_error = run.startup_error
        if startup_error is not None:
            await execution.say(f"##[error]{startup_error}")
            return "failure"
        if self._slots is None:  # sized on first use, so a test may set it after start()
            size = max(1, int(hub.actions_concurrency))
            self._slots = asyncio.Semaphore(size)
            self._free = list(range(1, size + 1))
        async with self._slots:
            slot = self._free.pop(0)
            try:
                await self._pick_up(execution, slot)
                with hub.lock:
                    lost = hub.take_lost_runner()
                    inputs = self._run(execution.full_name, execution.run_id).inputs
                if lost is not None:
                    execution.lost = True
                    message = RUNNER_LOST[lost].format(runner=f"sandbox-runner-{slot}")
                    await execution.say(f"##[error]{message}")
                    return lost
                if set(BENCHMARK_INPUTS) <= set(inputs):
                    return await self._benchmark_step(execution, f"sandbox-runner-{slot}")
                return await self._test_step(execution)
            finally:
                self._free.append(slot)
                self._free.sort()

    async def _pick_up(self, execution: _Execution, slot: int) -> None:
        hub = self.hub
        name = f"sandbox-runner-{slot}"
        with hub.lock:
            run = self._run(execution.full_name, execution.run_id)
            stamp = now_iso()
            run.status, run.updated_at = "in_progress", stamp
            run.job.status, run.job.runner_name, run.job.started_at = "in_progress", name, stamp
            labels = ", ".join(run.job.labels)
        await execution.say("Current runner version: 'sandbox'")
        await execution.say(f"Runner name: '{name}'")
        await execution.say(f"Runner labels: {labels}")
        await self._announce(execution.full_name, execution.run_id, "workflow_run", "in_progress")
        await self._announce(execution.full_name, execution.run_id, "workflow_job", "in_progress")

    async def _test_step(self, execution: _Execution) -> str:
        hub = self.hub
        with hub.lock:
            repo = hub.repo(execution.full_name)
            run = repo.workflow_runs[execution.run_id]
            inputs = dict(run.inputs)
            bare = repo.git.path
            python, timeout_s = hub.actions_python, float(hub.actions_timeout_s)
        sha, folder = inputs.get("sha", ""), inputs.get("folder", "")
        problem = _refused_inputs(sha, folder, inputs.get("tests", ""))
        if problem is not None:
            await execution.say(f"##[error]{problem}")
            return "failure"
        home, src = execution.workspace / "home", execution.workspace / "src"
        for folder_path in (home, src, execution.reports):
            folder_path.mkdir(parents=True, exist_ok=True)
        if hub.actions_test_step is not None:
            code, junit, text = hub.actions_test_step(inputs)
            (execution.reports / "junit.xml").write_text(junit)
            for line in text.splitlines():
                await execution.test_output(line)
            execution.reports_made = True
            return "success" if code in (0, 5) else "failure"
        if not await self._checkout(execution, bare, src, home, sha):
            return "failure"
        targets = inputs.get("tests", "").split() or [f"tests/{folder}"]
        argv = pytest_argv(python, execution.reports / "junit.xml", targets)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(home),
            "PYTHONDONTWRITEBYTECODE": "1",
            **PYTEST_ENV,
        }
        # As the step shows it: the workflow's command, the reports folder under its checkout.
        as_written = pytest_argv("python", "reports/junit.xml", targets)
        shown = [*(f"{k}={v}" for k, v in PYTEST_ENV.items()), *as_written]
        await execution.say(f"##[group]Run {' '.join(shown)}")
        await execution.say("##[endgroup]")
        execution.reports_made = True
        try:
            code = await stream_process(
                argv,
                env=env,
                cwd=src,
                on_line=execution.test_output,
                timeout_s=timeout_s,
                kill_grace_s=KILL_GRACE_S,
            )
        except TimeoutError:
            await execution.say(
                f"##[error]The job has exceeded the maximum execution time of {timeout_s:g}s"
            )
            return "timed_out"
        if code in (0, 5):
            return "success"
        await execution.say(f"##[error]Process completed with exit code {code}.")
        return "failure"

    async def _benchmark_step(self, execution: _Execution, runner: str) -> str:
        """`benchmarks.yml` from its first step to its last before the upload."""
        hub = self.hub
        with hub.lock:
            repo = hub.repo(execution.full_name)
            inputs = dict(repo.workflow_runs[execution.run_id].inputs)
            bare = repo.git.path
            python = hub.actions_python
        execution.artifact_prefix = BENCHMARK_ARTIFACT_PREFIX
        execution.reports.mkdir(parents=True, exist_ok=True)
        execution.reports_made = True
        await execution.test_log.write(f"[benchmark] on runner {runner}")

        async def fail(problem: str) -> str:
            await execution.say(f"##[error]{problem}")
            await execution.test_log.write(f"{ERROR_MARK}{problem}")
            return "failure"

        problem = refused_benchmark_inputs(inputs)
        if problem is not None:
            return await fail(problem)
        command = json.loads(inputs["command"])
        home, src = execution.workspace / "home", execution.workspace / "src"
        for folder_path in (home, src):
            folder_path.mkdir(parents=True, exist_ok=True)
        if not await self._checkout(execution, bare, src, home, inputs["sha"]):
            return "failure"
        repeats, timeout_s = int(inputs["repeats"]), inputs["timeout_s"]
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(home),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for repeat in range(1, repeats + 1):
            which = f"repeat {repeat} of {repeats}"
            output = execution.reports / f"metrics-{repeat}.json"
            output.unlink(missing_ok=True)
            argv = benchmark_argv(command, python, str(output))
            await execution.test_output(f"{REPEAT_MARK}{repeat} of {repeats}: $ {' '.join(argv)}")
            try:
                code = await stream_process(
                    argv,
                    env=env,
                    cwd=src,
                    on_line=execution.test_output,
                    timeout_s=float(timeout_s),
                    kill_grace_s=KILL_GRACE_S,
                )
            except TimeoutError:
                return await fail(f"{which} timed out after {timeout_s} s")
            except OSError as exc:  # as `timeout` says it: 127 not found, 126 not runnable
                await execution.test_output(f"timeout: failed to run command {argv[0]!r}: {exc}")
                code = 127 if isinstance(exc, FileNotFoundError) else 126
            if code != 0:
                status = 128 - code if code < 0 else code  # a signal, as bash counts it
                return await fail(f"{which}: the benchmark command exited with {status}")
            if output.is_symlink() or not output.is_file():
                return await fail(
                    f"{which} wrote no metrics file (the command's {OUTPUT_PLACEHOLDER} names"
                    " where it goes)"
                )
        return "success"

    async def _checkout(
        self, execution: _Execution, bare: Path, src: Path, home: Path, sha: str
    ) -> bool:
        """actions/checkout of the pinned commit (no credentials kept), then the spec's check
        that HEAD is that commit."""
        env = git_env(home)
        await execution.say("##[group]Run actions/checkout@v4")
        steps = (
            ["git", "init", "-q", str(src)],
            ["git", "-C", str(src), "fetch", "-q", "--no-tags", str(bare), sha],
            ["git", "-C", str(src), "-c", "advice.detachedHead=false", "checkout", "-q", sha],
        )
        for argv in steps:
            code, out, err = await run_captured(
                argv, env=env, cwd=execution.workspace, timeout_s=GIT_TIMEOUT_S
            )
            for line in (out + err).splitlines():
                await execution.say(line)
            if code != 0:
                if argv[3] == "fetch":
                    await execution.say(
                        f"##[error]The commit {sha} is not in {execution.full_name}"
                    )
                else:
                    await execution.say(f"##[error]git {argv[3]} failed with exit code {code}")
                return False
        code, out, _ = await run_captured(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            env=env,
            cwd=execution.workspace,
            timeout_s=GIT_TIMEOUT_S,
        )
        head = out.strip()
        await execution.say("##[endgroup]")
        if code != 0 or head != sha:
            await execution.say(f"##[error]HEAD is {head or 'unknown'}, not the pinned {sha}")
            return False
        await execution.say(f"HEAD is {sha}")
        return True

    async def _finish(self, execution: _Execution, conclusion: str) -> None:
        """The upload step (`if: always()`, once the test step began), then the job and the run
        complete, each announced after the change is visible."""
        hub = self.hub
        full_name, run_id = execution.full_name, execution.run_id
        if execution.reports_made and not execution.lost:
            data = _zip_reports(execution.reports, execution.test_log.text())
            with hub.lock:
                repo = hub.repo(full_name)
                run = repo.workflow_runs[run_id]
                correlation = run.inputs.get("correlation", "")
                suffix = correlation if _CORRELATION.match(correlation) else str(run_id)
                stamp = datetime.now(UTC)
                artifact = Artifact(
                    id=hub.next_id(),
                    name=f"{execution.artifact_prefix}{suffix}",
                    run_id=run_id,
                    data=data,
                    digest="sha256:" + hashlib.sha256(data).hexdigest(),
                    created_at=stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    expires_at=(stamp + timedelta(days=ARTIFACT_RETENTION_DAYS)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                )
                repo.artifacts[artifact.id] = artifact
                run.artifacts.append(artifact.id)
            await execution.say("##[group]Run actions/upload-artifact@v4")
            await execution.say(
                f"Artifact {artifact.name} has been successfully uploaded! Final size is"
                f" {len(data)} bytes. Artifact ID is {artifact.id}"
            )
            await execution.say("##[endgroup]")
        await execution.say(f"Job completed: {conclusion}")
        with hub.lock:
            run = self._run(full_name, run_id)
            stamp_iso = now_iso()
            job = run.job
            job.status, job.conclusion, job.completed_at = "completed", conclusion, stamp_iso
            job.log = execution.job_log.text()
            run.updated_at = stamp_iso
        await self._announce(full_name, run_id, "workflow_job", "completed")
        with hub.lock:
            run = self._run(full_name, run_id)
            run.status, run.conclusion, run.updated_at = "completed", conclusion, now_iso()
        await self._announce(full_name, run_id, "workflow_run", "completed")

    # ------------------------------------------------------------------ webhooks

    async def _announce(self, full_name: str, run_id: int, event: str, action: str) -> None:
        hub = self.hub
        if event == "workflow_run":
            payload = hub.payloads.workflow_run(full_name, run_id, action)
        else:
            payload = hub.payloads.workflow_job(full_name, run_id, action)
        with hub.lock:
            dropped = hub.take_dropped_webhook(event, action)
            url, secret = hub.webhook_url, hub.webhook_secret
        delivery_id = str(uuid.uuid4())
        status: int | None = None
        if not dropped and url and secret:
            try:
                sent = await send_webhook(
                    self._client(),
                    url,
                    event,
                    payload,
                    secret,
                    delivery_id=delivery_id,
                    app_id=hub.app_id,
                )
                status = sent.status
            except (aiohttp.ClientError, TimeoutError, OSError):
                status = 0  # GitHub records a failed delivery and goes on
        with hub.lock:
            hub.webhook_deliveries.append(
                WebhookDelivery(event, action, payload, delivery_id, status, dropped=dropped)
            )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
            )
        return self._session


def _refused_inputs(sha: str, folder: str, tests: str) -> str | None:
    """The checks `slow-tests.yml` makes before it runs anything, as the reason it stopped."""
    if not _SHA.match(sha):
        return f"sha must be a full 40-hex commit id, not {sha!r}"
    if not _FOLDER.match(folder) or ".." in folder.split("/"):
        return f"folder must be a test folder under tests/, not {folder!r}"
    for node in tests.split():
        path = node.split("::", 1)[0]
        if not path.startswith(f"tests/{folder}/") or ".." in path.split("/"):
            return f"test {node!r} is not a node id under tests/{folder}/"
    return None


def refused_benchmark_inputs(inputs: dict[str, str]) -> str | None:
    """The checks `benchmarks.yml` makes before it checks anything out, in its words (a test
    runs the workflow's own scripts on the same inputs and compares)."""
    if not _SHA.match(inputs.get("sha", "")):
        return "sha: expected 40 lowercase hex digits"
    if not _HEX16.match(inputs.get("correlation", "")):
        return "correlation: expected 16 hex digits"
    repeats = inputs.get("repeats", "")
    if not _REPEATS.match(repeats) or int(repeats) > 100:
        return "repeats: expected a number from 1 to 100"
    if not _SECONDS.match(inputs.get("timeout_s", "")):
        return "timeout_s: expected a number of seconds"
    if inputs.get("machine_type") not in ("single-gpu", "multi-gpu"):
        return "machine_type: expected single-gpu or multi-gpu"
    try:
        words = json.loads(inputs.get("command", ""))
    except ValueError:
        return "command: expected a JSON array of words"
    if not isinstance(words, list) or not words or len(words) > 64:
        return "command: expected a JSON array of 1 to 64 words"
    if not all(isinstance(word, str) and "\0" not in word for word in words):
        return "command: expected words that are strings without NUL"
    if not words[0]:
        return "command: the first word must name the program to run"
    if not any(OUTPUT_PLACEHOLDER in word for word in words):
        return "command: no word names {output}, where a repeat writes its metrics"
    return None


def _zip_reports(reports: Path, log_text: str) -> bytes:
    """The report folder as upload-artifact zips it: its files at the root (a link or a folder
    left out), `log.txt` the tee'd output."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with contextlib.suppress(OSError):
            for path in sorted(reports.iterdir()):
                if path.name != "log.txt" and path.is_file() and not path.is_symlink():
                    archive.writestr(path.name, path.read_bytes())
        archive.writestr("log.txt", log_text)
    return buffer.getvalue()
