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
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import io
import json
import logging
import struct
import tempfile
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote

import aiohttp
import gidgethub

from bot.clients.github import API_HEADERS, USER_AGENT, GitHubAPI, new_session
from bot.jobs.runners.base import (
    BoundedLog,
    JobOutcome,
    JobState,
    LogSink,
    RunRequest,
    resolve_token,
)
from bot.jobs.runners.junit import MAX_JUNIT_BYTES, JUnitReport, parse_junit
from bot.jobs.runners.verdict import Ending, verdict

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
    """One job being run on Actions: what every step of following it needs."""

    gh: GitHubAPI
    request: RunRequest
    out: BoundedLog
    correlation: str
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


class DispatchRefused(Exception):
    """GitHub would not start the workflow; the message says why, for the PR."""


def correlation_id(request: RunRequest) -> str:
    """Stable for one job of one run across restarts and databases: the run's key (its
    comment, label or button) and the job's folder and machine type, never a database id."""
    base = str(request.options.get("run_key") or f"{request.repo}:run-{request.run_id}")
    text = f"{request.repo}|{base}|{request.folder}|{request.machine_type}|{request.head_sha}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dispatch_inputs(request: RunRequest, correlation: str) -> dict[str, str]:
    labels = request.options.get("labels") or {}
    wanted = labels.get(request.machine_type) or ("self-hosted", request.machine_type)
    inputs = {
        "folder": request.folder,
        "machine_type": request.machine_type,
        "sha": request.head_sha,
        "run_id": request.run_id,
        "job_id": request.job_id,
        "correlation": correlation,
        "runner_labels": json.dumps(list(wanted)),
        "tests": " ".join(request.tests),
        "pr": str(request.pull_number or ""),
    }
    assert tuple(inputs) == WORKFLOW_INPUTS
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

    async def run(self, request: RunRequest, on_log: LogSink | None = None) -> JobOutcome:
        out = BoundedLog(sink=on_log)
        token = await resolve_token(request.token)
        if token:
            out.add_secret(token)
        job = _Job(self._client(token), request, out, correlation_id(request))
        workflow = str(request.options.get("workflow") or "slow-tests.yml")
        try:
            found = None
            if request.resumed or self.config.always_find:
                found = await self._find(job.gh, request.repo, workflow, job.correlation)
            if found is not None:
                await out.note(
                    f"following workflow run {found['id']} started before: {found['html_url']}"
                )
            else:
                found = await self._dispatch(job, workflow)
        except DispatchRefused as exc:
            await out.note(f"error: {out.redact(str(exc))}")
            return job.outcome("error", str(exc))
        watch = self._watch(request, found, job.gh)
        try:
            return await self._follow(job, watch)
        finally:
            self._watches.pop((watch.repo, watch.run_id), None)
            self._by_job.pop(request.job_id, None)

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

    def _client(self, token: str | None) -> GitHubAPI:
        if self._session is None:
            self._session = new_session()
        return GitHubAPI(self._session, USER_AGENT, oauth_token=token, base_url=self.config.api_url)

    async def _dispatch(self, job: _Job, workflow: str) -> dict[str, Any]:
        gh, request, correlation, out = job.gh, job.request, job.correlation, job.out
        ref = str(request.options.get("ref") or "main")
        body: dict[str, Any] = {"ref": ref, "inputs": dispatch_inputs(request, correlation)}
        url = f"/repos/{request.repo}/actions/workflows/{quote(workflow, safe='')}/dispatches"
        await out.note(
            f"dispatching {workflow} on {ref} for tests/{request.folder} ({request.machine_type})"
        )
        try:
            answer = await gh.post(url, data={**body, "return_run_details": True})
        except gidgethub.BadRequest as exc:
            message = _message(exc)
            if exc.status_code == 422 and "return_run_details" in message:
                # An older GitHub Enterprise Server: dispatch plainly, find the run by name.
                answer = await self._post_dispatch(gh, url, body, workflow, ref)
            else:
                raise DispatchRefused(_refusal(exc, workflow, ref)) from None
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
        self, gh: GitHubAPI, url: str, body: dict[str, Any], workflow: str, ref: str
    ) -> Any:
        try:
            return await gh.post(url, data=body)
        except gidgethub.BadRequest as exc:
            raise DispatchRefused(_refusal(exc, workflow, ref)) from None

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

    def _watch(self, request: RunRequest, run: Mapping[str, Any], gh: GitHubAPI) -> _Watch:
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

    async def _follow(self, job: _Job, watch: _Watch) -> JobOutcome:
        request, out = job.request, job.out
        queued_since = time.monotonic()
        while watch.status != "completed":
            watch.changed.clear()
            for note in watch.notes:
                await out.note(note)
            watch.notes.clear()
            now = time.monotonic()
            if watch.started_at is None and now - queued_since > self.config.queue_timeout_s:
                await self._cancel_quietly(job.gh, watch)
                labels = dispatch_inputs(request, job.correlation)["runner_labels"]
                reason = (
                    f"no runner took the job within {self.config.queue_timeout_s:g} s"
                    f" (labels {labels}); the workflow run was cancelled"
                )
                await out.note(f"error: {reason}")
                return job.outcome("error", reason)
            if watch.started_at is not None and now - watch.started_at > request.timeout_s:
                await self._cancel_quietly(job.gh, watch)
                ending = Ending.timed_out(
                    f"timed out after {request.timeout_s:g} s; the workflow run was cancelled"
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
        return await self._collect(job, watch)

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

    async def _artifact(
        self, gh: GitHubAPI, watch: _Watch, correlation: str
    ) -> tuple[ArtifactContents | None, str | None]:
        """The run's JUnit report and log from its artifact; a problem says why there are none."""
        limits = self.config.artifact
        try:
            listing = await gh.getitem(f"/repos/{watch.repo}/actions/runs/{watch.run_id}/artifacts")
        except gidgethub.HTTPException as exc:
            return None, f"its artifacts could not be listed: {exc}"
        wanted = f"{ARTIFACT_PREFIX}{correlation}"
        artifact = next(
            (a for a in listing.get("artifacts") or () if a.get("name") == wanted), None
        )
        if artifact is None:
            return None, f"the run uploaded no artifact {wanted}"
        if artifact.get("expired"):
            return None, f"the artifact {wanted} has expired"
        if int(artifact.get("size_in_bytes") or 0) > limits.download_bytes:
            return None, f"the artifact {wanted} is larger than {limits.download_bytes} bytes"
        with tempfile.TemporaryFile(prefix="slow-tests-artifact-") as spool:
            try:
                await self._download(gh, watch.repo, artifact, spool)
            except (aiohttp.ClientError, gidgethub.HTTPException, TimeoutError, ValueError) as exc:
                return None, f"the artifact {wanted} could not be downloaded: {exc}"
            except OSError as exc:
                return None, f"the artifact {wanted} could not be stored: {exc.strerror or exc}"
            try:
                contents = await asyncio.to_thread(read_artifact, spool, limits)
            except ArtifactRefused as exc:
                return None, f"the artifact {wanted} {exc}"
        if contents.junit is None:
            return contents, f"the artifact {wanted} holds no junit.xml"
        return contents, None

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
    _check_directory(spool, limits)
    try:
        archive = zipfile.ZipFile(spool)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise ArtifactRefused(f"is not a zip file ({_short(exc)})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.members:
            raise ArtifactRefused(f"holds {len(infos)} files, more than {limits.members}")
        for info in infos:
            _check_member(info)
        files = [info for info in infos if not info.is_dir()]
        junit_info, log_info = _find(files, "junit.xml"), _find(files, "log.txt")
        data = None if junit_info is None else _read_member(archive, junit_info, limits.junit_bytes)
        log = LogExcerpt(limits.log_keep_bytes)
        if log_info is not None:
            _read_log(archive, log_info, limits.log_bytes, log)
    if data is None:
        return ArtifactContents(None, None, log)
    return ArtifactContents(parse_junit(data), data.decode("utf-8", "replace"), log)


def _check_directory(spool: IO[bytes], limits: ArtifactLimits) -> None:
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
    if entries > limits.members:
        raise ArtifactRefused(f"holds {entries} files, more than {limits.members}")
    if directory_bytes > limits.members * _DIRECTORY_BYTES_PER_MEMBER:
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


def _refusal(exc: gidgethub.BadRequest, workflow: str, ref: str) -> str:
    message = _message(exc)
    if exc.status_code == 404:
        return (
            f"the workflow .github/workflows/{workflow} was not found on {ref}"
            " (copy slow-tests.yml from the bot's repository, or set [slow_ci] workflow)"
        )
    return f"GitHub refused to start {workflow} ({exc.status_code}): {message}"
