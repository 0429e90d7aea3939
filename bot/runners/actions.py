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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import gidgethub
from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.github import USER_AGENT, GitHubAPI, new_session
from bot.runners.base import BoundedLog, JobOutcome, JobState, LogSink, RunRequest, resolve_token
from bot.runners.junit import JUnitReport, parse_junit

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
                reason = f"timed out after {request.timeout_s:g} s; the workflow run was cancelled"
                await out.note(reason)
                return job.outcome("timed_out", reason)
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
        junit, text, problem = await self._artifact(job.gh, watch, job.correlation)
        job.timings["artifact"] = _since(phase)
        if text:
            for line in text.splitlines():
                await out.write(line)
        report = parse_junit(junit) if junit else None
        state, reason = _judge(conclusion, report, problem, watch.html_url)
        if watch.cancelled and state in ("error", "failed"):
            state, reason = "cancelled", "the workflow run was cancelled"
        await out.note(f"{state}: {reason}" if reason else state)
        if report is None:
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
    ) -> tuple[str | None, str, str | None]:
        """The run's JUnit XML and log from its artifact; a problem says why there are none."""
        try:
            listing = await gh.getitem(f"/repos/{watch.repo}/actions/runs/{watch.run_id}/artifacts")
        except gidgethub.HTTPException as exc:
            return None, "", f"its artifacts could not be listed: {exc}"
        wanted = f"{ARTIFACT_PREFIX}{correlation}"
        artifact = next(
            (a for a in listing.get("artifacts") or () if a.get("name") == wanted), None
        )
        if artifact is None:
            return None, "", f"the run uploaded no artifact {wanted}"
        if artifact.get("expired"):
            return None, "", f"the artifact {wanted} has expired"
        if int(artifact.get("size_in_bytes") or 0) > MAX_ARTIFACT_BYTES:
            return None, "", f"the artifact {wanted} is larger than {MAX_ARTIFACT_BYTES} bytes"
        try:
            data = await self._download(gh, watch.repo, artifact)
        except (aiohttp.ClientError, gidgethub.HTTPException, TimeoutError, ValueError) as exc:
            return None, "", f"the artifact {wanted} could not be downloaded: {exc}"
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
                junit = _member(archive, names, "junit.xml")
                text = _member(archive, names, "log.txt") or ""
        except zipfile.BadZipFile:
            return None, "", f"the artifact {wanted} is not a zip file"
        return junit, text, None if junit else f"the artifact {wanted} holds no junit.xml"

    async def _download(self, gh: GitHubAPI, repo: str, artifact: Mapping[str, Any]) -> bytes:
        """GitHub answers a redirect to storage elsewhere: the token goes to GitHub only."""
        assert self._session is not None
        url = f"/repos/{repo}/actions/artifacts/{int(artifact['id'])}/zip"
        headers = {"Accept": "application/vnd.github+json", "User-Agent": USER_AGENT}
        if gh.oauth_token:
            headers["Authorization"] = f"token {gh.oauth_token}"
        async with self._session.get(
            self.config.api_url.rstrip("/") + url, headers=headers, allow_redirects=False
        ) as answer:
            if answer.status in (301, 302, 303, 307, 308):
                location = answer.headers.get("Location", "")
            elif answer.status == 200:
                return await _read_capped(answer)
            else:
                raise ValueError(f"GitHub answered {answer.status}")
        if not location.startswith(("https://", "http://")):
            raise ValueError("GitHub's redirect has no download address")
        async with self._session.get(location, headers={"User-Agent": USER_AGENT}) as blob:
            if blob.status != 200:
                raise ValueError(f"the download answered {blob.status}")
            return await _read_capped(blob)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > MAX_ARTIFACT_BYTES:
            raise ValueError(f"the artifact is larger than {MAX_ARTIFACT_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _member(archive: zipfile.ZipFile, names: set[str], name: str) -> str | None:
    found = name if name in names else next((n for n in names if n.endswith("/" + name)), None)
    if found is None:
        return None
    info = archive.getinfo(found)
    if info.file_size > MAX_ARTIFACT_BYTES:
        return None
    return archive.read(found).decode("utf-8", "replace")


def _judge(
    conclusion: str, report: JUnitReport | None, problem: str | None, url: str
) -> tuple[JobState, str]:
    """What the job came to, from the run's conclusion and the tests' own report."""
    if conclusion == "cancelled":
        return "cancelled", "the workflow run was cancelled"
    if conclusion == "timed_out":
        return "timed_out", f"the workflow run timed out ({url})"
    if report is not None:
        counts = f"{report.passed} passed, {report.failed} failed, {report.errors} errors"
        counts += f", {report.skipped} skipped"
        if report.failed or report.errors:
            return "failed", counts
        if conclusion == "success":
            if report.passed == 0 and report.skipped > 0:
                return "skipped", f"all {report.skipped} tests skipped"
            return "passed", counts
        return "error", f"the workflow run ended {conclusion} with no failing test ({url})"
    if conclusion == "success":
        return "error", f"the workflow run succeeded but {problem}"
    return "error", f"the workflow run ended {conclusion} before any test result ({problem}; {url})"


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


# ---------------------------------------------------------------------- webhooks

router = Router()


@router.register("workflow_run")
@router.register("workflow_job")
async def on_workflow_event(event: Event, gh: Any, *, ctx: Any, **_: Any) -> None:
    """Moves the followed job along; an event about any other workflow run is ignored."""
    runner = ctx.services.jobs.runners.get(NAME)
    if isinstance(runner, ActionsRunner) and runner.observe(event.event, event.data):
        ctx.log.info("%s %s for a followed workflow run", event.event, event.data.get("action"))
