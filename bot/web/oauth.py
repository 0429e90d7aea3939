"""Signing in with GitHub: the OAuth web flow of the GitHub App's own client, and what the
signed-in person's token is used to ask GitHub.

The App's client rather than a separate OAuth App: one registration serves webhooks and pages,
and the user-to-server token it yields reads no more than both the person and the App may.
That token is a secret: it is masked in logs from the moment it arrives, lives only in memory,
and travels only in an `Authorization` header, never in a URL, a page or a log line.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import aiohttp
import gidgethub
import gidgethub.aiohttp

from bot import logs
from bot.clients.github import USER_AGENT, PinnedGitHubAPI

log = logging.getLogger("bot.web.oauth")

#: `owner/name` as GitHub spells repositories; anything else is not asked about.
_REPO = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9_.-]{1,100}")
#: What GitHub's error codes look like (`bad_verification_code`); anything else is not echoed.
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


class OAuthError(Exception):
    """The sign-in did not complete. The message is for the person signing in; it never holds
    a secret. `status` is 400 when starting again may help, 502 when GitHub misbehaved."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class TokenRejected(Exception):
    """GitHub no longer takes the person's token (revoked, or expired): they must sign in again."""


@dataclass(frozen=True)
class OAuthClient:
    """The GitHub App's OAuth client, on GitHub's web host (Enterprise and the sandbox too)."""

    client_id: str
    client_secret: str = field(repr=False)
    web_url: str
    api_url: str

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        """Where the browser goes to sign in; GitHub comes back to `redirect_uri` with a code."""
        query = urlencode(
            {"client_id": self.client_id, "redirect_uri": redirect_uri, "state": state}
        )
        return f"{self.web_url}/login/oauth/authorize?{query}"

    async def exchange(self, http: aiohttp.ClientSession, code: str, redirect_uri: str) -> str:
        """The user-to-server token for the code GitHub handed the browser (usable once)."""
        body = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
        }
        try:
            async with http.post(
                f"{self.web_url}/login/oauth/access_token",
                json=body,
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            ) as response:
                status, text = response.status, await response.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("GitHub's token exchange failed", extra={"error": type(exc).__name__})
            raise OAuthError("GitHub did not answer the sign-in; try again", 502) from None
        try:
            answer = json.loads(text) if status == 200 else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            log.warning("GitHub's token exchange answered oddly", extra={"status": status})
            raise OAuthError("GitHub did not complete the sign-in; try again", 502)
        token = answer.get("access_token")
        if isinstance(token, str) and token:
            logs.add_secret(token)
            return token
        # GitHub answers 200 with an `error` field: an expired or reused code, a wrong secret.
        error = answer.get("error")
        code_name = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "error"
        log.warning("GitHub refused the sign-in code", extra={"error": code_name})
        if code_name == "incorrect_client_credentials":
            raise OAuthError(
                "GitHub refused the bot's OAuth client: check GITHUB_CLIENT_ID and"
                " GITHUB_CLIENT_SECRET",
                502,
            )
        raise OAuthError(f"GitHub refused the sign-in ({code_name}); start again at /login")


def user_client(
    http: aiohttp.ClientSession, api_url: str, token: str
) -> gidgethub.aiohttp.GitHubAPI:
    """gidgethub speaking as the signed-in person. Plain gidgethub, not the bot's retrying
    client: a page must answer now, not after a rate-limit wait."""
    return PinnedGitHubAPI(http, USER_AGENT, oauth_token=token, base_url=api_url)


async def fetch_login(http: aiohttp.ClientSession, api_url: str, token: str) -> str:
    """Who the token belongs to."""
    try:
        me = await user_client(http, api_url, token).getitem("/user")
    except (gidgethub.GitHubException, TimeoutError, aiohttp.ClientError) as exc:
        log.warning("GitHub did not say who signed in", extra={"error": type(exc).__name__})
        raise OAuthError("GitHub did not say who you are; try again", 502) from None
    login = me.get("login") if isinstance(me, dict) else None
    if not isinstance(login, str) or not login:
        raise OAuthError("GitHub did not say who you are; try again", 502)
    return login


async def can_read(http: aiohttp.ClientSession, api_url: str, token: str, repo: str) -> bool | None:
    """Whether the token's owner may read `repo`: GitHub answers 404 to people without access.
    None when GitHub gave no answer (down, rate-limited), which is no reason to cache a refusal.
    """
    if not _REPO.fullmatch(repo):
        return False
    owner, name = repo.split("/")
    path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
    try:
        found = await user_client(http, api_url, token).getitem(path)
    except gidgethub.RateLimitExceeded:
        return None
    except gidgethub.BadRequest as exc:
        status = int(exc.status_code)
        if status == 401:
            raise TokenRejected from None
        return False if status in (403, 404) else None
    except (gidgethub.GitHubException, TimeoutError, aiohttp.ClientError) as exc:
        log.warning("GitHub did not answer an access check", extra={"error": type(exc).__name__})
        return None
    permissions = found.get("permissions") if isinstance(found, dict) else None
    return isinstance(permissions, dict) and permissions.get("pull") is True


def local_path(value: str | None) -> str:
    """`value` when it is a path on this site, else `/`: where to go after signing in must never
    be another site (`//evil.example`, `/\\evil.example`, a tab browsers drop, a full URL).
    Only printable ASCII: the paths the bot sends here are percent-encoded already."""
    if (
        not value
        or len(value) > 2000
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or not (value.isascii() and value.isprintable())
    ):
        return "/"
    return value
