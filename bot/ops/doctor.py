"""`bot doctor`: what is wrong with this installation, one line a check.

Each check is a small pure function over data already fetched (GitHub's answers, a repository's
files, the store's counts) that returns results; `diagnose` fetches that data, from GitHub with
the App's JWT and each installation's token, from Slack with the bot token, and from the store
and the environment cache on this machine. A check that cannot run because an earlier one failed
(no JWT GitHub takes, say) says nothing rather than failing twice.

Statuses: `ok`; `warn`, something to look at that does not stop the bot; `fail`, a feature that
cannot work (the command then exits 1).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import email.utils
import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import aiohttp
import gidgethub
import gidgethub.apps
from slack_sdk.errors import SlackApiError

from bot.clients.github import GitHubAPI, GitHubClients, new_session
from bot.clients.repo_config import fetch_text
from bot.clients.slack import SlackWebAPI, SlackWebhook, make_sender
from bot.config import CONFIG_PATH, ConfigError, RepoConfig, Settings, parse_repo_config
from bot.jobs.runners import confine
from bot.jobs.runners.confine import UNCONFINED_VARIABLE, Confinement
from bot.kit.feature import Feature
from bot.store import deliveries, engine
from bot.store.engine import MIGRATIONS
from codeowners import OwnersFile, OwnersFileTooLarge, lint
from handlers import FEATURES

Status = Literal["ok", "warn", "fail"]

SECRET_MIN_CHARS = 20
#: GitHub checks an App JWT's times against its own clock: a minute of drift is forgiven (and
#: gidgethub backdates `iat` by one), past the JWT's ten minutes nothing is.
SKEW_WARN_S = 30.0
SKEW_FAIL_S = 300.0
RECENT_S = 24 * 3600.0
WAL_WARN_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Result:
    check: str
    status: Status
    detail: str

    def line(self) -> str:
        label = "FAIL" if self.status == "fail" else self.status
        return f"{label:<5} {self.check:<12} {printable(self.detail)}"

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail}


#: What a terminal obeys rather than shows: C0 and C1 controls (ESC starts a sequence that can
#: clear the screen, move the cursor or retitle the window; CR rewrites the line), and the line
#: and paragraph separators and bidirectional overrides that make text read as other text.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(text: str) -> str:
    """`text` safe to print on a terminal: each control character as its escape (`\\x1b`).

    The details quote GitHub and Slack (repository and team names, error messages), which are
    other people's text: a line of `bot doctor` must not be able to forge another, or hide one.
    """
    return _UNPRINTABLE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def ok(check: str, detail: str) -> Result:
    return Result(check, "ok", detail)


def warn(check: str, detail: str) -> Result:
    return Result(check, "warn", detail)


def fail(check: str, detail: str) -> Result:
    return Result(check, "fail", detail)


# --------------------------------------------------------------------------- what features need


@dataclass(frozen=True)
class Need:
    """Who needs a permission or an event, at which level, and for what: one line of doctor's
    explanation ("needed by slow tests: the check run")."""

    feature: str  # a feature's name, or APP
    title: str  # how people know it
    level: str  # "read" < "write" < "admin"; events: ""
    why: str


#: What GitHub asks of every App, whatever its features: not any feature's need, so doctor's.
APP = "app"
APP_PERMISSIONS = {"metadata": Need(APP, "every App", "read", "required of every App")}


def permission_needs(features: Sequence[Feature] | None = None) -> dict[str, tuple[Need, ...]]:
    """Each permission the App needs, with who needs it at which level and for what, in the
    order the features first need them (the App's own first); `app.yml` asks for exactly these,
    each at its highest level, and a test keeps the two in step."""
    table = {name: [need] for name, need in APP_PERMISSIONS.items()}
    for feature in FEATURES if features is None else features:
        for wanted in feature.permissions:
            need = Need(feature.name, feature.title, wanted.level, wanted.why)
            table.setdefault(wanted.permission, []).append(need)
    return {name: tuple(needs) for name, needs in table.items()}


def event_needs(features: Sequence[Feature] | None = None) -> dict[str, tuple[Need, ...]]:
    """Each webhook event a feature reacts to, likewise (`app.yml`'s `default_events`)."""
    table: dict[str, list[Need]] = {}
    for feature in FEATURES if features is None else features:
        for wanted in feature.events:
            need = Need(feature.name, feature.title, "", wanted.why)
            table.setdefault(wanted.event, []).append(need)
    return {name: tuple(needs) for name, needs in table.items()}


_LEVELS = {"read": 1, "write": 2, "admin": 3}


def enabled_features(
    configs: Iterable[RepoConfig], features: Sequence[Feature] | None = None
) -> frozenset[str]:
    """What some repository of an installation uses; none known: the defaults'."""
    features = FEATURES if features is None else features
    configs = list(configs) or [RepoConfig.of(features)]
    found = {APP}
    for feature in features:
        if any(feature.is_enabled(config) for config in configs):
            found.add(feature.name)
    return frozenset(found)


def _needed_by(needs: Iterable[Need]) -> str:
    return "; ".join(f"{n.title}: {n.why}" for n in needs)


def installation_label(installation: Mapping[str, Any]) -> str:
    account = (installation.get("account") or {}).get("login")
    label = f"installation {installation.get('id')}"
    return f"{label} ({account})" if account else label


def check_permissions(
    installation: Mapping[str, Any],
    enabled: frozenset[str],
    features: Sequence[Feature] | None = None,
) -> Result:
    """Whether what the installation was granted covers what the enabled features need."""
    granted = installation.get("permissions") or {}
    label = installation_label(installation)
    missing, unused = [], []
    for name, needs in permission_needs(features).items():
        have = _LEVELS.get(str(granted.get(name)), 0)
        short = [n for n in needs if _LEVELS[n.level] > have]
        wanted = [n for n in short if n.feature in enabled]
        if wanted:
            level = max((n.level for n in wanted), key=_LEVELS.__getitem__)
            had = f"has {granted[name]}; " if name in granted else ""
            missing.append(f"{name}: {level} ({had}needed by {_needed_by(wanted)})")
        elif short:
            level = max((n.level for n in short), key=_LEVELS.__getitem__)
            unused.append(f"{name}: {level} (only {_needed_by(short)}, not enabled)")
    if missing:
        return fail("permissions", f"{label}: missing {', '.join(missing)}")
    if unused:
        return warn("permissions", f"{label}: missing {', '.join(unused)}")
    return ok("permissions", f"{label}: {len(granted)} granted, all the enabled features need")


def check_events(
    installation: Mapping[str, Any],
    enabled: frozenset[str],
    features: Sequence[Feature] | None = None,
) -> Result:
    """Whether the installation subscribes to every event the enabled features react to."""
    subscribed = set(installation.get("events") or ())
    label = installation_label(installation)
    missing, unused = [], []
    for name, needs in event_needs(features).items():
        if name in subscribed:
            continue
        wanted = [n for n in needs if n.feature in enabled]
        if wanted:
            missing.append(f"{name} (needed by {_needed_by(wanted)})")
        else:
            unused.append(f"{name} (only {_needed_by(needs)}, not enabled)")
    if missing:
        return fail("events", f"{label}: missing {', '.join(missing)}")
    if unused:
        return warn("events", f"{label}: missing {', '.join(unused)}")
    return ok("events", f"{label}: subscribed to all the enabled features react to")


# --------------------------------------------------------------------------- secret, App, clock


def check_secret(secret: str | None) -> Result:
    if not secret:
        return fail("secret", "GITHUB_WEBHOOK_SECRET is not set: the server refuses to start")
    if len(secret) < SECRET_MIN_CHARS:
        return fail(
            "secret",
            f"GITHUB_WEBHOOK_SECRET has {len(secret)} characters; use at least"
            f" {SECRET_MIN_CHARS} (a short one is guessed, and deliveries forged)",
        )
    return ok("secret", f"GITHUB_WEBHOOK_SECRET is set ({len(secret)} characters)")


def check_clock(skew_s: float) -> Result:
    """`skew_s`: GitHub's clock minus this machine's, from a `Date` header."""
    ahead = "ahead of" if skew_s > 0 else "behind"
    said = f"GitHub's clock is {abs(skew_s):.0f} s {ahead} this machine's"
    if abs(skew_s) > SKEW_FAIL_S:
        return fail("clock", f"{said}: GitHub refuses the App's JWTs; sync the clock (NTP)")
    if abs(skew_s) > SKEW_WARN_S:
        return warn("clock", f"{said}: past a minute, GitHub refuses the App's JWTs")
    return ok("clock", f"GitHub's clock and this machine's agree within {SKEW_WARN_S:.0f} s")


def skew_from_date(date_header: str | None, local_time: float) -> float | None:
    """GitHub's `Date` minus the local time the answer came at; None without a usable header.
    A `Date` counts whole seconds, so half a second is added to meet it in the middle."""
    if not date_header:
        return None
    try:
        server = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    return server.timestamp() + 0.5 - local_time


def key_fingerprint(private_key: str) -> str | None:
    """`SHA256:...` of the key's public half, as the App's settings page lists its keys."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(private_key.encode(), password=None)
    except (ValueError, TypeError):
        return None
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def jwt_refused(app_id: str, status: int, message: str, fingerprint: str | None) -> Result:
    key = f"; this key is {fingerprint}" if fingerprint else ""
    return fail(
        "app",
        f"App {app_id}: GitHub refused the App's JWT ({status}: {message}); is"
        f" GITHUB_PRIVATE_KEY a current key of App {app_id}? The App's settings page lists"
        f" its keys' fingerprints{key}",
    )


# --------------------------------------------------------------------------- repositories


def check_repo_config(
    full_name: str, branch: str, text: str | None
) -> tuple[Result, RepoConfig | None]:
    """The repository's `.github/bot.toml` on its default branch; absent is the defaults."""
    if text is None:
        return ok(
            "config", f"{full_name}: no {CONFIG_PATH} on {branch}: the defaults"
        ), RepoConfig()
    try:
        config = parse_repo_config(text, source=f"{full_name}:{CONFIG_PATH}")
    except ConfigError as exc:
        return fail("config", f"{exc} (on {branch})"), None
    return ok("config", f"{full_name}: {CONFIG_PATH} on {branch} is valid"), config


def check_owners(
    full_name: str,
    branch: str,
    config: RepoConfig,
    text: str | None,
    paths: Sequence[str],
    *,
    truncated: bool = False,
) -> Result:
    """The owners file exists, parses, and what `bot codeowners lint` finds against the tree."""
    where = f"{full_name}: {config.reviewers.owners_file}"
    if not config.reviewers.enabled:
        return ok("owners", f"{full_name}: reviewer requests are off")
    if text is None:
        return warn(
            "owners",
            f"{where} is not on {branch}: no reviewers are requested (add it, or set"
            " [reviewers] enabled = false)",
        )
    try:
        owners = OwnersFile.parse(text, semantics=config.reviewers.semantics)
    except OwnersFileTooLarge as exc:
        return fail("owners", f"{where}: {exc}")
    findings = lint(owners, paths)
    errors = [f for f in findings if f.severity == "error"]
    counts = (
        f"{len(owners.rules)} rules, {len(errors)} error(s),"
        f" {len(findings) - len(errors)} warning(s)"
        + (" (tree truncated: some paths unchecked)" if truncated else "")
    )
    if errors:
        return warn("owners", f"{where}: {counts}; first: {errors[0]} (bot codeowners lint)")
    return ok("owners", f"{where}: {counts}")


# --------------------------------------------------------------------------- Slack


def wanted_channels(configs: Mapping[str, RepoConfig]) -> dict[str, list[str]]:
    """Each Slack channel the repositories post to, with who uses it (`repo [section]`)."""
    wanted: dict[str, list[str]] = {}
    for full_name, config in configs.items():
        if config.new_model.enabled:
            name = config.new_model.channel.strip().lstrip("#")
            wanted.setdefault(name, []).append(f"{full_name} [new_model]")
        if config.slow_ci.enabled and config.slow_ci.channel.strip():
            name = config.slow_ci.channel.strip().lstrip("#")
            wanted.setdefault(name, []).append(f"{full_name} [slow_ci]")
    return wanted


def check_channels(
    wanted: Mapping[str, Sequence[str]], channels: Sequence[Mapping[str, Any]]
) -> list[Result]:
    """Each wanted channel (by name or id) exists among those the bot sees and has it as a
    member: Slack refuses a bot's message to a channel it was not invited to."""
    known: dict[str, Mapping[str, Any]] = {}
    for channel in channels:
        known[str(channel.get("name"))] = channel
        known[str(channel.get("id"))] = channel
    results = []
    for name, users in sorted(wanted.items()):
        where = f"#{name} ({', '.join(users)})"
        channel = known.get(name)
        if channel is None:
            results.append(
                fail(
                    "channels",
                    f"{where}: not found among the {len(channels)} channels the bot can see",
                )
            )
        elif channel.get("is_archived"):
            results.append(fail("channels", f"{where}: archived"))
        elif not channel.get("is_member"):
            results.append(fail("channels", f"{where}: the bot is not a member (/invite it there)"))
        else:
            results.append(ok("channels", f"{where}: found, the bot is a member"))
    return results


# --------------------------------------------------------------------------- store, env cache


def check_store(database: str, *, now: float | None = None) -> list[Result]:
    """Writable, migrated, its WAL's size, failed deliveries and the outbox; never migrates."""
    now = time.time() if now is None else now
    path = Path(database)
    if not path.is_file():
        return [warn("store", f"no database at {database} yet: the bot makes it on start")]
    results = []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5.0, isolation_level=None)
    except sqlite3.Error as exc:
        return [fail("store", f"{database}: cannot open for writing: {exc}")]
    try:
        try:
            engine.probe_write(conn)
        except sqlite3.Error as exc:
            return [fail("store", f"{database}: not writable: {exc}")]
        version = engine.schema_version(conn)
        wal = path.with_name(path.name + "-wal")
        wal_size = wal.stat().st_size if wal.is_file() else 0
        said = f"{database}: writable, schema {version}, WAL {_size(wal_size)}"
        if version != len(MIGRATIONS):
            behind = "behind" if version < len(MIGRATIONS) else "ahead of"
            results.append(
                fail(
                    "store",
                    f"{said}: {behind} this bot's {len(MIGRATIONS)} migrations"
                    " (the server migrates on start)",
                )
            )
            return results
        if wal_size > WAL_WARN_BYTES:
            results.append(warn("store", f"{said}: large (a reader holds checkpoints back?)"))
        else:
            results.append(ok("store", said))
        failed = deliveries.count_failed_since(conn, now - RECENT_S)
        if failed:
            results.append(
                warn(
                    "processing",
                    f"{failed} deliveries failed in the last 24 h (bot deliveries --failed)",
                )
            )
        else:
            results.append(ok("processing", "no delivery failed in the last 24 h"))
        counts = engine.count_by_status(conn, "outbox")
        waiting, gave_up = counts.get("pending", 0), counts.get("failed", 0)
        said = f"{waiting} waiting, {gave_up} failed"
        if gave_up:
            results.append(warn("outbox", f"{said} (bot outbox; bot outbox --retry ID)"))
        else:
            results.append(ok("outbox", said))
    finally:
        conn.close()
    return results


def check_env_cache(cache_dir: str, test_python: str | None) -> Result:
    """The runner's cached test environments (`<cache>/<repo>/<key>/`, ready ones marked)."""
    if test_python:
        return ok("env-cache", f"not used: jobs run with BOT_TEST_PYTHON={test_python}")
    root = Path(cache_dir)
    if not root.is_dir():
        return ok("env-cache", f"{cache_dir}: empty (built at the first slow run)")
    ready = [
        env
        for repo in root.iterdir()
        if repo.is_dir()
        for env in repo.iterdir()
        if (env / ".ready").is_file()
    ]
    used = _disk_use(root)
    free = shutil.disk_usage(root).free
    said = f"{cache_dir}: {len(ready)} environment(s), {_size(used)}, {_size(free)} free"
    if free < 2 * 1024**3:
        return warn("env-cache", f"{said}: little room for a new one")
    return ok("env-cache", said)


def check_confinement(confinement: Confinement) -> Result:
    """Whether pull-request code can run here: the local runner and `/style` refuse to start
    any without a sandbox, and say so with these words."""
    if confinement.mode == "unavailable":
        return fail("confinement", confinement.refusal or confinement.reason)
    if confinement.mode == "unconfined":
        return warn(
            "confinement",
            f"{confinement.reason}: every test run and `/style` of a pull request can read the"
            " bot's files and secrets. Only for a private repository whose authors are all"
            f" trusted; unset {UNCONFINED_VARIABLE} to confine them with bubblewrap.",
        )
    user = "nobody" if confinement.host_user is not None else "an unprivileged user"
    return ok(
        "confinement",
        f"bubblewrap ({confinement.bwrap}): jobs run as {user} in their own namespaces,"
        " with only their folder writable",
    )


def _disk_use(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += (Path(folder) / name).lstat().st_blocks * 512
            except OSError:
                continue
    return total


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


# --------------------------------------------------------------------------- GitHub's hook log


@dataclass
class HookReview:
    """Deliveries that failed on GitHub's side lately: by guid, and what became of them."""

    failed: int = 0  # guids with a failed attempt in the window
    recovered: list[str] = field(default_factory=list)  # redelivered since, or the bot has it
    #: guid -> the latest failed attempt, for guids neither redelivered nor stored by the bot
    missed: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: guid -> the bot's status, for missed ones it stored and gave up on (`bot replay`)
    stored: dict[str, str] = field(default_factory=dict)


def _succeeded(attempt: Mapping[str, Any]) -> bool:
    code = attempt.get("status_code")
    return isinstance(code, int) and 200 <= code < 300 and attempt.get("status") == "OK"


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def review_hook_deliveries(
    attempts: Iterable[Mapping[str, Any]], stored: Mapping[str, str], *, now: float
) -> HookReview:
    """`attempts`: GitHub's hook log; `stored`: the bot's status of the guids it has."""
    by_guid: dict[str, list[Mapping[str, Any]]] = {}
    for attempt in attempts:
        at = _timestamp(attempt.get("delivered_at"))
        if at is not None and at >= now - RECENT_S and attempt.get("guid"):
            by_guid.setdefault(str(attempt["guid"]), []).append(attempt)
    review = HookReview()
    for guid, tries in by_guid.items():
        failures = [t for t in tries if not _succeeded(t)]
        if not failures:
            continue
        review.failed += 1
        # The bot has it unless it gave up on it: that one `bot replay` runs again.
        if any(_succeeded(t) for t in tries) or stored.get(guid, "failed") != "failed":
            review.recovered.append(guid)
            continue
        latest = max(failures, key=lambda t: (_timestamp(t.get("delivered_at")), t.get("id", 0)))
        review.missed[guid] = latest
        if guid in stored:
            review.stored[guid] = stored[guid]
    return review


def _describe(attempt: Mapping[str, Any]) -> str:
    event = attempt.get("event") or "?"
    action = attempt.get("action")
    return (
        f"{attempt.get('guid')} ({event}{'.' + action if action else ''}: {attempt.get('status')})"
    )


def check_hook_deliveries(review: HookReview) -> Result:
    if not review.failed:
        return ok("webhooks", "GitHub delivered everything in the last 24 h")
    if not review.missed:
        return warn(
            "webhooks",
            f"{review.failed} deliveries failed on GitHub's side in the last 24 h; all"
            " redelivered since or stored by the bot",
        )
    listed = ", ".join(_describe(a) for a in review.missed.values())
    return fail(
        "webhooks",
        f"{len(review.missed)} of {review.failed} failed deliveries in the last 24 h not"
        f" redelivered: {listed} (bot doctor --redeliver)",
    )


def redelivery_plan(review: HookReview) -> list[Mapping[str, Any]]:
    """The attempts to ask GitHub to redeliver: missed ones the bot never stored (one it
    stored would be answered "seen already": `bot replay` runs it again instead)."""
    return [a for guid, a in review.missed.items() if guid not in review.stored]


# --------------------------------------------------------------------------- gathering


class _DatedGitHubAPI(GitHubAPI):
    """Keeps the `Date` of the last answer and when it came, for the clock check."""

    date: str | None = None
    answered_at: float = 0.0

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        sent = time.time()
        status, answer_headers, data = await super()._request(method, url, headers, body)
        self.date = answer_headers.get("Date") or answer_headers.get("date")
        self.answered_at = (sent + time.time()) / 2
        return status, answer_headers, data


def _refusal(exc: gidgethub.HTTPException) -> str:
    return f"{int(exc.status_code)}: {exc}"


async def diagnose(settings: Settings, *, redeliver: bool = False) -> list[Result]:
    """Every check's results, in the order `bot doctor` prints them."""
    results = [check_secret(settings.webhook_secret)]
    configs: dict[str, RepoConfig] = {}
    async with new_session() as session:
        if settings.github_app_id:
            results += await _app_checks(session, settings, configs, redeliver=redeliver)
        elif settings.github_token:
            results.append(
                warn(
                    "app",
                    "token mode (GITHUB_TOKEN): the installation, repository and delivery"
                    " checks need App mode (GITHUB_APP_ID + GITHUB_PRIVATE_KEY)",
                )
            )
        else:
            results.append(
                fail("app", "no GitHub credentials: set GITHUB_APP_ID + GITHUB_PRIVATE_KEY")
            )
        results += await _slack_checks(session, settings, configs)
    results += await asyncio.to_thread(check_store, settings.database)
    results.append(
        await asyncio.to_thread(check_env_cache, settings.env_cache_dir, settings.test_python)
    )
    results.append(check_confinement(await asyncio.to_thread(confine.detect)))
    return results


async def _app_checks(
    session: aiohttp.ClientSession,
    settings: Settings,
    configs: dict[str, RepoConfig],
    *,
    redeliver: bool,
) -> list[Result]:
    app_id = str(settings.github_app_id)
    key = settings.github_private_key or ""
    try:
        jwt = gidgethub.apps.get_jwt(app_id=app_id, private_key=key)
    except Exception as exc:  # PyJWT / cryptography: a key that cannot sign at all
        return [
            fail(
                "app", f"App {app_id}: GITHUB_PRIVATE_KEY cannot sign a JWT ({type(exc).__name__})"
            )
        ]
    gh = _DatedGitHubAPI(session, base_url=settings.github_api_url, max_retries=1)
    results: list[Result] = []
    try:
        app = await gh.getitem("/app", jwt=jwt)
    except gidgethub.HTTPException as exc:
        date = (getattr(exc, "headers", None) or {}).get("Date") or gh.date
        skew = skew_from_date(date, gh.answered_at or time.time())
        if skew is not None and abs(skew) > SKEW_WARN_S:
            results.append(check_clock(skew))
        results.append(jwt_refused(app_id, int(exc.status_code), str(exc), key_fingerprint(key)))
        return results
    except (aiohttp.ClientError, TimeoutError) as exc:
        return [
            fail("app", f"GitHub unreachable at {settings.github_api_url}: {type(exc).__name__}")
        ]
    results.append(ok("app", f"App mode: App {app_id} ({app.get('slug')}), its JWT accepted"))
    skew = skew_from_date(gh.date, gh.answered_at)
    if skew is not None:
        results.append(check_clock(skew))
    clients = GitHubClients(session, settings)
    try:
        async for installation in gh.getiter("/app/installations", jwt=jwt):
            results += await _installation_checks(clients, installation, configs)
        results += await _hook_checks(gh, jwt, settings, redeliver=redeliver)
    except gidgethub.HTTPException as exc:
        results.append(fail("app", f"GitHub refused the checks' reads ({_refusal(exc)})"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        results.append(fail("app", f"GitHub stopped answering: {type(exc).__name__}"))
    return results


async def _installation_checks(
    clients: GitHubClients, installation: Mapping[str, Any], configs: dict[str, RepoConfig]
) -> list[Result]:
    label = installation_label(installation)
    if installation.get("suspended_at"):
        return [fail("installation", f"{label}: suspended since {installation['suspended_at']}")]
    try:
        gh = await clients.for_installation(int(installation["id"]))
        repos = [
            repo
            async for repo in gh.getiter("/installation/repositories", iterable_key="repositories")
        ]
    except gidgethub.HTTPException as exc:
        return [
            fail(
                "installation",
                f"{label}: cannot mint a token or list its repositories ({_refusal(exc)})",
            )
        ]
    repo_results: list[Result] = []
    mine: list[RepoConfig] = []
    for repo in repos:
        found, config = await _repo_checks(gh, repo)
        repo_results += found
        if config is not None:
            configs[repo["full_name"]] = config
            mine.append(config)
    features = enabled_features(mine)
    return [
        check_permissions(installation, features),
        check_events(installation, features),
        *repo_results,
    ]


async def _repo_checks(
    gh: GitHubAPI, repo: Mapping[str, Any]
) -> tuple[list[Result], RepoConfig | None]:
    full_name, branch = repo["full_name"], repo.get("default_branch") or "main"
    try:
        text = await fetch_text(gh, full_name, CONFIG_PATH, branch)
    except gidgethub.HTTPException as exc:
        return [fail("config", f"{full_name}: cannot read {CONFIG_PATH} ({_refusal(exc)})")], None
    except ConfigError as exc:  # not UTF-8: the server refuses it as it refuses bad TOML
        return [fail("config", f"{exc} (on {branch})")], None
    result, config = check_repo_config(full_name, branch, text)
    if config is None:
        return [result], None
    try:
        owners = None
        paths: list[str] = []
        truncated = False
        if config.reviewers.enabled:
            owners = await fetch_text(gh, full_name, config.reviewers.owners_file, branch)
            if owners is not None:
                tree = await gh.getitem(
                    f"/repos/{full_name}/git/trees/{{+ref}}{{?recursive}}",
                    url_vars={"ref": branch, "recursive": "1"},
                )
                paths = [e["path"] for e in tree.get("tree", ()) if e.get("type") == "blob"]
                truncated = bool(tree.get("truncated"))
    except gidgethub.HTTPException as exc:
        owners_result = fail(
            "owners", f"{full_name}: cannot read {config.reviewers.owners_file} ({_refusal(exc)})"
        )
    except ConfigError as exc:
        owners_result = fail("owners", str(exc))
    else:
        owners_result = check_owners(full_name, branch, config, owners, paths, truncated=truncated)
    return [result, owners_result], config


async def _hook_checks(
    gh: GitHubAPI, jwt: str, settings: Settings, *, redeliver: bool
) -> list[Result]:
    now = time.time()
    attempts = []
    try:
        async for attempt in gh.getiter("/app/hook/deliveries?per_page=100", jwt=jwt):
            at = _timestamp(attempt.get("delivered_at"))
            if at is not None and at < now - RECENT_S:
                break  # newest first: the rest is older still
            attempts.append(attempt)
    except gidgethub.HTTPException as exc:
        return [warn("webhooks", f"cannot read the App's hook deliveries ({_refusal(exc)})")]
    guids = {str(a.get("guid")) for a in attempts if a.get("guid")}
    stored = await asyncio.to_thread(_stored_statuses, settings.database, guids)
    review = review_hook_deliveries(attempts, stored, now=now)
    results = [check_hook_deliveries(review)]
    for guid, status in review.stored.items():
        results.append(
            warn(
                "redeliver",
                f"{guid}: the bot stored it ({status}); run it again with `bot replay {guid}`",
            )
        )
    if not redeliver:
        return results
    for attempt in redelivery_plan(review):
        try:
            await gh.post(f"/app/hook/deliveries/{attempt['id']}/attempts", data={}, jwt=jwt)
        except gidgethub.HTTPException as exc:
            results.append(
                fail("redeliver", f"{_describe(attempt)}: GitHub refused ({_refusal(exc)})")
            )
        else:
            results.append(ok("redeliver", f"asked GitHub to redeliver {_describe(attempt)}"))
    return results


def _stored_statuses(database: str, guids: Iterable[str]) -> dict[str, str]:
    """The bot's status of each of these delivery ids it stored (read only)."""
    if not Path(database).is_file():
        return {}
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5.0)
    conn.row_factory = sqlite3.Row
    try:
        found = {}
        for guid in guids:
            delivery = deliveries.get_delivery(conn, guid)
            if delivery is not None:
                found[guid] = delivery.status
        return found
    finally:
        conn.close()


async def _slack_checks(
    session: aiohttp.ClientSession, settings: Settings, configs: Mapping[str, RepoConfig]
) -> list[Result]:
    sender = make_sender(settings, session)
    if isinstance(sender, SlackWebhook):
        return [
            warn(
                "slack",
                "incoming webhook only: every message goes to the webhook's channel;"
                " the channels in bot.toml are not used",
            )
        ]
    if not isinstance(sender, SlackWebAPI):
        return [warn("slack", "not configured (SLACK_BOT_TOKEN): messages are only logged")]
    client = sender.client
    try:
        who = await client.auth_test()
        channels: list[Mapping[str, Any]] = []
        cursor = None
        while True:
            page = await client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            channels += page.get("channels") or []
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
    except SlackApiError as exc:
        data = exc.response.data if exc.response is not None else None
        error = data.get("error") if isinstance(data, dict) else None
        return [fail("slack", f"Slack refused: {error or exc}")]
    except (aiohttp.ClientError, TimeoutError) as exc:
        return [
            fail("slack", f"Slack unreachable at {settings.slack_api_url}: {type(exc).__name__}")
        ]
    results = [
        ok(
            "slack",
            f"auth.test: {who.get('user')} in {who.get('team')}, {len(channels)} channels visible",
        )
    ]
    wanted = wanted_channels(configs or {"default config": RepoConfig()})
    return results + check_channels(wanted, channels)


# --------------------------------------------------------------------------- command


async def doctor(
    settings: Settings, *, redeliver: bool = False, as_json: bool = False, out: TextIO = sys.stdout
) -> int:
    """Runs every check and prints the results; 1 when any failed."""
    results = await diagnose(settings, redeliver=redeliver)
    if as_json:
        print(json.dumps([r.as_json() for r in results], indent=2), file=out)
    else:
        for result in results:
            print(result.line(), file=out)
    return 1 if any(r.status == "fail" for r in results) else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    return asyncio.run(
        doctor(Settings.from_environment(), redeliver=args.redeliver, as_json=args.json)
    )


def register_cli(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check this installation: secret, App, permissions, repositories, Slack, store",
        description="One line a check (ok, warn, FAIL); exits 1 when any check fails.",
    )
    doctor.add_argument("--json", action="store_true", help="a list of {check, status, detail}")
    doctor.add_argument(
        "--redeliver",
        action="store_true",
        help="ask GitHub to redeliver the deliveries it failed to make in the last 24 h",
    )
    doctor.set_defaults(func=cmd_doctor)
