"""GitHub access through gidgethub: App or token credentials, retries, rate limits, dry runs.

Handlers get a `GitHubAPI` that already knows how to authenticate for the installation the
delivery came from and how to survive GitHub's bad moments (5xx answers, dropped connections,
rate limits), so feature code never repeats that logic.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import gidgethub
import gidgethub.aiohttp
import gidgethub.apps
import gidgethub.sansio

from bot import logs
from bot.clients.backoff import backoff_delay, rate_limit_wait
from bot.config import Settings

log = logging.getLogger("bot.clients.github")

USER_AGENT = "maintainer-bot"
#: The REST API version every request asks for, and its media type: a change of GitHub's default
#: version then cannot change the answers under the bot.
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
API_HEADERS = {"Accept": MEDIA_TYPE, "X-GitHub-Api-Version": API_VERSION}
#: Installation tokens live an hour; renew a few minutes early so no request carries a dying one.
TOKEN_RENEW_MARGIN = 300.0
_READ_METHODS = frozenset({"GET", "HEAD"})


class CredentialsMissing(RuntimeError):
    """The delivery needs GitHub, and no way to authenticate for it is configured."""


def pin_api_version(headers: Mapping[str, str]) -> dict[str, str]:
    """A request's headers with the API version pinned; gidgethub's default media type (the
    older `vnd.github.v3+json`) becomes GitHub's current one, a chosen one is kept."""
    pinned = {key.lower(): value for key, value in headers.items()}
    if pinned.get("accept") in (None, gidgethub.sansio.accept_format()):
        pinned["accept"] = MEDIA_TYPE
    pinned["x-github-api-version"] = API_VERSION
    return pinned


class PinnedGitHubAPI(gidgethub.aiohttp.GitHubAPI):
    """Plain gidgethub, with the API version pinned on every request."""

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        return await super()._request(method, url, pin_api_version(headers), body)


class GitHubAPI(PinnedGitHubAPI):
    """gidgethub's client plus retries on transient failures and waits on rate limits."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        requester: str = USER_AGENT,
        *,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_rate_limit_wait: float = 120.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(session, requester, **kwargs)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_rate_limit_wait = max_rate_limit_wait

    def _delay(self, attempt: int) -> float:
        return backoff_delay(attempt, self.backoff)

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await super()._request(method, url, headers, body)
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                if attempt > self.max_retries:
                    raise
                log.warning(
                    "GitHub request failed, retrying",
                    extra={"method": method, "url": url, "error": type(exc).__name__},
                )
                await self.sleep(self._delay(attempt))

    async def handle_rate_limit_error(
        self, *, method: str, url: str, exception: gidgethub.HTTPException, attempt: int
    ) -> bool:
        retry = await self._should_retry(method, url, exception, attempt)
        if not retry:
            # Tracebacks kept for `bot deliveries --failed` then say which call failed and how.
            exception.add_note(f"GitHub answered {int(exception.status_code)} to {method} {url}")
        return retry

    async def _should_retry(
        self, method: str, url: str, exception: gidgethub.HTTPException, attempt: int
    ) -> bool:
        if attempt > self.max_retries:
            return False
        status = int(exception.status_code)
        headers = getattr(exception, "headers", None) or {}
        wait = rate_limit_wait(status, headers)
        if wait is not None:
            if wait > self.max_rate_limit_wait:
                return False
            log.warning(
                "GitHub rate limit, waiting",
                extra={"method": method, "url": url, "wait_s": round(wait, 1)},
            )
            await self.sleep(wait)
            return True
        if status in (500, 502, 503, 504):
            await self.sleep(self._delay(attempt))
            return True
        return False


@dataclass
class RecordedWrite:
    method: str
    url: str
    body: Any


class DryRunGitHubAPI(GitHubAPI):
    """Performs every read for real and records every write instead of sending it."""

    def __init__(
        self, *args: Any, writes: list[RecordedWrite] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # Shared with the other clients of one run, so the run can print every write at the end.
        self.writes: list[RecordedWrite] = [] if writes is None else writes

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        if method in _READ_METHODS:
            return await super()._request(method, url, headers, body)
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        self.writes.append(RecordedWrite(method, url, parsed))
        log.info("dry run: not sending %s %s", method, url, extra={"body": parsed})
        status = 201 if method == "POST" else 200
        return status, {"content-type": "application/json"}, b"{}"


class NoCredentialsGitHubAPI(GitHubAPI):
    """Stands in when no credentials are configured: any request fails with a clear error."""

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        raise CredentialsMissing(
            f"{method} {url} needs GitHub credentials:"
            " set GITHUB_APP_ID + GITHUB_PRIVATE_KEY, or GITHUB_TOKEN"
        )


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass
class GitHubClients:
    """Hands out a client per installation (App mode) or one shared token (token mode)."""

    session: aiohttp.ClientSession
    settings: Settings
    dry_run: bool = False
    #: Writes that dry-run clients recorded instead of sending, across all of them.
    dry_run_writes: list[RecordedWrite] = field(default_factory=list)
    _tokens: dict[int, _Token] = field(default_factory=dict)
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        if self.settings.github_app_id:
            return "app"
        if self.settings.github_token:
            return "token"
        return "anonymous"

    def _client(self, token: str | None = None, **kwargs: Any) -> GitHubAPI:
        if self.dry_run:
            kwargs["writes"] = self.dry_run_writes
            return DryRunGitHubAPI(
                self.session, oauth_token=token, base_url=self.settings.github_api_url, **kwargs
            )
        return GitHubAPI(
            self.session, oauth_token=token, base_url=self.settings.github_api_url, **kwargs
        )

    async def for_installation(self, installation_id: int | None) -> GitHubAPI:
        if self.settings.github_app_id:
            if installation_id is None:
                if not self.settings.github_token:
                    raise CredentialsMissing(
                        "this delivery names no installation, and GITHUB_TOKEN is not set"
                    )
                return self._client(self.settings.github_token)
            return self._client(await self.installation_token(installation_id))
        if self.settings.github_token:
            return self._client(self.settings.github_token)
        if self.dry_run:
            return self._client(None)  # public reads still work without credentials
        # Handlers that decide not to act never touch GitHub; only a real call must fail.
        return NoCredentialsGitHubAPI(self.session, base_url=self.settings.github_api_url)

    async def fetch_token(self, installation_id: int | None) -> str | None:
        """The token a job's `git fetch` of a private repository uses; None when none is set."""
        if self.settings.github_app_id and installation_id is not None:
            return await self.installation_token(installation_id)
        return self.settings.github_token

    async def installation_token(self, installation_id: int) -> str:
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached and cached.expires_at - TOKEN_RENEW_MARGIN > time.time():
                return cached.value
            minter = GitHubAPI(self.session, base_url=self.settings.github_api_url)
            answer = await gidgethub.apps.get_installation_access_token(
                minter,
                installation_id=str(installation_id),
                app_id=str(self.settings.github_app_id),
                private_key=self.settings.github_private_key or "",
            )
            token = _Token(answer["token"], _parse_time(answer.get("expires_at")))
            self._tokens[installation_id] = token
            # Minted here, so no configured secret covers it: logs must mask it all the same
            # (a token in a git URL or an error message).
            logs.add_secret(token.value)
            log.info("minted installation token", extra={"installation": installation_id})
            return token.value


def checks_refused(exc: gidgethub.HTTPException) -> bool:
    """GitHub will not take check runs from this credential (a personal token: 403; no access:
    404), as opposed to a rate limit's 403, which passes."""
    if int(exc.status_code) not in (403, 404) or isinstance(exc, gidgethub.RateLimitExceeded):
        return False
    headers = {k.lower(): v for k, v in (getattr(exc, "headers", None) or {}).items()}
    return "retry-after" not in headers


def _parse_time(value: str | None) -> float:
    if not value:
        return time.time() + 3600
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def new_session(*, timeout: float = 30.0) -> aiohttp.ClientSession:
    """One HTTP session for all GitHub and Slack calls; a stuck peer cannot hang a handler."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
