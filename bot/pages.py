"""The run pages the commit status links to: what runs, what failed and why, and the logs.

Plain server-rendered HTML that works without JavaScript; everything that came from a pull
request or a test run is escaped. While a run is going the page refreshes itself.
"""

from __future__ import annotations

import html
import time

from aiohttp import web

from bot.jobs import JobRecord, RunRecord

#: A log page shows its tail; the whole log is one click away (`?whole=1`).
LOG_TAIL_BYTES = 256 * 1024

_STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2em;max-width:70em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    "pre{background:#f6f8fa;padding:1em;overflow:auto}.failed,.error,.timed_out{color:#b00}"
    ".passed{color:#070}"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _page(title: str, body: str, *, refresh: bool = False) -> web.Response:
    meta = '<meta http-equiv="refresh" content="10">' if refresh else ""
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>{meta}"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return web.Response(text=text, content_type="text/html")


def render_run(run: RunRecord, jobs: list[JobRecord], web_url: str) -> web.Response:
    pull = f"{web_url}/{run.repo}/pull/{run.number}"
    commit = f"{web_url}/{run.repo}/commit/{run.head_sha}"
    title = run.spec.get("title") or ""
    rows = []
    for job in jobs:
        duration = f"{job.duration_s:.1f} s" if job.duration_s else "-"
        rows.append(
            f"<tr><td>{_e(job.spec.get('folder', job.name))}</td>"
            f"<td>{_e(job.spec.get('machine_type', ''))}</td>"
            f"<td class='{_e(job.state)}'>{_e(job.state)}</td>"
            f"<td>{job.passed}</td><td>{job.failed + job.errors}</td><td>{job.skipped}</td>"
            f"<td>{duration}</td><td><a href='/runs/{run.id}/jobs/{job.id}/log'>log</a></td>"
            f"</tr>"
        )
        if job.reason and job.state != "passed":
            rows.append(f"<tr><td colspan='8'>{_e(job.reason)}</td></tr>")
    failures = [
        f"<li><code>{_e(f.test)}</code>: <code>{_e(f.message)}</code></li>"
        for job in jobs
        for f in job.failures
    ]
    body = (
        f"<h1>Slow tests, run {run.id}: {_e(run.state)}</h1>"
        f"<p><a href='{_e(pull)}'>{_e(run.repo)}#{run.number}</a> {_e(title)}<br>"
        f"commit <a href='{_e(commit)}'><code>{_e(run.head_sha)}</code></a><br>"
        f"asked by <a href='{_e(web_url)}/{_e(run.requested_by)}'>{_e(run.requested_by)}</a>"
        f" at {_when(run.requested_at)}; finished {_when(run.finished_at)}"
        + (f"<br>{_e(run.reason)}" if run.reason else "")
        + "</p><table><tr><th>folder</th><th>machine</th><th>state</th><th>passed</th>"
        "<th>failed</th><th>skipped</th><th>duration</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
        + (f"<h2>Failures</h2><ul>{''.join(failures)}</ul>" if failures else "")
    )
    return _page(f"run {run.id}", body, refresh=run.active)


def render_log(run: RunRecord, job: JobRecord, log: str, *, whole: bool) -> web.Response:
    if not whole and len(log) > LOG_TAIL_BYTES:
        shown = log[-LOG_TAIL_BYTES:]
        note = (
            f"<p>The last {LOG_TAIL_BYTES // 1024} KiB of {len(log) // 1024} KiB;"
            f" <a href='?whole=1'>the whole log</a>.</p>"
        )
    else:
        shown, note = log, ""
    body = (
        f"<h1><a href='/runs/{run.id}'>run {run.id}</a> / {_e(job.name)}: {_e(job.state)}</h1>"
        f"{note}<pre>{_e(shown)}</pre>"
    )
    return _page(job.name, body, refresh=not job.done)
