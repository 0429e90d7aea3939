"""Turns records into HTML through Jinja2 templates, with every value escaped and scrubbed.

Autoescaping is on for every template, and `finalize` passes each printed value through the
secret scrubber before it is escaped: a token that reached a log, a payload or an error text is
masked on the page as it is in the log lines. Templates live in `templates/` beside this file.
"""

from __future__ import annotations

import time
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from bot.logs import known_secrets, redact

_ENV: jinja2.Environment | None = None


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _ago(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    delta = max(0.0, time.time() - timestamp)
    if delta < 90:
        return f"{int(delta)} s ago"
    if delta < 90 * 60:
        return f"{int(delta // 60)} min ago"
    if delta < 36 * 3600:
        return f"{int(delta // 3600)} h ago"
    return f"{int(delta // 86400)} days ago"


def _code_spans(text: str) -> Markup:
    """Help text's `backticks` as <code>, everything else escaped."""
    parts = str(escape(text)).split("`")
    out = []
    for i, part in enumerate(parts):
        out.append(f"<code>{part}</code>" if i % 2 and i < len(parts) - 1 else part)
    if len(parts) % 2 == 0:  # an odd number of backticks: the last one stays literal
        out[-1] = "`" + out[-1]
    return Markup("".join(out))  # noqa: S704 - every part was escaped above


def environment() -> jinja2.Environment:
    """One environment per process: templates compile once."""
    global _ENV
    if _ENV is None:
        env = jinja2.Environment(
            loader=jinja2.PackageLoader("bot.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_scrub_value,
        )
        env.filters.update(when=_when, duration=_duration, ago=_ago, code_spans=_code_spans)
        _ENV = env
    return _ENV


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, Markup):
        return scrub(value)
    return value


def scrub(text: str) -> str:
    """Masks every secret the bot knows of (the configured ones, registered with the logs when
    the pages are set up, and those minted since), as the log lines do."""
    secrets = known_secrets()
    return redact(text, secrets) if secrets else text


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def page(template: str, *, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("refresh", None)
    return web.Response(
        text=render(template, **context),
        status=status,
        content_type="text/html",
        headers=SECURITY_HEADERS,
    )


#: Pages load nothing from elsewhere and run no script: the policy says so to the browser. The
#: server sends it with every answer (errors, JSON, plain text), not only with the pages.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
