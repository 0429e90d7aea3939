"""The `github-actions` runner: slow jobs handed to a fleet of self-hosted GPU runners that
GitHub Actions already schedules, instead of a scheduler of the bot's own.

A job is one `workflow_dispatch` of the repository's `slow-tests.yml` (on the default branch,
so the workflow that runs is the reviewed one, never the pull request's) with the folder, the
machine type's runner labels and the pinned SHA as inputs. The dispatch answers the workflow
run's id (`return_run_details`); where an older GitHub Enterprise Server refuses that, the run
is found by the correlation id its name carries. Never by timing: two dispatches a second apart
are told apart by name alone.

The run is followed through `workflow_run` / `workflow_job` webhooks (`observe`), and polled when
nothing has been heard for a while, so a lost delivery delays a result by a poll interval at
most. At the end the job's JUnit XML and log come from its artifact, and the outcome is what the
local runner would have said: the comment, the status, the run page and Slack do not care which
runner ran the job. A bot restart does not cancel anything on GitHub: the job, queued again,
finds its workflow run by its correlation id and follows it on.

The artifact is written by the pull request's code, so it is read as hostile input: downloaded
to a temporary file with its size capped, its zip directory checked before zipfile reads it,
only stored or deflated members opened (their decompressors are the ones that stop after a
chunk), every member streamed in chunks with the bytes it really yields counted against a cap,
the log kept as head and tail while it streams, and all of that in a worker thread.

A benchmark job (`BenchmarkRequest`) is one dispatch of `benchmarks.yml` the same way: the
command as a JSON argv, the repeats and the commit as inputs, every repeat's `metrics-<n>.json`
back in its artifact, judged by the feature's reader as the local runner judges them. That
workflow uploads its artifact whatever happens after its first step, so a run that failed or was
cancelled without one, after a runner took it, lost its runner: the job is dispatched once more
(a second correlation id), and only a second loss ends it in `error`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import io
import json
import logging
import math
import re
import struct
import tempfile
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar
from urllib.parse import quote

import aiohttp
import gidgethub

from bot.clients.github import API_HEADERS, USER_AGENT, GitHubAPI, new_session
from bot.jobs.runners.base import (
    OUTPUT_PLACEHOLDER,
    BenchmarkRequest,
    BoundedLog,
    JobOutcome,
    JobRequest,
    JobState,
    LogSink,
    RunRequest,
    judge_metrics,
    resolve_token,
)
from bot.jobs.runners.junit import MAX_JUNIT_BYTES, JUnitReport, parse_junit
from bot.jobs.runners.verdict import WORKFLOW_CANCELLED, Ending, verdict

log = logging.getLogger(__name__)

NAME = "github-actions"
#: The `workflow_dispatch` inputs every dispatch sends; `slow-tests.yml` declares exactly these.
WORKFLOW_INPUTS = (
    "folder",
    "machine_type",
    "sha",
    "run_id",
    "job_id",
    "correlation",
    "runner_labels",
    "tests",
    "pr",
)
#: The artifact the workflow uploads: `junit.xml` and `log.txt` at the root of its zip.
ARTIFACT_PREFIX = "slow-tests-"
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
#: A workflow a setting names: a file name in `.github/workflows/`, nothing that climbs out.
WORKFLOW_FILE = re.compile(r"[A-Za-z0-9_.-]+\.ya?ml")

#: The workflow a benchmark job dispatches unless `[benchmarks] workflow` names another.
BENCHMARK_WORKFLOW = "benchmarks.yml"
#: The `workflow_dispatch` inputs of a benchmark job; `benchmarks.yml` declares exactly these.
BENCHMARK_INPUTS = (
    "sha",
    "command",
    "repeats",
    "timeout_s",
    "machine_type",
    "runner_labels",
    "run_id",
    "job_id",
    "correlation",
)
#: The benchmark's artifact: `metrics-<n>.json` per repeat and `log.txt` at the root of its zip.
BENCHMARK_ARTIFACT_PREFIX = "benchmarks-"
#: What `benchmarks.yml` writes into its `log.txt` before each repeat, and where it stopped; the
#: runner reads them for the job's reason.
REPEAT_MARK = "[benchmark] repeat "
ERROR_MARK = "[benchmark] error: "
#: What a benchmark run may take besides its repeats: the checkout and the test environment.
BENCHMARK_SETUP_S = 3600.0
#: How much of a failing command's output a benchmark job's reason quotes, as the local runner.
REASON_LINES = 10

_RUN_STATES = ("queued", "in_progress", "completed")


@dataclass(frozen=True)
class ArtifactLimits:
    """What one run's artifact may cost the bot, whatever the code that wrote it intended."""

    #: the zip as downloaded
    download_bytes: int = MAX_ARTIFACT_BYTES
    #: files in the zip: zipfile holds the whole directory in memory before any is opened
    members: int = 100
    #: `junit.xml` once decompressed; past it the report is refused
    junit_bytes: int = MAX_JUNIT_BYTES
    #: `log.txt` once decompressed; past it the rest is not read (a bomb takes CPU, not memory)
    log_bytes: int = 256 * 1024 * 1024
    #: of `log.txt`, the head and the tail kept: under the job log's own 2 MiB bound, so that
    #: the log as stored shows one cut, the one said here
    log_keep_bytes: int = 1536 * 1024
    #: a benchmark's `metrics-<n>.json` once decompressed, and all of its repeats' together:
    #: they travel in the job's row, bounded as the local runner bounds them
    metrics_bytes: int = 1024 * 1024
    metrics_total_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class ActionsConfig:
    api_url: str = "https://api.github.com"
    #: Ask GitHub for a run's state when no webhook about it came for this long.
    poll_s: float = 60.0
    #: How long a dispatched run may take to show up in the list (the older-GHES fallback).
    find_s: float = 300.0
    #: Jobs followed at once; they wait on GitHub, not on this machine.
    max_in_flight: int = 500
    #: A run still queued after this long (no runner with those labels) ends the job.
    queue_timeout_s: float = 24 * 3600.0
    #: Look for an earlier dispatch of every job, not only of restarted ones: a one-shot
    #: `bot handle` starts with an empty database each time, and a re-run must not dispatch
    #: the same jobs again.
    always_find: bool = False
    artifact: ArtifactLimits = field(default_factory=ArtifactLimits)


@dataclass
class _Watch:
    """One workflow run being followed; webhooks and polls write here, `run` reads."""

    repo: str
    run_id: int
    #: the job's client: a cancel asks GitHub with the token the job was started with
    gh: GitHubAPI | None = None
    #: a cancel was asked for: the run's end reads as cancelled, whatever GitHub concludes
    cancelled: bool = False
    status: str = "queued"
    conclusion: str | None = None
    runner_name: str | None = None
    html_url: str = ""
    heard_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    notes: list[str] = field(default_factory=list)

    def update(self, status: str | None, conclusion: str | None, runner: str | None) -> None:
        self.heard_at = time.monotonic()
        # States only move forward: a late `queued` after `in_progress` changes nothing.
        if status in _RUN_STATES and _RUN_STATES.index(status) >= _RUN_STATES.index(self.status):
            if status != self.status:
                self.notes.append(f"Actions: {status.replace('_', ' ')}")
            if status == "in_progress" and self.started_at is None:
                self.started_at = time.monotonic()
            self.status = status
            if status == "completed":
                self.conclusion = conclusion
        if runner and runner != self.runner_name:
            self.runner_name = runner
            self.notes.append(f"Actions: picked up by runner {runner}")
        self.changed.set()


@dataclass
class _Job:
    """One workflow run a job dispatches (a benchmark's second attempt is another): what every
    step of starting and following it needs."""

    gh: GitHubAPI
    request: JobRequest
    out: BoundedLog
    correlation: str
    #: the dispatch's inputs, as the workflow declares them
    inputs: dict[str, str]
    #: what the run is for, in the log's note of its dispatch
    what: str
    #: how long the run may take once a runner took it
    limit_s: float
    #: where the workflow comes from and which setting names another, for a repository without it
    adopt: str = "copy slow-tests.yml from the bot's repository, or set [slow_ci] workflow"
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)

    def outcome(self, state: JobState, reason: str, **fields: Any) -> JobOutcome:
        return JobOutcome(
            state=state,
            reason=self.out.redact(reason),
            duration_s=_since(self.started),
            log=self.out.text(),
            log_tail=self.out.tail(),
            timings=dict(self.timings),
            **fields,
        )


@dataclass(frozen=True)
class _RunnerLost:
    """A workflow run that ended without its end: the runner went away before the workflow's
    last step, so the run says nothing about the job and may be made again."""

    reason: str


_T = TypeVar("_T")
#: What a job makes of its completed workflow run: its outcome, or that the runner was lost.
_Collect = Callable[[_Job, _Watch], Awaitable[JobOutcome | _RunnerLost]]


class DispatchRefused(Exception):
    """GitHub would not start the workflow; the message says why, for the PR."""


def correlation_id(request: RunRequest) -> str:
    """Stable for one job of one run across restarts and databases: the run's key (its
    comment, label or button) and the job's folder and machine type, never a database id."""
    base = str(request.options.get("run_key") or f"{request.repo}:run-{request.run_id}")
    text = f"{request.repo}|{base}|{request.folder}|{request.machine_type}|{request.head_sha}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def runner_labels(request: JobRequest, machine_type: str) -> str:
    """The labels the machine type's runners carry, as the JSON array `runs-on` reads."""
    labels = request.options.get("labels") or {}
    wanted = labels.get(machine_type) or ("self-hosted", machine_type)
    return json.dumps(list(wanted))


def dispatch_inputs(request: RunRequest, correlation: str) -> dict[str, str]:
    inputs = {
        "folder": request.folder,
        "machine_type": request.machine_type,
        "sha": request.head_sha,
        "run_id": request.run_id,
        "job_id": request.job_id,
        "correlation": correlation,
        "runner_labels": runner_labels(request, request.machine_type),
        "tests": " ".join(request.tests),
        "pr": str(request.pull_number or ""),
    }
    assert tuple(inputs) == WORKFLOW_INPUTS
    return inputs


def benchmark_correlation(request: BenchmarkRequest, attempt: int = 1) -> str:
    """As `correlation_id`, for one attempt of a benchmark job: the run's key, the machine type,
    the commit and the branch it was approved on (a pull request's head and base differ in it
    even at one commit); a second attempt after a lost runner is a run of its own."""
    base = str(request.options.get("run_key") or f"{request.repo}:run-{request.run_id}")
    text = (
        f"{request.repo}|{base}|benchmarks|{request.machine_type}|{request.head_sha}"
        f"|{request.head_ref or ''}|attempt {attempt}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def benchmark_inputs(request: BenchmarkRequest, correlation: str) -> dict[str, str]:
    """The dispatch's inputs: the command as a JSON argv (the workflow never lets a shell read
    it), and a repeat's time limit in whole seconds."""
    inputs = {
        "sha": request.head_sha,
        "command": json.dumps(list(request.command)),
        "repeats": str(request.repeats),
        "timeout_s": str(max(1, math.ceil(request.timeout_s))),
        "machine_type": request.machine_type,
        "runner_labels": runner_labels(request, request.machine_type),
        "run_id": request.run_id,
        "job_id": request.job_id,
        "correlation": correlation,
    }
    assert tuple(inputs) == BENCHMARK_INPUTS
    return inputs


class ActionsRunner:
    """Runs jobs as workflow runs; many at once, each a coroutine waiting on GitHub."""

    name = NAME

    def __init__(self, config: ActionsConfig | None = None) -> None:
        self.config = config or ActionsConfig()
        self.max_in_flight = self.config.max_in_flight
        self._session: aiohttp.ClientSession | None = None
        self._watches: dict[tuple[str, int], _Watch] = {}
        self._by_job: dict[str, _Watch] = {}

    # -- what the job system calls ------------------------------------------------------

    async def run(
        self, request: RunRequest | BenchmarkRequest, on_log: LogSink | None = None
    ) -> JobOutcome:
        out = BoundedLog(sink=on_log)
        token = await resolve_token(request.token)
        if token:
            out.add_secret(token)
        gh = self._client(token)
        if isinstance(request, BenchmarkRequest):
            return await self._benchmark(gh, request, out)
        correlation = correlation_id(request)
        job = _Job(
            gh,
            request,
            out,
            correlation,
            dispatch_inputs(request, correlation),
            what=f"tests/{request.folder} ({request.machine_type})",
            limit_s=request.timeout_s,
        )
        workflow = str(request.options.get("workflow") or "slow-tests.yml")
        find = request.resumed or self.config.always_find
        return await self._attempt(job, workflow, find=find, collect=self._collect)

    async def cancel(self, job_id: str) -> bool:
        """Cancels the workflow run on GitHub; the job ends when GitHub says it has."""
        watch = self._by_job.get(job_id)
        if watch is None:
            return False
        watch.cancelled = True
        if watch.gh is None:
            return False
        try:
            await watch.gh.post(f"/repos/{watch.repo}/actions/runs/{watch.run_id}/cancel", data={})
        except gidgethub.BadRequest as exc:
            if exc.status_code != 409:  # 409: it had completed already
                raise
        watch.notes.append("Actions: cancel requested")
        watch.changed.set()
        return True

    def observe(self, event: str, data: Mapping[str, Any]) -> bool:
        """A `workflow_run` or `workflow_job` webhook; True when it was about a followed run."""
        repo = (data.get("repository") or {}).get("full_name")
        if event == "workflow_run":
            item = data.get("workflow_run") or {}
            run_id, runner = item.get("id"), None
        elif event == "workflow_job":
            item = data.get("workflow_job") or {}
            run_id, runner = item.get("run_id"), item.get("runner_name")
            if item.get("status") == "completed":
                # The job's end is not the run's: the artifact is uploaded by then, but the
                # run's conclusion comes with `workflow_run` (or the next poll).
                item = {"status": "in_progress"}
        else:
            return False
        watch = self._watches.get((str(repo), run_id)) if isinstance(run_id, int) else None
        if watch is None:
            return False
        watch.update(item.get("status"), item.get("conclusion"), runner)
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def following(self) -> int:
        return len(self._watches)

    # -- dispatch and find ----------------------------------------------------------------

    async def _attempt(
        self, job: _Job, workflow: str, *, find: bool, collect: _Collect
    ) -> JobOutcome | _RunnerLost:
        """One workflow run of the job, from its dispatch (or, with `find`, the run an earlier
        process dispatched) to what `collect` makes of its end."""
        out = job.out
        try:
            found = None
            if find:
                found = await self._find(job.gh, job.request.repo, workflow, job.correlation)
            if found is not None:
                await out.note(
                    f"following workflow run {found['id']} started before: {found['html_url']}"
                )
            else:
                found = await self._dispatch(job, workflow)
        except DispatchRefused as exc:
            await out.note(f"error: {out.redact(str(exc))}")
            return job.outcome("error", str(exc))
        watch = self._watch(job.request, found, job.gh)
        try:
            ended = await self._follow(job, watch)
            return ended if ended is not None else await collect(job, watch)
        finally:
            self._watches.pop((watch.repo, watch.run_id), None)
            self._by_job.pop(job.request.job_id, None)

    def _client(self, token: str | None) -> GitHubAPI:
        if self._session is None:
            self._session = new_session()
        return GitHubAPI(self._session, USER_AGENT, oauth_token=token, base_url=self.config.api_url)

    async def _dispatch(self, job: _Job, workflow: str) -> dict[str, Any]:
        gh, request, correlation, out = job.gh, job.request, job.correlation, job.out
        ref = str(request.options.get("ref") or "main")
        body: dict[str, Any] = {"ref": ref, "inputs": job.inputs}
        url = f"/repos/{request.repo}/actions/workflows/{quote(workflow, safe='')}/dispatches"
        await out.note(f"dispatching {workflow} on {ref} for {job.what}")
        try:
            answer = await gh.post(url, data={**body, "return_run_details": True})
        except gidgethub.BadRequest as exc:
            message = _message(exc)
            if exc.status_code == 422 and "return_run_details" in message:
                # An older GitHub Enterprise Server: dispatch plainly, find the run by name.
                answer = await self._post_dispatch(gh, url, body, workflow, ref, job.adopt)
            else:
                raise DispatchRefused(_refusal(exc, workflow, ref, job.adopt)) from None
        if isinstance(answer, dict) and isinstance(answer.get("workflow_run_id"), int):
            # What the dispatch answered is all a new run has: no second request for it.
            run = {
                "id": answer["workflow_run_id"],
                "status": "queued",
                "html_url": answer.get("html_url") or "",
            }
        else:
            run = await self._await_run(gh, request.repo, workflow, correlation)
        await out.note(f"workflow run {run['id']}: {run.get('html_url', '')}")
        return run

    async def _post_dispatch(
        self, gh: GitHubAPI, url: str, body: dict[str, Any], workflow: str, ref: str, adopt: str
    ) -> Any:
        try:
            return await gh.post(url, data=body)
        except gidgethub.BadRequest as exc:
            raise DispatchRefused(_refusal(exc, workflow, ref, adopt)) from None

    async def _find(
        self, gh: GitHubAPI, repo: str, workflow: str, correlation: str
    ) -> dict[str, Any] | None:
        """A run of this job dispatched before (by an earlier process), by its name."""
        url = (
            f"/repos/{repo}/actions/workflows/{quote(workflow, safe='')}/runs"
            "?event=workflow_dispatch&per_page=100"
        )
        try:
            page = await gh.getitem(url)
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return None  # no such workflow yet: the dispatch will say so
            raise
        tag = f"[{correlation}]"
        for run in page.get("workflow_runs") or ():
            if tag in str(run.get("display_title") or run.get("name") or ""):
                return run
        return None

    async def _await_run(
        self, gh: GitHubAPI, repo: str, workflow: str, correlation: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self.config.find_s
        delay = 1.0
        while True:
            run = await self._find(gh, repo, workflow, correlation)
            if run is not None:
                return run
            if time.monotonic() > deadline:
                raise DispatchRefused(
                    f"the workflow {workflow} was dispatched but no run named [{correlation}]"
                    f" appeared within {self.config.find_s:g} s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)

    # -- following ------------------------------------------------------------------------

    def _watch(self, request: JobRequest, run: Mapping[str, Any], gh: GitHubAPI) -> _Watch:
        watch = _Watch(
            request.repo,
            int(run["id"]),
            gh=gh,
            html_url=str(run.get("html_url") or ""),
        )
        self._watches[(request.repo, watch.run_id)] = watch
        self._by_job[request.job_id] = watch
        watch.update(run.get("status"), run.get("conclusion"), None)
        watch.notes.clear()
        return watch

    async def _follow(self, job: _Job, watch: _Watch) -> JobOutcome | None:
        """Until the run completed (None), or the job's end without it: no runner took the run
        in time, or it ran past the job's limit (the run is cancelled on GitHub)."""
        out = job.out
        queued_since = time.monotonic()
        while watch.status != "completed":
            watch.changed.clear()
            for note in watch.notes:
                await out.note(note)
            watch.notes.clear()
            now = time.monotonic()
            if watch.started_at is None and now - queued_since > self.config.queue_timeout_s:
                await self._cancel_quietly(job.gh, watch)
                labels = job.inputs["runner_labels"]
                reason = (
                    f"no runner took the job within {self.config.queue_timeout_s:g} s"
                    f" (labels {labels}); the workflow run was cancelled"
                )
                await out.note(f"error: {reason}")
                return job.outcome("error", reason)
            if watch.started_at is not None and now - watch.started_at > job.limit_s:
                await self._cancel_quietly(job.gh, watch)
                ending = Ending.timed_out(
                    f"timed out after {job.limit_s:g} s; the workflow run was cancelled"
                )
                await out.note(ending.reason)
                return job.outcome(*verdict(ending, JUnitReport()))
            wait = self.config.poll_s - (now - watch.heard_at)
            if wait <= 0:
                await self._poll(job.gh, watch)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.changed.wait(), timeout=min(wait, 30.0))
        for note in watch.notes:
            await out.note(note)
        waited = (watch.started_at or time.monotonic()) - queued_since
        job.timings["wait"] = round(max(0.0, waited), 3)
        return None

    async def _poll(self, gh: GitHubAPI, watch: _Watch) -> None:
        """The run's state from GitHub, for when webhooks were lost or are not configured."""
        try:
            run = await gh.getitem(f"/repos/{watch.repo}/actions/runs/{watch.run_id}")
        except gidgethub.HTTPException as exc:
            log.warning("could not poll workflow run %s: %s", watch.run_id, exc)
            watch.heard_at = time.monotonic()  # try again in a poll interval
            return
        watch.update(run.get("status"), run.get("conclusion"), None)

    async def _cancel_quietly(self, gh: GitHubAPI, watch: _Watch) -> None:
        with contextlib.suppress(gidgethub.HTTPException):
            await gh.post(f"/repos/{watch.repo}/actions/runs/{watch.run_id}/cancel", data={})

    # -- the result -----------------------------------------------------------------------

    async def _collect(self, job: _Job, watch: _Watch) -> JobOutcome:
        request, out = job.request, job.out
        assert isinstance(request, RunRequest)
        conclusion = watch.conclusion or "unknown"
        await out.note(f"workflow run {watch.run_id} completed: {conclusion}")
        phase = time.monotonic()
        contents, problem = await self._artifact(job.gh, watch, job.correlation)
        job.timings["artifact"] = _since(phase)
        report = JUnitReport(error=problem)
        junit: str | None = None
        if contents is not None:
            await _replay(contents.log, out)
            if contents.report is not None and contents.report.error is not None:
                # A report that could not be read says nothing about the tests: not a pass.
                report = JUnitReport(error=f"its junit.xml was refused: {contents.report.error}")
            elif contents.report is not None:
                report, junit = contents.report, contents.junit
        ending = Ending.workflow(conclusion, watch.html_url, cancel_requested=watch.cancelled)
        state, reason = verdict(ending, report)
        await out.note(f"{state}: {reason}" if reason else state)
        if report.error is not None:
            return job.outcome(state, reason)
        return job.outcome(
            state,
            reason,
            passed=report.passed,
            failed=report.failed,
            skipped=report.skipped,
            errors=report.errors,
            tests=report.tests,
            junit_xml=junit,
            tested_sha=request.head_sha,
        )

    # -- benchmarks -----------------------------------------------------------------------

    async def _benchmark(
        self, gh: GitHubAPI, request: BenchmarkRequest, out: BoundedLog
    ) -> JobOutcome:
        """The benchmark's workflow run, and one more if the first lost its runner; a restart
        follows the latest attempt it finds."""
        workflow = str(request.options.get("workflow") or BENCHMARK_WORKFLOW)
        started, timings = time.monotonic(), {}
        find = request.resumed or self.config.always_find
        attempt = 1
        if find and await self._find(gh, request.repo, workflow, benchmark_correlation(request, 2)):
            attempt = 2
        while True:
            correlation = benchmark_correlation(request, attempt)
            job = _Job(
                gh,
                request,
                out,
                correlation,
                benchmark_inputs(request, correlation),
                what=(
                    f"the benchmark of {request.head_sha[:12]} ({request.machine_type},"
                    f" {request.repeats} repeats, attempt {attempt})"
                ),
                limit_s=request.timeout_s * request.repeats + BENCHMARK_SETUP_S,
                adopt=(
                    f"copy {BENCHMARK_WORKFLOW} from the bot's repository, or set [benchmarks]"
                    " workflow"
                ),
                started=started,
                timings=timings,
            )
            ended = await self._attempt(job, workflow, find=find, collect=self._collect_benchmark)
            if not isinstance(ended, _RunnerLost):
                return ended
            if attempt == 2:
                reason = f"{ended.reason}; the second attempt lost its runner too"
                await out.note(f"error: {reason}")
                return job.outcome("error", reason)
            await out.note(f"{ended.reason}; the job runs once more")
            attempt, find = 2, False

    async def _collect_benchmark(self, job: _Job, watch: _Watch) -> JobOutcome | _RunnerLost:
        """The repeats' metrics files from the run's artifact, each judged by the feature's
        reader; or why there are none, in the words the local runner uses."""
        request, out = job.request, job.out
        assert isinstance(request, BenchmarkRequest)
        conclusion = watch.conclusion or "unknown"
        at = f" ({watch.html_url})" if watch.html_url else ""
        await out.note(f"workflow run {watch.run_id} completed: {conclusion}")
        if watch.cancelled:
            return job.outcome("cancelled", WORKFLOW_CANCELLED)
        if conclusion == "timed_out":
            return job.outcome("timed_out", f"the workflow run timed out{at}")
        phase = time.monotonic()
        limits = self.config.artifact
        try:
            files = await self._fetch(
                job.gh,
                watch,
                f"{BENCHMARK_ARTIFACT_PREFIX}{job.correlation}",
                lambda spool: read_benchmark_artifact(spool, limits, request.repeats),
            )
        except ArtifactUnread as exc:
            job.timings["artifact"] = _since(phase)
            reason = str(exc)
            if exc.missing and conclusion in ("failure", "cancelled"):
                # The workflow uploads its artifact whatever its steps did: a run without one
                # did not reach its last step.
                runner = await self._runner_of(job.gh, watch)
                if runner is not None:
                    return _RunnerLost(
                        f"the workflow run ended {conclusion} without its artifact: the runner"
                        f" {runner} was lost before the run's last step{at}"
                    )
                reason = f"the workflow run ended {conclusion} before any runner took it{at}"
            await out.note(f"error: {reason}")
            return job.outcome("error", reason)
        job.timings["artifact"] = _since(phase)
        await _replay(files.log, out)
        if files.others:
            await out.note(f"{files.others} other file(s) in the artifact were not read")
        if conclusion == "cancelled":
            await out.note(f"cancelled: {WORKFLOW_CANCELLED}")
            return job.outcome("cancelled", WORKFLOW_CANCELLED)
        if conclusion != "success":
            reason = benchmark_failure(files.log, conclusion, watch.html_url)
            await out.note(f"error: {reason}")
            return job.outcome("error", reason)
        outputs: list[str] = []
        for repeat in range(1, request.repeats + 1):
            which = f"repeat {repeat} of {request.repeats}"
            data = files.outputs.get(repeat)
            if data is None:
                problem: str | None = (
                    f"{which} wrote no metrics file (the command's {OUTPUT_PLACEHOLDER} names"
                    " where it goes)"
                )
                text = ""
            else:
                text, problem = await judge_metrics(request, which, data, REASON_LINES)
            if problem is not None:
                reason = out.redact(problem)
                await out.note(f"error: {reason}")
                return job.outcome("error", reason)
            outputs.append(text)
        reason = f"{request.repeats} repeat(s) measured"
        await out.note(f"passed: {reason}")
        return job.outcome(
            "passed",
            reason,
            tested_sha=request.head_sha,
            exit_code=0,
            result={"outputs": outputs},
        )

    async def _runner_of(self, gh: GitHubAPI, watch: _Watch) -> str | None:
        """The runner that took the run's job, as its webhook or the run's jobs name it; None
        when none did (or GitHub would not say)."""
        if watch.runner_name:
            return watch.runner_name
        try:
            page = await gh.getitem(f"/repos/{watch.repo}/actions/runs/{watch.run_id}/jobs")
        except gidgethub.HTTPException as exc:
            log.warning("could not list the jobs of workflow run %s: %s", watch.run_id, exc)
            return None
        for item in page.get("jobs") or ():
            if isinstance(item, dict) and item.get("runner_name"):
                return str(item["runner_name"])
        return None

    # -- artifacts ------------------------------------------------------------------------

    async def _artifact(
        self, gh: GitHubAPI, watch: _Watch, correlation: str
    ) -> tuple[ArtifactContents | None, str | None]:
        """The run's JUnit report and log from its artifact; a problem says why there are none."""
        limits = self.config.artifact
        try:
            contents = await self._fetch(
                gh,
                watch,
                f"{ARTIFACT_PREFIX}{correlation}",
                lambda spool: read_artifact(spool, limits),
            )
        except ArtifactUnread as exc:
            return None, str(exc)
        if contents.junit is None:
            return contents, f"the artifact {ARTIFACT_PREFIX}{correlation} holds no junit.xml"
        return contents, None

    async def _fetch(
        self, gh: GitHubAPI, watch: _Watch, wanted: str, read: Callable[[IO[bytes]], _T]
    ) -> _T:
        """The run's artifact `wanted`, downloaded to a temporary file within the download cap
        and handed to `read` in a worker thread; `ArtifactUnread` says why it could not be."""
        limits = self.config.artifact
        try:
            listing = await gh.getitem(f"/repos/{watch.repo}/actions/runs/{watch.run_id}/artifacts")
        except gidgethub.HTTPException as exc:
            raise ArtifactUnread(f"its artifacts could not be listed: {exc}") from None
        artifact = next(
            (a for a in listing.get("artifacts") or () if a.get("name") == wanted), None
        )
        if artifact is None:
            raise ArtifactUnread(f"the run uploaded no artifact {wanted}", missing=True)
        if artifact.get("expired"):
            raise ArtifactUnread(f"the artifact {wanted} has expired")
        if int(artifact.get("size_in_bytes") or 0) > limits.download_bytes:
            raise ArtifactUnread(
                f"the artifact {wanted} is larger than {limits.download_bytes} bytes"
            )
        with tempfile.TemporaryFile(prefix="actions-artifact-") as spool:
            try:
                await self._download(gh, watch.repo, artifact, spool)
            except (aiohttp.ClientError, gidgethub.HTTPException, TimeoutError, ValueError) as exc:
                raise ArtifactUnread(
                    f"the artifact {wanted} could not be downloaded: {exc}"
                ) from None
            except OSError as exc:
                raise ArtifactUnread(
                    f"the artifact {wanted} could not be stored: {exc.strerror or exc}"
                ) from None
            try:
                return await asyncio.to_thread(read, spool)
            except ArtifactRefused as exc:
                raise ArtifactUnread(f"the artifact {wanted} {exc}") from None

    async def _download(
        self, gh: GitHubAPI, repo: str, artifact: Mapping[str, Any], spool: IO[bytes]
    ) -> None:
        """GitHub answers a redirect to storage elsewhere: the token goes to GitHub only."""
        assert self._session is not None
        cap = self.config.artifact.download_bytes
        url = f"/repos/{repo}/actions/artifacts/{int(artifact['id'])}/zip"
        headers = {**API_HEADERS, "User-Agent": USER_AGENT}
        if gh.oauth_token:
            headers["Authorization"] = f"token {gh.oauth_token}"
        async with self._session.get(
            self.config.api_url.rstrip("/") + url, headers=headers, allow_redirects=False
        ) as answer:
            if answer.status in (301, 302, 303, 307, 308):
                location = answer.headers.get("Location", "")
            elif answer.status == 200:
                return await _spool_capped(answer, spool, cap)
            else:
                raise ValueError(f"GitHub answered {answer.status}")
        if not location.startswith(("https://", "http://")):
            raise ValueError("GitHub's redirect has no download address")
        async with self._session.get(location, headers={"User-Agent": USER_AGENT}) as blob:
            if blob.status != 200:
                raise ValueError(f"the download answered {blob.status}")
            return await _spool_capped(blob, spool, cap)


def benchmark_failure(log: LogExcerpt, conclusion: str, url: str = "") -> str:
    """Why a benchmark's workflow run failed, from its `log.txt`: the line the workflow wrote
    where it stopped and, when a repeat stopped it, the first lines that repeat printed (as the
    local runner says it); else that the run failed before the benchmark ended."""
    lines = [*log.head, *log.tail]
    stop = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith(ERROR_MARK)), None)
    if stop is None:
        where = f" ({url})" if url else ""
        reason = f"the workflow run ended {conclusion} before the benchmark ended{where}"
        printed = _printed(lines)
        return reason + ("; its log began:\n" + "\n".join(printed) if printed else "")
    error = lines[stop][len(ERROR_MARK) :][:500]
    if not error.startswith("repeat "):
        return error
    begin = next((i for i in range(stop - 1, -1, -1) if lines[i].startswith(REPEAT_MARK)), -1)
    printed = _printed(lines[begin + 1 : stop])
    return error + (
        "; its output began:\n" + "\n".join(printed) if printed else "; it printed nothing"
    )


def _printed(lines: list[str]) -> list[str]:
    """The first lines a command printed, without the workflow's own."""
    shown = [line[:300] for line in lines if line.strip() and not line.startswith("[benchmark] ")]
    return shown[:REASON_LINES]


async def _spool_capped(response: aiohttp.ClientResponse, spool: IO[bytes], cap: int) -> None:
    """Counts what really arrives (a `Content-Length` is a claim) and writes it to disk."""
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > cap:
            raise ValueError(f"the artifact is larger than {cap} bytes")
        await asyncio.to_thread(spool.write, chunk)


# ---------------------------------------------------------------------- the artifact's contents

_CHUNK = 256 * 1024
#: A kept log line's length; under the job log's own cut, so a line is cut once, here.
_LOG_LINE_CHARS = 8000
_METHODS = {
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
    9: "deflate64",
    93: "zstandard",
    95: "xz",
    98: "ppmd",
}
_END_RECORD = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
#: A directory entry is 46 bytes and a name; more than this per allowed member is not a report.
_DIRECTORY_BYTES_PER_MEMBER = 1024


class ArtifactRefused(Exception):
    """The artifact is not read; the message, after "the artifact NAME", says why."""


class ArtifactUnread(Exception):
    """A run's artifact could not be had or read; the message is the job's reason. `missing`:
    the run uploaded none."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.missing = missing


class LogExcerpt:
    """`log.txt` as head and tail within `keep_bytes`, built while the member streams by.

    The same cut as the job log's own (`BoundedLog`), made before any of it reaches the event
    loop, so a log of any size costs the loop only what is kept.
    """

    def __init__(self, keep_bytes: int) -> None:
        self.head: list[str] = []
        self.tail: deque[str] = deque()
        self.cut_lines = 0
        self.cut_bytes = 0
        #: where reading stopped, when the rest of a log over the cap was left unread
        self.truncated_at: int | None = None
        self._head_budget = keep_bytes // 2
        self._tail_budget = keep_bytes - self._head_budget
        self._head_bytes = 0
        self._tail_bytes = 0
        self._pending: list[str] = []
        self._pending_chars = 0

    def feed(self, text: str) -> None:
        *complete, rest = text.split("\n")
        for piece in complete:
            self._extend(piece)
            self._end_line()
        self._extend(rest)

    def finish(self) -> None:
        if self._pending_chars:
            self._end_line()

    def _extend(self, piece: str) -> None:
        # A line without end is kept to its first characters, so it cannot grow without bound.
        room = _LOG_LINE_CHARS - self._pending_chars
        if room > 0:
            self._pending.append(piece[:room])
        self._pending_chars += len(piece)

    def _end_line(self) -> None:
        line = "".join(self._pending).rstrip("\r")
        if self._pending_chars > _LOG_LINE_CHARS:
            line += f"… [{self._pending_chars - _LOG_LINE_CHARS} characters cut]"
        self._pending, self._pending_chars = [], 0
        size = len(line.encode("utf-8", "replace")) + 1
        if not self.tail and self._head_bytes + size <= self._head_budget:
            self.head.append(line)
            self._head_bytes += size
            return
        self.tail.append(line)
        self._tail_bytes += size
        while self._tail_bytes > self._tail_budget and self.tail:
            dropped = len(self.tail.popleft().encode("utf-8", "replace")) + 1
            self._tail_bytes -= dropped
            self.cut_lines += 1
            self.cut_bytes += dropped


@dataclass(frozen=True)
class ArtifactContents:
    """What a job keeps of its artifact: the parsed report, its text and the log's excerpt."""

    report: JUnitReport | None
    #: the JUnit XML as text, for the job's record; None when the artifact held none
    junit: str | None
    log: LogExcerpt


def read_artifact(spool: IO[bytes], limits: ArtifactLimits) -> ArtifactContents:
    """Blocking, seconds on a big artifact: run it in a worker thread.

    Raises `ArtifactRefused`, whose message is the reason the job ends with.
    """
    with _checked_zip(spool, limits.members) as archive:
        files = [info for info in archive.infolist() if not info.is_dir()]
        junit_info, log_info = _find(files, "junit.xml"), _find(files, "log.txt")
        data = None if junit_info is None else _read_member(archive, junit_info, limits.junit_bytes)
        log = LogExcerpt(limits.log_keep_bytes)
        if log_info is not None:
            _read_log(archive, log_info, limits.log_bytes, log)
    if data is None:
        return ArtifactContents(None, None, log)
    return ArtifactContents(parse_junit(data), data.decode("utf-8", "replace"), log)


@dataclass(frozen=True)
class BenchmarkArtifact:
    """What a benchmark job keeps of its artifact: each repeat's metrics file by its number,
    as bytes nobody has judged yet, and the log's excerpt."""

    outputs: Mapping[int, bytes]
    log: LogExcerpt
    #: files that are neither a repeat's metrics file nor the log: left unread
    others: int = 0


def read_benchmark_artifact(
    spool: IO[bytes], limits: ArtifactLimits, repeats: int
) -> BenchmarkArtifact:
    """`metrics-<n>.json` (n from 1 to `repeats`) and `log.txt`, at the root of the zip where
    the workflow's upload puts them. Blocking: run it in a worker thread.

    Nothing is written to disk, yet a name that climbs out of the artifact (`../x`, `/x`) or
    appears twice is refused: such a zip was not made by the workflow's upload, and which of
    two files of one name is the repeat's no reader can say. Raises `ArtifactRefused`.
    """
    with _checked_zip(spool, max(limits.members, repeats + 1)) as archive:
        infos = archive.infolist()
        seen: set[str] = set()
        for info in infos:
            _check_name(info.filename)
            if info.filename in seen:
                raise ArtifactRefused(f"holds {info.filename[:200]!r} twice; not read")
            seen.add(info.filename)
        wanted = {f"metrics-{n}.json": n for n in range(1, repeats + 1)}
        outputs: dict[int, bytes] = {}
        total, others = 0, 0
        log = LogExcerpt(limits.log_keep_bytes)
        for info in infos:
            if info.is_dir():
                continue
            repeat = wanted.get(info.filename)
            if repeat is not None:
                outputs[repeat] = _read_member(archive, info, limits.metrics_bytes)
                total += len(outputs[repeat])
                if total > limits.metrics_total_bytes:
                    raise ArtifactRefused(
                        f"is refused: its metrics files are larger than"
                        f" {limits.metrics_total_bytes} bytes together"
                    )
            elif info.filename == "log.txt":
                _read_log(archive, info, limits.log_bytes, log)
            else:
                others += 1
    return BenchmarkArtifact(outputs, log, others)


@contextlib.contextmanager
def _checked_zip(spool: IO[bytes], members: int) -> Iterator[zipfile.ZipFile]:
    """The zip once its directory is known to be small, its members countable and each one
    stored or deflated, unencrypted; closed on the way out."""
    _check_directory(spool, members)
    try:
        archive = zipfile.ZipFile(spool)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise ArtifactRefused(f"is not a zip file ({_short(exc)})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > members:
            raise ArtifactRefused(f"holds {len(infos)} files, more than {members}")
        for info in infos:
            _check_member(info)
        yield archive


def _check_directory(spool: IO[bytes], members: int) -> None:
    """The counts zipfile would trust, read first: it loads the whole directory they describe.

    The end record is found the way zipfile finds it (right at the end, else the last one within
    a comment's reach); a ZIP64 one is refused, as no artifact within these caps needs it.
    """
    size = spool.seek(0, io.SEEK_END)
    reach = min(size, _END_RECORD.size + 0xFFFF)
    spool.seek(size - reach)
    tail = spool.read(reach)
    at = len(tail) - _END_RECORD.size
    if at < 0 or tail[at : at + 4] != _END_SIGNATURE or tail[-2:] != b"\0\0":
        at = tail.rfind(_END_SIGNATURE)
    if at < 0 or at + _END_RECORD.size > len(tail):
        raise ArtifactRefused("is not a zip file")
    _, _, _, _, entries, directory_bytes, offset, _ = _END_RECORD.unpack_from(tail, at)
    locator = size - reach + at - 20
    if locator >= 0:
        spool.seek(locator)
        if spool.read(4) == _ZIP64_LOCATOR:
            raise ArtifactRefused("is a ZIP64 archive; not read")
    if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF or offset == 0xFFFFFFFF:
        raise ArtifactRefused("is a ZIP64 archive; not read")
    if entries > members:
        raise ArtifactRefused(f"holds {entries} files, more than {members}")
    if directory_bytes > members * _DIRECTORY_BYTES_PER_MEMBER:
        raise ArtifactRefused(f"has a directory of {directory_bytes} bytes; not read")
    spool.seek(0)


def _check_member(info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x1:
        raise ArtifactRefused(f"holds {info.filename[:200]!r} encrypted; not read")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # bzip2 and lzma inflate a whole compressed chunk at once, whatever it grows to.
        method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
        raise ArtifactRefused(
            f"holds {info.filename[:200]!r} compressed with {method};"
            " only stored or deflated members are read"
        )


def _check_name(name: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or name[1:2] == ":":
        raise ArtifactRefused(
            f"holds {name[:200]!r}, a name that climbs out of the artifact; not read"
        )


def _find(infos: list[zipfile.ZipInfo], name: str) -> zipfile.ZipInfo | None:
    exact = next((info for info in infos if info.filename == name), None)
    return exact or next((info for info in infos if info.filename.endswith("/" + name)), None)


def _chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The member as its decompressor yields it, a chunk at a time (deflate stops at a chunk).

    zipfile cuts a member at the size its header claims and then fails its checksum, so a header
    that lies low ends here as a damaged member.
    """
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise ArtifactRefused(
            f"is damaged: its {info.filename[:200]} could not be read ({_short(exc)})"
        ) from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    too_big = f"is refused: its {info.filename[:200]} is larger than {cap} bytes"
    if info.file_size > cap:
        raise ArtifactRefused(too_big)
    out = io.BytesIO()
    for chunk in _chunks(archive, info):
        # Counted as produced: the size in the header is only the uploader's claim.
        if out.tell() + len(chunk) > cap:
            raise ArtifactRefused(too_big)
        out.write(chunk)
    return out.getvalue()


def _read_log(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, log: LogExcerpt) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    read = 0
    for chunk in _chunks(archive, info):
        if read + len(chunk) > cap:
            log.feed(decoder.decode(chunk[: cap - read]))
            log.truncated_at = cap
            break
        read += len(chunk)
        log.feed(decoder.decode(chunk))
    log.feed(decoder.decode(b"", final=True))
    log.finish()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


async def _replay(log: LogExcerpt, out: BoundedLog) -> None:
    """The kept lines into the job's log, yielding now and then to the rest of the bot."""
    for count, line in enumerate(log.head, 1):
        await out.write(line)
        if count % 256 == 0:
            await asyncio.sleep(0)
    if log.cut_lines:
        await out.note(
            f"… {log.cut_lines} lines ({log.cut_bytes} bytes) of the run's log.txt cut here …"
        )
    for count, line in enumerate(log.tail, 1):
        await out.write(line)
        if count % 256 == 0:
            await asyncio.sleep(0)
    if log.truncated_at is not None:
        await out.note(f"the run's log.txt was read up to {log.truncated_at} bytes only")


def _since(start: float) -> float:
    return round(time.monotonic() - start, 3)


def _message(exc: gidgethub.BadRequest) -> str:
    return str(exc.args[0]) if exc.args else str(exc)


def _refusal(exc: gidgethub.BadRequest, workflow: str, ref: str, adopt: str) -> str:
    message = _message(exc)
    if exc.status_code == 404:
        return f"the workflow .github/workflows/{workflow} was not found on {ref} ({adopt})"
    return f"GitHub refused to start {workflow} ({exc.status_code}): {message}"
