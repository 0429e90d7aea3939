"""The pages: a run as the commit status links to it, its logs, the list of runs, the
overview, a schedule's runs, a test's history and the flaky tests, a repository's benchmarks
(a chart, and JSON and CSV for dashboards), and the operator's deliveries, outbox and schedules.

Each handler reads records, asks `access` who may see them, and hands them to a template;
nothing here writes except the three POST forms (replay a delivery, retry an outbox item, fire
a schedule), which carry a CSRF token. Errors are pages too: an unknown id is a 404 page, not a
traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import statistics
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.jobs.records import ACTIVE_RUN_STATES, JobRecord, RunFilter, RunRecord
from bot.kit.help import render_markdown
from bot.logs import add_secret
from bot.server.runtime import RUNTIME, Runtime
from bot.store import benchmarks as benchmarks_db
from bot.store import deliveries as deliveries_db
from bot.store import engine as engine_db
from bot.store import outbox as outbox_db
from bot.store import runs as runs_db
from bot.store import schedules as schedules_db
from bot.store import verdicts as verdicts_db
from bot.store.deliveries import DELIVERY_STATES
from bot.store.schedules import FireRow, Schedule
from bot.web import access, benchmarks, results, scheduled
from bot.web.chart import folder_chart
from bot.web.render import page, scrub

log = logging.getLogger("bot.web")

#: A log page shows its tail; the whole log is one click away (`?whole=1`).
LOG_TAIL_BYTES = 256 * 1024
#: How much of a payload the delivery page prints.
PAYLOAD_BYTES = 512 * 1024
RUNS_PER_PAGE = 50
#: Deliveries the replay button is offered for: the store's rule, which the replay applies.
REPLAYABLE = deliveries_db.REPLAYABLE
RUN_STATES = ("", "queued", "running", "finished", "cancelled", "error")
OUTBOX_STATES = ("", "pending", "delivered", "failed")
#: The overview's chart covers the jobs of this many recent runs.
CHART_RUNS = 40
#: The schedules page shows each schedule's latest fires.
FIRES_SHOWN = 5
#: A schedule's page lists this many of its runs; older ones are a click away.
SCHEDULE_RUNS = 100
#: A test's history covers its repository's newest scheduled runs: a year of nightly ones.
HISTORY_RUNS = 365
#: What a repository's page nobody may see says: one the bot knows nothing of, or a private
#: repository's.
MISSING_REPO = (
    "There is nothing here for {what}, or it is not yours to see: a private repository's pages"
    " are shown to people who have signed in and can read it."
)
#: What a run nobody may see here says: one that does not exist, or a private repository's.
MISSING_RUN = (
    "There is no run {run_id}, or it is not yours to see: a private repository's runs are shown"
    " to people who have signed in and can read it."
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RESULTS = web.AppKey("results_cache", results.ResultsCache)
BENCHMARK_CHARTS = web.AppKey("benchmark_charts", benchmarks.ChartCache)


# ---------------------------------------------------------------------- the frame


async def _nav(request: web.Request) -> dict[str, Any]:
    runtime = request.app[RUNTIME]
    viewer = await access.viewer(request)
    return {
        "handle": runtime.settings.handle,
        "viewer": viewer,
        "csrf": access.csrf_token(viewer),
        "web_url": runtime.settings.github_web_url,
        "public_url": runtime.settings.public_url or f"{request.scheme}://{request.host}",
        "here": request.path_qs,
    }


def _page_of(handler: Handler) -> Handler:
    """Answers an HTTP error from a page handler with an HTML page of the same status."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            try:
                nav = await _nav(request)
            except web.HTTPException:
                # The viewer itself was refused (a wrong bearer token): no frame to draw.
                raise exc from None
            response = page(
                "error.html",
                status=exc.status,
                code=exc.status,
                nav=nav,
                reason=exc.reason,
                message=exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else "",
            )
            for name in ("WWW-Authenticate", "Retry-After"):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
            return response

    return wrapped


def _runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def _int(request: web.Request, name: str) -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise web.HTTPNotFound(text=f"{name} ids are numbers") from None
    if not 0 < value < 2**63:
        raise web.HTTPNotFound(text=f"no {name} {value}")
    return value


async def _read(runtime: Runtime, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    return await runtime.store.call(fn, single=True)


# ---------------------------------------------------------------------- runs


async def _visible_run(request: web.Request, run_id: int) -> RunRecord:
    """The run, when the viewer may see it; else the very answer a run that does not exist
    gets, whoever asks, so a private repository's runs cannot be counted from outside.

    No sign-in redirect for an anonymous visitor either: sending them to sign in for a run id
    and not for another would say which ids exist. The 404 page's header offers signing in.
    """
    # A wrong token is refused (401) before the run is looked up, for any id alike.
    await access.viewer(request)
    run = await _runtime(request).jobs.get_run(run_id)
    if run is None or not await access.may_see_repo(request, run.repo, private=run.private):
        raise web.HTTPNotFound(text=MISSING_RUN.format(run_id=run_id))
    return run


@dataclass(frozen=True)
class Counts:
    jobs: int
    done: int
    passed: int
    failed: int
    skipped: int
    #: what a finished run came to: every job ok, or not
    verdict: str


def run_counts(jobs: list[JobRecord]) -> Counts:
    return Counts(
        verdict="passed" if all(job.ok for job in jobs if job.done) else "failed",
        jobs=len(jobs),
        done=sum(job.done for job in jobs),
        passed=sum(job.passed for job in jobs),
        failed=sum(job.failed + job.errors for job in jobs),
        skipped=sum(job.skipped for job in jobs),
    )


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    running: int
    percent: int
    eta_s: float | None
    queue_position: int


async def _progress(runtime: Runtime, run: RunRecord, jobs: list[JobRecord]) -> Progress:
    """How far a live run is, and how long it has left judging by the same folders' past."""
    done = sum(job.done for job in jobs)
    running = [job for job in jobs if job.state == "running"]
    waiting = [job for job in jobs if job.state == "queued"]
    past = await runtime.jobs.past_durations(run.kind, [job.name for job in jobs], repo=run.repo)
    now = time.time()
    left: list[float] = []
    known = True
    for job in [*running, *waiting]:
        history = past.get(job.name)
        if not history:
            known = False
            break
        typical = statistics.median(history)
        elapsed = now - job.started_at if job.started_at else 0.0
        left.append(max(0.0, typical - elapsed))
    # Jobs run side by side up to the job system's concurrency.
    slots = max(1, runtime.jobs.concurrency)
    eta = (max(left) if len(left) <= slots else sum(left) / slots) if known and left else None
    return Progress(
        done=done,
        total=len(jobs),
        running=len(running),
        percent=int(100 * done / len(jobs)) if jobs else 100,
        eta_s=eta,
        queue_position=await runtime.jobs.queue_position(run.id) if waiting else 0,
    )


@_page_of
async def run_page(request: web.Request) -> web.StreamResponse:
    runtime = _runtime(request)
    run = await _visible_run(request, _int(request, "run"))
    jobs = await runtime.jobs.jobs_of(run.id)
    cache = request.app[RESULTS]
    tests: list[results.Bucketed] = []
    for job in jobs:
        found = cache.get(job.id)
        if found is None:
            folder = str(job.spec.get("folder", job.name))
            found = results.bucketed((folder, t) for t in await runtime.jobs.job_tests(job.id))
            if job.done:
                cache.put(job.id, found)
        tests.append(found)
    view = results.select(
        tests,
        q=request.query.get("q", "")[:200],
        outcome=request.query.get("outcome", "all"),
        page=results.page_number(request.query.get("page")),
    )
    return page(
        "run.html",
        nav=await _nav(request),
        refresh=10 if run.active else None,
        run=run,
        jobs=jobs,
        totals=run_counts(jobs),
        progress=await _progress(runtime, run, jobs) if run.active else None,
        results=view,
        scheduled=await _scheduled_of(runtime, run),
    )


@dataclass(frozen=True)
class ScheduledRun:
    """What a run page adds for a scheduled run or one of its checks."""

    schedule: str
    schedule_url: str
    #: a scheduled run's comparison and verdicts; None for a check run
    analysis: scheduled.RunAnalysis | None = None
    #: a check run's scheduled run, and what it checks
    parent: int | None = None
    check: str = ""


async def _scheduled_of(runtime: Runtime, run: RunRecord) -> ScheduledRun | None:
    if run.kind not in (scheduled.SCHEDULED_KIND, scheduled.CHECK_KIND):
        return None
    name = str(run.spec.get("schedule") or "")
    link = scheduled.schedule_url(run.repo, name) if name else ""
    if run.kind == scheduled.CHECK_KIND:
        parent = run.spec.get("parent")
        return ScheduledRun(
            name,
            link,
            parent=parent if isinstance(parent, int) else None,
            check=scheduled.check_label(str(run.spec.get("check") or "")),
        )

    def read(
        conn: sqlite3.Connection,
    ) -> tuple[list[verdicts_db.TestVerdict], verdicts_db.Analysis | None]:
        return verdicts_db.verdicts_of(conn, run.id), verdicts_db.get_analysis(conn, run.id)

    rows, stored = await runtime.store.call(read)
    return ScheduledRun(name, link, analysis=scheduled.run_analysis(run, rows, stored))


@_page_of
async def job_log(request: web.Request) -> web.StreamResponse:
    runtime = _runtime(request)
    run = await _visible_run(request, _int(request, "run"))
    job_id = _int(request, "job")
    job = next((j for j in await runtime.jobs.jobs_of(run.id) if j.id == job_id), None)
    if job is None:
        raise web.HTTPNotFound(text=f"Run {run.id} has no job {job_id}.")
    text = scrub(await runtime.jobs.job_log(job_id) or "")
    if request.query.get("format") == "text":
        headers = {"X-Content-Type-Options": "nosniff"}
        if request.query.get("download") == "1":
            headers["Content-Disposition"] = f'attachment; filename="run-{run.id}-job-{job_id}.log"'
        return web.Response(text=text, content_type="text/plain", headers=headers)
    whole = request.query.get("whole") == "1"
    raw = text.encode("utf-8")
    cut = not whole and len(raw) > LOG_TAIL_BYTES
    shown = raw[-LOG_TAIL_BYTES:].decode("utf-8", "ignore") if cut else text
    return page(
        "log.html",
        nav=await _nav(request),
        refresh=10 if not job.done else None,
        run=run,
        job=job,
        text=shown,
        cut=cut,
        shown_kib=LOG_TAIL_BYTES // 1024,
        total_kib=len(raw) // 1024,
    )


async def _run_filter(request: web.Request, **fields: Any) -> RunFilter:
    """What the viewer may list: every run for an operator, else public runs and the private
    repositories they can read."""
    viewer = await access.viewer(request)
    if viewer.operator:
        return RunFilter(**fields)
    runtime = _runtime(request)
    repos = await _read(runtime, runs_db.private_repos)
    visible = frozenset(
        [repo for repo in repos if await access.may_see_repo(request, repo, private=True)]
        if viewer.login
        else []
    )
    return RunFilter(**fields, visible=visible)


async def _with_counts(runtime: Runtime, runs: list[RunRecord]) -> dict[int, Counts]:
    ids = [run.id for run in runs]
    by_run = await _read(runtime, lambda conn: runs_db.jobs_of_runs(conn, ids))
    return {run_id: run_counts(rows) for run_id, rows in by_run.items()}


@_page_of
async def runs_page(request: web.Request) -> web.StreamResponse:
    runtime = _runtime(request)
    query = request.query
    repo = query.get("repo", "").strip()[:300]
    pr_text = query.get("pr", "").strip().lstrip("#")
    state = query.get("state", "")
    number = int(pr_text) if pr_text.isdigit() and len(pr_text) < 12 else None
    before = results.page_number(query.get("before")) if query.get("before") else None
    where = await _run_filter(
        request,
        repo=repo or None,
        number=number,
        states=(state,) if state in RUN_STATES and state else None,
    )
    runs = await _read(
        runtime, lambda conn: runs_db.list_runs(conn, where, before=before, limit=RUNS_PER_PAGE)
    )
    kept = [("repo", repo), ("pr", pr_text), ("state", state)]
    kept = [(k, v) for k, v in kept if v]
    next_link = (
        "/runs?" + urllib.parse.urlencode([*kept, ("before", str(runs[-1].id))])
        if len(runs) == RUNS_PER_PAGE
        else ""
    )
    first_link = ("/runs?" + urllib.parse.urlencode(kept)) if before else ""
    return page(
        "runs.html",
        nav=await _nav(request),
        runs=runs,
        counts=await _with_counts(runtime, runs),
        filters={"repo": repo, "pr": pr_text, "state": state if state in RUN_STATES else ""},
        states=RUN_STATES,
        next_link=next_link,
        first_link=first_link,
    )


# ---------------------------------------------------------------------- the overview


@dataclass(frozen=True)
class PoolUse:
    summary: str


def _pool_use(runtime: Runtime) -> PoolUse:
    local = runtime.jobs.runners.get("local")
    pool = getattr(local, "pool", None)
    if pool is None:
        return PoolUse("no local runner")
    waiting = f", {pool.waiting} job(s) waiting for one" if pool.waiting else ""
    if pool.has_gpu:
        busy = len(pool.devices) - pool.free
        return PoolUse(f"{busy} of {len(pool.devices)} GPUs in use{waiting}")
    return PoolUse(f"no GPU on this machine (CPU slots free: {pool.free}){waiting}")


def _last_hour(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    counts = deliveries_db.count_received_since(conn, time.time() - 3600)
    return [(status, counts[status]) for status in DELIVERY_STATES if status in counts]


@_page_of
async def overview(request: web.Request) -> web.StreamResponse:
    runtime = _runtime(request)
    viewer = await access.viewer(request)
    active_where = await _run_filter(request, states=ACTIVE_RUN_STATES)
    done_where = RunFilter(states=("finished", "cancelled", "error"), visible=active_where.visible)
    active = await _read(runtime, lambda conn: runs_db.list_runs(conn, active_where, limit=50))
    recent = await _read(runtime, lambda conn: runs_db.list_runs(conn, done_where, limit=10))
    chart_where = RunFilter(states=("finished",), visible=active_where.visible)
    chart_runs = await _read(
        runtime, lambda conn: runs_db.list_runs(conn, chart_where, limit=CHART_RUNS)
    )
    chart_ids = [run.id for run in chart_runs]
    chart_jobs = await _read(runtime, lambda conn: runs_db.jobs_of_runs(conn, chart_ids))
    context: dict[str, Any] = {
        "active": active,
        "recent": recent,
        "counts": await _with_counts(runtime, [*active, *recent]),
        "pool": _pool_use(runtime),
        "chart": folder_chart(job for rows in chart_jobs.values() for job in rows),
        "last_hour": await _read(runtime, _last_hour),
        "failed": [],
        "outbox_waiting": 0,
        "outbox_failed": 0,
    }
    if viewer.operator:
        context["failed"] = await _read(
            runtime, lambda conn: deliveries_db.list_deliveries(conn, status="failed", limit=10)
        )
        outbox = await _read(runtime, lambda conn: engine_db.count_by_status(conn, "outbox"))
        context["outbox_waiting"] = outbox.get("pending", 0)
        context["outbox_failed"] = outbox.get("failed", 0)
    live = bool(active)
    return page("overview.html", nav=await _nav(request), refresh=15 if live else None, **context)


# ---------------------------------------------------------------------- the operator's pages


@_page_of
async def deliveries_page(request: web.Request) -> web.StreamResponse:
    await access.require_operator(request)
    runtime = _runtime(request)
    status = request.query.get("status", "")
    status = status if status in DELIVERY_STATES else ""
    before = (
        results.page_number(request.query.get("before")) if request.query.get("before") else None
    )
    rows = await _read(
        runtime,
        lambda conn: deliveries_db.page_deliveries(
            conn, status=status or None, before=before, limit=RUNS_PER_PAGE
        ),
    )
    next_link = ""
    if len(rows) == RUNS_PER_PAGE:
        kept = [("status", status)] if status else []
        next_link = "/deliveries?" + urllib.parse.urlencode([*kept, ("before", str(rows[-1].seq))])
    return page(
        "deliveries.html",
        nav=await _nav(request),
        deliveries=rows,
        statuses=("", *DELIVERY_STATES),
        chosen=status,
        next_link=next_link,
    )


def _subject(web_url: str, data: Any) -> tuple[dict[str, str] | None, str | None]:
    """The pull request or issue a payload is about, and who sent it, as links."""
    if not isinstance(data, dict):
        return None, None
    sender = data.get("sender")
    login = sender.get("login") if isinstance(sender, dict) else None
    repo = (
        (data.get("repository") or {}).get("full_name")
        if isinstance(data.get("repository"), dict)
        else None
    )
    for key, kind in (("pull_request", "pull"), ("issue", "issues")):
        item = data.get(key)
        if isinstance(item, dict) and isinstance(item.get("number"), int) and repo:
            text = f"{repo}#{item['number']} {item.get('title') or ''}".strip()
            return {"url": f"{web_url}/{repo}/{kind}/{item['number']}", "text": text}, login
    return None, login if isinstance(login, str) else None


@_page_of
async def delivery_page(request: web.Request) -> web.StreamResponse:
    viewer = await access.require_operator(request)
    runtime = _runtime(request)
    delivery_id = request.match_info["delivery"]
    delivery = await _read(runtime, lambda conn: deliveries_db.get_delivery(conn, delivery_id))
    if delivery is None:
        raise web.HTTPNotFound(text=f"There is no delivery {delivery_id}.")
    try:
        data = json.loads(delivery.body)
        payload = json.dumps(data, indent=2, ensure_ascii=False)
    except ValueError:
        data, payload = None, delivery.body.decode("utf-8", "replace")
    subject, sender = _subject(runtime.settings.github_web_url, data)
    raw = payload.encode("utf-8")
    cut = len(raw) > PAYLOAD_BYTES
    return page(
        "delivery.html",
        nav=await _nav(request),
        d=delivery,
        subject=subject,
        sender=sender,
        headers=json.dumps(dict(delivery.headers), indent=2),
        payload=raw[:PAYLOAD_BYTES].decode("utf-8", "ignore") if cut else payload,
        payload_cut=cut,
        payload_shown_kib=PAYLOAD_BYTES // 1024,
        payload_kib=len(raw) // 1024,
        csrf=access.csrf_token(viewer),
        replayed=request.query.get("replayed") == "1",
        replayable=REPLAYABLE,
    )


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_length is not None and request.content_length > 16 * 1024:
        raise web.HTTPRequestEntityTooLarge(max_size=16 * 1024, actual_size=request.content_length)
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@_page_of
async def replay_delivery(request: web.Request) -> web.StreamResponse:
    viewer = await access.require_operator(request)
    await access.check_csrf(request, await _form(request))
    runtime = _runtime(request)
    delivery_id = request.match_info["delivery"]

    outcome = await runtime.store.call(
        lambda conn: deliveries_db.replay_delivery(conn, delivery_id)
    )
    if outcome == "unfinished":
        raise web.HTTPConflict(
            text=f"Delivery {delivery_id} is not finished: a worker may hold it, so it is not"
            " queued a second time."
        )
    if outcome == "pruned":
        raise web.HTTPNotFound(
            text=f"Delivery {delivery_id}'s payload was pruned by retention: there is nothing"
            " left to replay."
        )
    if outcome != "queued":
        raise web.HTTPNotFound(text=f"There is no delivery {delivery_id} to replay.")
    runtime.worker.wake()
    log.info("delivery %s replayed from the web by %s", delivery_id, viewer.login or "token")
    quoted = urllib.parse.quote(delivery_id, safe="")
    raise web.HTTPSeeOther(f"/deliveries/{quoted}?replayed=1")


@_page_of
async def outbox_page(request: web.Request) -> web.StreamResponse:
    viewer = await access.require_operator(request)
    runtime = _runtime(request)
    status = request.query.get("status", "")
    status = status if status in OUTBOX_STATES else ""
    items = await _read(
        runtime, lambda conn: outbox_db.list_outbox(conn, status=status or None, limit=100)
    )
    return page(
        "outbox.html",
        nav=await _nav(request),
        items=items,
        payloads={item.id: scrub(json.dumps(item.payload, indent=2)) for item in items},
        statuses=OUTBOX_STATES,
        chosen=status,
        csrf=access.csrf_token(viewer),
        retried=results.page_number(request.query.get("retried"))
        if request.query.get("retried")
        else None,
    )


@_page_of
async def retry_outbox(request: web.Request) -> web.StreamResponse:
    viewer = await access.require_operator(request)
    await access.check_csrf(request, await _form(request))
    runtime = _runtime(request)
    item_id = _int(request, "item")
    if not await runtime.store.call(lambda conn: outbox_db.retry_outbox(conn, item_id)):
        raise web.HTTPNotFound(text=f"There is no undelivered outbox item {item_id}.")
    runtime.outbox.wake()
    log.info("outbox item %s retried from the web by %s", item_id, viewer.login or "token")
    raise web.HTTPSeeOther(f"/outbox?retried={item_id}")


@dataclass(frozen=True)
class ScheduleView:
    schedule: Schedule
    #: newest first
    fires: list[FireRow]
    fire_url: str
    #: the schedule's own page, for the features that have one; else ""
    page_url: str = ""


def _fire_url(schedule: Schedule) -> str:
    owner, _, name = schedule.repo.partition("/")
    parts = (owner, name, schedule.feature, schedule.name)
    return "/schedules/" + "/".join(urllib.parse.quote(p, safe="") for p in parts) + "/fire"


def _schedule_views(conn: sqlite3.Connection) -> dict[str, list[ScheduleView]]:
    by_repo: dict[str, list[ScheduleView]] = {}
    for schedule in schedules_db.list_schedules(conn):
        fires = schedules_db.fires_of(
            conn, schedule.repo, schedule.feature, schedule.name, FIRES_SHOWN
        )
        page_url = ""
        if schedule.feature == scheduled.SCHEDULED_FEATURE:
            page_url = scheduled.schedule_url(schedule.repo, schedule.name)
        elif schedule.feature == benchmarks.FEATURE_NAME:
            page_url = benchmarks.benchmarks_url(schedule.repo)
        view = ScheduleView(schedule, fires, _fire_url(schedule), page_url)
        by_repo.setdefault(schedule.repo, []).append(view)
    return by_repo


@_page_of
async def schedules_page(request: web.Request) -> web.StreamResponse:
    viewer = await access.require_operator(request)
    runtime = _runtime(request)
    by_repo = await _read(runtime, _schedule_views)
    fired = request.query.get("fired")
    return page(
        "schedules.html",
        nav=await _nav(request),
        repos=sorted(by_repo.items(), key=lambda item: item[0].lower()),
        running=runtime.scheduler.running,
        csrf=access.csrf_token(viewer),
        fired=results.page_number(fired) if fired else None,
        flaky_url=scheduled.flaky_url,
    )


@_page_of
async def fire_schedule(request: web.Request) -> web.StreamResponse:
    """Fires a schedule now: its feature starts what a due fire starts, and the schedule's
    own times stay as they are."""
    viewer = await access.require_operator(request)
    await access.check_csrf(request, await _form(request))
    runtime = _runtime(request)
    info = request.match_info
    repo, feature, name = f"{info['owner']}/{info['repo']}", info["feature"], info["name"]
    not_running = web.HTTPServiceUnavailable(
        text="The scheduler does not run in this process (a dry run), so nothing fires."
    )
    if not runtime.scheduler.running:
        raise not_running
    try:
        fire = await runtime.scheduler.fire_now(repo, feature, name)
    except RuntimeError:
        raise not_running from None
    if fire is None:
        raise web.HTTPNotFound(text=f"{repo} has no enabled schedule {name!r} of {feature}.")
    log.info(
        "schedule %s of %s fired from the web by %s",
        name,
        repo,
        viewer.login or "token",
        extra={"feature": feature, "fire": fire.id},
    )
    raise web.HTTPSeeOther(f"/schedules?fired={fire.id}")


# ---------------------------------------------------------------------- scheduled runs' pages


async def _visible_repo(request: web.Request, what: str) -> str:
    """`owner/repo` from the path, when the viewer may see its pages: operators always, others
    as for its runs (a repository with a private run is for its readers). Else the answer a
    repository the bot knows nothing of gets, whoever asks, so a private one's schedules and
    tests cannot be told from missing ones; `what` names what was asked for."""
    who = await access.viewer(request)  # a wrong token is refused (401) before anything else
    info = request.match_info
    repo = f"{info['owner']}/{info['repo']}"
    if who.operator:
        return repo
    private = await _read(_runtime(request), lambda conn: verdicts_db.repo_private(conn, repo))
    if private is None or not await access.may_see_repo(request, repo, private=private):
        raise web.HTTPNotFound(text=MISSING_REPO.format(what=what))
    return repo


@dataclass(frozen=True)
class ScheduledRunRow:
    run: RunRecord
    totals: schedules_db.RunTotals | None
    rate: scheduled.RunRate
    #: changed tests per bucket: new, still failing, fixed, flaky
    changes: dict[str, int]


@_page_of
async def schedule_page(request: web.Request) -> web.StreamResponse:
    """A schedule's runs, newest first, with their pass rate over time."""
    runtime = _runtime(request)
    info = request.match_info
    name = info["name"]
    repo = await _visible_repo(request, f"the schedule {name} of {info['owner']}/{info['repo']}")
    before = (
        results.page_number(request.query.get("before")) if request.query.get("before") else None
    )

    def read(conn: sqlite3.Connection) -> tuple[Any, ...]:
        schedule = schedules_db.get_schedule(conn, repo, scheduled.SCHEDULED_FEATURE, name)
        runs = schedules_db.schedule_runs(
            conn, repo, name, kind=scheduled.SCHEDULED_KIND, before=before, limit=SCHEDULE_RUNS
        )
        ids = [run.id for run in runs]
        totals = schedules_db.run_totals(conn, ids)
        return schedule, runs, totals, verdicts_db.verdict_counts(conn, ids)

    schedule, runs, totals, counts = await runtime.store.call(read)
    if schedule is None and not runs and before is None:
        raise web.HTTPNotFound(
            text=MISSING_REPO.format(what=f"the schedule {name} of {info['owner']}/{info['repo']}")
        )
    rows = []
    for run in runs:
        total = totals.get(run.id)
        rate = scheduled.RunRate(
            run.id, run.requested_at, total.passed if total else 0, total.ran if total else 0
        )
        rows.append(
            ScheduledRunRow(run, total, rate, scheduled.change_counts(counts.get(run.id, {})))
        )
    here = scheduled.schedule_url(repo, name)
    return page(
        "schedule.html",
        nav=await _nav(request),
        refresh=60 if any(run.active for run in runs) else None,
        repo=repo,
        name=name,
        schedule=schedule,
        rows=rows,
        chart=scheduled.rate_chart(row.rate for row in rows),
        flaky_url=scheduled.flaky_url(repo),
        next_link=f"{here}?before={runs[-1].id}" if len(runs) == SCHEDULE_RUNS else "",
        first_link=here if before else "",
    )


@_page_of
async def test_history_page(request: web.Request) -> web.StreamResponse:
    """A test's outcome across its repository's scheduled runs."""
    runtime = _runtime(request)
    info = request.match_info
    repo = await _visible_repo(request, f"the tests of {info['owner']}/{info['repo']}")
    test = request.query.get("test", "")
    if not test.strip():
        raise web.HTTPBadRequest(text="Which test? Name it: ?test=<pytest node id>.")
    if len(test) > scheduled.MAX_TEST_CHARS:
        raise web.HTTPBadRequest(
            text=f"A test id here is at most {scheduled.MAX_TEST_CHARS} characters long."
        )

    def read(conn: sqlite3.Connection) -> tuple[Any, ...]:
        rows = verdicts_db.outcome_history(
            conn, repo, test, kind=scheduled.SCHEDULED_KIND, limit=HISTORY_RUNS
        )
        return rows, verdicts_db.get_flaky(conn, repo, test)

    rows, flaky = await runtime.store.call(read)
    # Decoding a year of runs' results is CPU work: kept off the loop that serves the webhook.
    history = await asyncio.to_thread(scheduled.history_of, rows, test)
    return page(
        "test_history.html",
        nav=await _nav(request),
        repo=repo,
        test=test,
        history=history,
        flaky=flaky,
        flaky_url=scheduled.flaky_url(repo),
        runs_covered=HISTORY_RUNS,
        schedule_url=scheduled.schedule_url,
    )


@_page_of
async def flaky_page(request: web.Request) -> web.StreamResponse:
    """The repository's flaky-test registry: tests that passed on a re-run of a failure."""
    runtime = _runtime(request)
    info = request.match_info
    repo = await _visible_repo(request, f"the flaky tests of {info['owner']}/{info['repo']}")
    found = await _read(runtime, lambda conn: verdicts_db.list_flaky(conn, repo))
    return page(
        "flaky.html",
        nav=await _nav(request),
        repo=repo,
        tests=[
            (flaky, scheduled.shown_test(flaky.test), scheduled.history_url(repo, flaky.test))
            for flaky in found
        ],
    )


# ---------------------------------------------------------------------- benchmarks


def _json_of(handler: Handler) -> Handler:
    """Answers an HTTP error from a JSON endpoint as JSON of the same status, so a dashboard
    reads why (`{"error": ...}`) where it reads the data."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {
                k: exc.headers[k] for k in ("WWW-Authenticate", "Retry-After") if k in exc.headers
            }
            message = (
                exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
            )
            return web.json_response(
                {"error": message, "status": exc.status}, status=exc.status, headers=headers
            )

    return wrapped


def _benchmarks_what(request: web.Request) -> str:
    info = request.match_info
    return f"the benchmarks of {info['owner']}/{info['repo']}"


def _bench_query(request: web.Request) -> benchmarks.Query:
    try:
        return benchmarks.parse_query(request.query)
    except benchmarks.BadQuery as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


async def _bench_results(
    request: web.Request,
) -> tuple[str, benchmarks.Query, list[benchmarks_db.BenchmarkResult], bool]:
    """Who may see it first (401, then 404 alike for hidden and missing), then the filters."""
    repo = await _visible_repo(request, _benchmarks_what(request))
    query = _bench_query(request)
    found, truncated = await _read(
        _runtime(request), lambda conn: benchmarks.read_results(conn, repo, query)
    )
    return repo, query, found, truncated


@_json_of
async def benchmarks_json(request: web.Request) -> web.StreamResponse:
    """A repository's results for dashboards: the newest `?limit=` that match, oldest first."""
    repo, query, found, truncated = await _bench_results(request)

    def encode() -> str:
        return json.dumps(
            {
                "repo": repo,
                "limit": query.limit,
                "count": len(found),
                "truncated": truncated,
                "results": [benchmarks.result_json(r) for r in found],
            }
        )

    # Ten thousand rows take a tenth of a second to write: kept off the event loop.
    return web.Response(text=await asyncio.to_thread(encode), content_type="application/json")


async def benchmarks_csv(request: web.Request) -> web.StreamResponse:
    """The same rows as the JSON, one line a result, as a download."""
    repo, _, found, truncated = await _bench_results(request)
    text = await asyncio.to_thread(benchmarks.csv_text, found)
    headers = {
        "Content-Disposition": f'attachment; filename="{benchmarks.csv_filename(repo)}"',
        "X-Truncated": "true" if truncated else "false",
    }
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers=headers)


@_page_of
async def benchmarks_page(request: web.Request) -> web.StreamResponse:
    """Each metric along the default branch's commits, with pull requests' results marked."""
    runtime = _runtime(request)
    repo = await _visible_repo(request, _benchmarks_what(request))
    query = _bench_query(request)
    cache = request.app[BENCHMARK_CHARTS]
    key = benchmarks.chart_key(repo, query)

    def read(conn: sqlite3.Connection) -> tuple[Any, ...]:
        # The version is read before the rows: a result recorded in between makes the next
        # view redraw, never keeps a chart older than its version.
        version = benchmarks_db.results_version(conn, repo)
        kept = cache.get(key, version)
        if kept is not None:
            return version, kept, None
        branches = benchmarks_db.chart_branches(conn, repo)
        branch = query.branch or (branches[0] if branches else "")
        rows = benchmarks_db.BranchRows()
        if branch:
            rows = benchmarks_db.branch_rows(
                conn, repo, branch, runs=benchmarks.CHART_RUNS, metrics=query.metrics
            )
        pulls = []
        if len(rows):
            pulls = benchmarks_db.pull_results_from(
                conn,
                repo,
                first_run=min(rows.run_id),
                metrics=query.metrics,
                limit=benchmarks.MARKS_PER_PANEL * benchmarks.MAX_PANELS,
            )
        names = benchmarks_db.metric_names(conn, repo, benchmarks.MAX_CHOICES)
        return version, None, (branches, branch, rows, pulls, names)

    version, view, fresh = await _read(runtime, read)
    if view is None:
        branches, branch, rows, pulls, names = fresh
        # Twenty thousand rows become geometry: CPU work, kept off the loop serving webhooks.
        drawn = await asyncio.to_thread(
            functools.partial(
                benchmarks.chart,
                rows,
                pulls,
                repo=repo,
                web_url=runtime.settings.github_web_url,
            )
        )
        view = benchmarks.ChartView(tuple(branches), branch, tuple(names), drawn)
        cache.put(key, version, view)
    branch = view.branch
    if not view.names:
        empty = (
            f"No benchmark results are recorded for {repo} yet: they come from the"
            " run-benchmark label on a pull request, pushes to the default branch, and"
            " schedules with benchmarks = true."
        )
    elif not branch:
        empty = f"{repo} has benchmark results of pull requests only, none of a branch yet."
    else:
        empty = f"No results of the chosen metrics on {branch}."
    return page(
        "benchmarks.html",
        nav=await _nav(request),
        repo=repo,
        branch=branch,
        branches=view.branches if branch in view.branches else (branch, *view.branches),
        metrics=benchmarks.choices(view.names, query.metrics),
        chart=view.chart,
        empty=empty,
        here=benchmarks.benchmarks_url(repo),
        json_url=benchmarks.benchmarks_url(repo, ".json"),
        csv_url=benchmarks.benchmarks_url(repo, ".csv"),
        dots_up_to=benchmarks.DOTS_UP_TO,
    )


# ---------------------------------------------------------------------- help


def _wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept


@_page_of
async def help_page(request: web.Request) -> web.StreamResponse:
    runtime = _runtime(request)
    helps = runtime.services.help
    if request.query.get("format") == "markdown":
        return web.Response(text=render_markdown(helps, runtime.settings.handle))
    if request.query.get("format") == "json" or not _wants_html(request):
        return web.json_response(
            {"handle": runtime.settings.handle, "features": [h.as_dict() for h in helps]}
        )
    return page("help.html", nav=await _nav(request), refresh=None, helps=helps)


def add_routes(app: web.Application, runtime: Runtime) -> None:
    for secret in runtime.settings.secrets:  # masked on every page, as in the logs
        add_secret(secret)
    app[RESULTS] = results.ResultsCache()
    app[BENCHMARK_CHARTS] = benchmarks.ChartCache()
    access.add_routes(app, runtime.settings)
    app.router.add_get("/", overview)
    app.router.add_get("/help", help_page)
    app.router.add_get("/runs", runs_page)
    app.router.add_get("/runs/{run}", run_page)
    app.router.add_get("/runs/{run}/jobs/{job}/log", job_log)
    app.router.add_get("/deliveries", deliveries_page)
    app.router.add_get("/deliveries/{delivery}", delivery_page)
    app.router.add_post("/deliveries/{delivery}/replay", replay_delivery)
    app.router.add_get("/outbox", outbox_page)
    app.router.add_post("/outbox/{item}/retry", retry_outbox)
    app.router.add_get("/schedules", schedules_page)
    app.router.add_get("/schedules/{owner}/{repo}/{name}", schedule_page)
    app.router.add_get("/tests/{owner}/{repo}", test_history_page)
    app.router.add_get("/flaky/{owner}/{repo}", flaky_page)
    # The exports first: the page's `{repo}` would take `name.json` too.
    app.router.add_get("/benchmarks/{owner}/{repo}.json", benchmarks_json)
    app.router.add_get("/benchmarks/{owner}/{repo}.csv", benchmarks_csv)
    app.router.add_get("/benchmarks/{owner}/{repo}", benchmarks_page)
    app.router.add_post("/schedules/{owner}/{repo}/{feature}/{name}/fire", fire_schedule)
