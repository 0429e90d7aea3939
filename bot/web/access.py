"""Who may see what on the bot's pages, and signing in to find out.

Run pages of public repositories are public, as GitHub Actions logs are. A private
repository's runs are shown to a signed-in person whom GitHub lets read it (asked with their
own token, the answer kept a minute), and the operator pages (deliveries, outbox, replay,
retry) to the logins in `BOT_OPERATORS`. Scripts use the admin token instead of signing in.

Sessions live in this process's memory only: a restart signs everyone out, which costs a
click, and no user token is ever written to disk. Every form that changes something carries a
CSRF token derived from the session, so another site cannot post in a signed-in person's name;
a bearer-token request carries no cookie for another site to ride on, so it needs none.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar
from urllib.parse import quote

import aiohttp
from aiohttp import hdrs, web

from bot.clients.github import new_session
from bot.config import Settings
from bot.web.oauth import (
    OAuthClient,
    OAuthError,
    TokenRejected,
    can_read,
    fetch_login,
    local_path,
)

log = logging.getLogger("bot.web.access")

SESSION_COOKIE = "bot_session"
STATE_COOKIE = "bot_oauth_state"
#: The form field that carries the CSRF token (the templates' `csrf`).
CSRF_FIELD = "csrf"
#: As long as GitHub's expiring user-to-server tokens last.
SESSION_LIFETIME_S = 8 * 3600
MAX_SESSIONS = 10_000
#: How long GitHub's answer to "may this person read this repository" is trusted.
ACCESS_CACHE_S = 60.0
MAX_ACCESS_ANSWERS = 10_000
#: From `/login` to GitHub's callback: as long as GitHub's sign-in codes last.
LOGIN_LIFETIME_S = 600
#: The CSRF key. Per process, like the sessions it protects: a restart ends both.
_CSRF_KEY = secrets.token_bytes(32)

NOT_CONFIGURED = (
    "Signing in is not configured: set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (the GitHub"
    " App's OAuth client). Until then private pages and operator pages answer only the admin"
    " token (Authorization: Bearer <BOT_ADMIN_TOKEN>)."
)
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="maintainer-bot"'}


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page."""

    login: str | None  # None: anonymous (or the admin token)
    operator: bool  # admin token, or a signed-in login in BOT_OPERATORS
    via: Literal["anonymous", "session", "token"]
    session_id: str | None = field(default=None, repr=False)  # never rendered; for CSRF


ANONYMOUS = Viewer(None, False, "anonymous")
ADMIN = Viewer(None, True, "token")

K = TypeVar("K")
V = TypeVar("V")


class _Expiring(Generic[K, V]):
    """A bounded map whose entries expire: memory stays bounded whoever keeps signing in."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def put(self, key: K, value: V, ttl: float) -> None:
        self._items.pop(key, None)
        while len(self._items) >= self.limit:
            self._items.popitem(last=False)  # the oldest goes first
        self._items[key] = (value, self.clock() + ttl)

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is None:
            return None
        if found[1] <= self.clock():
            del self._items[key]
            return None
        return found[0]

    def pop(self, key: K) -> V | None:
        found = self.get(key)
        self._items.pop(key, None)
        return found

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _Session:
    login: str
    token: str = field(repr=False)


class Access:
    """The sign-in state of one web application: sessions and GitHub's recent access answers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: Monotonic seconds; a test moves it forward to see sessions expire.
        self.clock: Callable[[], float] = time.monotonic
        self.operators = frozenset(login.lower() for login in settings.operators)
        self.sessions: _Expiring[str, _Session] = _Expiring(MAX_SESSIONS, self._now)
        self.answers: _Expiring[tuple[str, str], bool] = _Expiring(MAX_ACCESS_ANSWERS, self._now)
        self.oauth: OAuthClient | None = None
        if settings.github_client_id and settings.github_client_secret:
            self.oauth = OAuthClient(
                settings.github_client_id,
                settings.github_client_secret,
                settings.github_web_url,
                settings.github_api_url,
            )
        self.secure_cookies = settings.public_url.startswith("https")
        self._http: aiohttp.ClientSession | None = None

    def _now(self) -> float:
        return self.clock()

    def http(self) -> aiohttp.ClientSession:
        """This module's own HTTP session, made on first use (inside the running loop): a
        sign-in must not wait behind, or depend on, the runtime's."""
        if self._http is None or self._http.closed:
            self._http = new_session(timeout=10.0)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def set_cookie(
        self, response: web.StreamResponse, name: str, value: str, *, max_age: int, path: str
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            httponly=True,
            samesite="Lax",  # sent on GitHub's redirect back, never on another site's POST
            secure=self.secure_cookies,
        )


ACCESS = web.AppKey("access", Access)
_VIEWER = web.RequestKey("viewer", Viewer)


def _access(request: web.Request) -> Access:
    found = request.config_dict.get(ACCESS)
    if found is None:
        raise RuntimeError("bot.web.access.add_routes() was not called for this application")
    return found


# ---------------------------------------------------------------------- who is looking


async def viewer(request: web.Request) -> Viewer:
    """Who is looking, worked out once per request. A request with an `Authorization` header
    that is not the admin token is refused (401), never served as anonymous: a script with a
    wrong token should fail loudly, not see less."""
    found = request.get(_VIEWER)
    if found is None:
        found = request[_VIEWER] = _identify(request, _access(request))
    return found


def _identify(request: web.Request, access: Access) -> Viewer:
    authorization = request.headers.get(hdrs.AUTHORIZATION)
    if authorization is not None:
        scheme, _, given = authorization.strip().partition(" ")
        expected = access.settings.admin_token
        if (
            scheme.lower() == "bearer"
            and expected
            and hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode())
        ):
            return ADMIN
        raise web.HTTPUnauthorized(text="wrong token", headers=_WWW_AUTHENTICATE)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        session = access.sessions.get(session_id)
        if session is not None:
            operator = session.login.lower() in access.operators
            return Viewer(session.login, operator, "session", session_id)
    return ANONYMOUS


async def may_see_repo(request: web.Request, repo: str, *, private: bool) -> bool:
    """Whether the viewer may see the runs of `repo`. A private one needs the admin token, or a
    signed-in person GitHub lets read it; GitHub's answer is kept a minute per (login, repo),
    so a page listing many runs costs one question per repository."""
    if not private:
        return True
    who = await viewer(request)
    if who.via == "token":
        return True
    if who.via != "session" or who.login is None or who.session_id is None:
        return False
    access = _access(request)
    session = access.sessions.get(who.session_id)
    if session is None:
        return False
    key = (who.login.lower(), repo.lower())
    known = access.answers.get(key)
    if known is not None:
        return known
    try:
        answer = await can_read(access.http(), access.settings.github_api_url, session.token, repo)
    except TokenRejected:
        # Revoked on GitHub, or expired: the session is over; the next page asks to sign in.
        access.sessions.pop(who.session_id)
        log.info("GitHub no longer takes a session's token", extra={"login": who.login})
        return False
    if answer is None:
        return False  # GitHub gave no answer: refuse now, ask again next time
    access.answers.put(key, answer, ACCESS_CACHE_S)
    return answer


async def require_repo(request: web.Request, repo: str, *, private: bool) -> Viewer:
    """The viewer, when they may see `repo`'s runs. Someone signed in who may not gets a 404,
    as GitHub answers, so a private repository's existence is not revealed; someone not
    signed in is sent to sign in. That redirect would itself tell an existing private thing
    from a missing one, so where the existence is the secret (a run's id) a page asks
    `may_see_repo` and answers exactly as for a missing one instead."""
    who = await viewer(request)
    if await may_see_repo(request, repo, private=private):
        return who
    signed_out = (
        who.session_id is not None and _access(request).sessions.get(who.session_id) is None
    )
    if who.via == "anonymous" or signed_out:
        raise _sign_in_first(request)
    raise web.HTTPNotFound(text="Not Found")


async def require_operator(request: web.Request) -> Viewer:
    """The viewer, when they are an operator (the admin token, or a login in BOT_OPERATORS)."""
    who = await viewer(request)
    if who.operator:
        return who
    if who.via == "anonymous":
        raise _sign_in_first(request)
    raise web.HTTPForbidden(text="This page is for the bot's operators (BOT_OPERATORS).")


def _sign_in_first(request: web.Request) -> web.HTTPException:
    """A browser is sent to sign in and come back; a script is told it needs a credential."""
    if "text/html" in request.headers.get(hdrs.ACCEPT, ""):
        # After signing in the browser comes back with a GET: a form's target would not do.
        here = request.rel_url.raw_path_qs if request.method in ("GET", "HEAD") else "/"
        return web.HTTPFound(f"/login?next={quote(here, safe='')}")
    return web.HTTPUnauthorized(
        text="sign in, or send Authorization: Bearer <BOT_ADMIN_TOKEN>",
        headers=_WWW_AUTHENTICATE,
    )


# ---------------------------------------------------------------------- CSRF


def csrf_token(viewer: Viewer) -> str:
    """The token a signed-in viewer's forms carry: bound to their session, so it cannot be
    learnt from anyone else's pages. "" for the admin token and anonymous viewers."""
    if viewer.via != "session" or not viewer.session_id:
        return ""
    return hmac.new(_CSRF_KEY, viewer.session_id.encode(), hashlib.sha256).hexdigest()


async def check_csrf(request: web.Request, form: Mapping[str, str]) -> None:
    """Refuses (403) a form post from a session without its CSRF token."""
    who = await viewer(request)
    if who.via == "token":
        return
    expected = csrf_token(who)
    given = form.get(CSRF_FIELD)
    if (
        not expected
        or not isinstance(given, str)
        or not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())
    ):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")


# ---------------------------------------------------------------------- signing in and out


def _redirect(location: str) -> web.Response:
    return web.Response(
        status=302, headers={hdrs.LOCATION: location, hdrs.CACHE_CONTROL: "no-store"}
    )


def _callback_url(request: web.Request, settings: Settings) -> str:
    """GitHub checks it against the App's callback URLs, so a forged Host header gains nothing."""
    origin = settings.public_url or f"{request.scheme}://{request.host}"
    return f"{origin}/login/callback"


def _pack_state(state: str, next_path: str) -> str:
    encoded = base64.urlsafe_b64encode(next_path.encode()).decode().rstrip("=")
    return f"{state}.{encoded}"


def _unpack_state(value: str) -> tuple[str, str]:
    state, _, encoded = value.partition(".")
    try:
        next_path = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        next_path = "/"
    return state, local_path(next_path)


def _oauth_failure(error: OAuthError) -> web.HTTPException:
    if error.status == 502:
        return web.HTTPBadGateway(text=error.message)
    return web.HTTPBadRequest(text=error.message)


async def _login(request: web.Request) -> web.StreamResponse:
    """Starts GitHub's web flow; the random `state` rides in a short-lived cookie, with where
    to come back to, so the callback can tell its own sign-in from one another site began."""
    access = _access(request)
    target = local_path(request.query.get("next"))
    if access.oauth is None:
        raise web.HTTPServiceUnavailable(text=NOT_CONFIGURED)
    if (await viewer(request)).via == "session":
        return _redirect(target)
    state = secrets.token_urlsafe(32)
    response = _redirect(access.oauth.authorize_url(_callback_url(request, access.settings), state))
    access.set_cookie(
        response,
        STATE_COOKIE,
        _pack_state(state, target),
        max_age=LOGIN_LIFETIME_S,
        path="/login/callback",
    )
    return response


async def _callback(request: web.Request) -> web.StreamResponse:
    access = _access(request)
    if access.oauth is None:
        raise web.HTTPServiceUnavailable(text=NOT_CONFIGURED)
    given = request.query.get("state", "")
    expected, target = _unpack_state(request.cookies.get(STATE_COOKIE, ""))
    if not given or not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPBadRequest(
            text="This sign-in was not started here, or took too long: start again at /login."
        )
    if "error" in request.query:  # the person said no on GitHub's page
        raise web.HTTPForbidden(text="GitHub did not sign you in.")
    code = request.query.get("code")
    if not code:
        raise web.HTTPBadRequest(text="GitHub sent no sign-in code: start again at /login.")
    http = access.http()
    try:
        token = await access.oauth.exchange(http, code, _callback_url(request, access.settings))
        login = await fetch_login(http, access.settings.github_api_url, token)
    except OAuthError as exc:
        raise _oauth_failure(exc) from None
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        access.sessions.pop(previous)
    session_id = secrets.token_urlsafe(32)  # a new id at every sign-in: none can be planted
    access.sessions.put(session_id, _Session(login, token), SESSION_LIFETIME_S)
    log.info("signed in", extra={"login": login})
    response = _redirect(target)
    access.set_cookie(response, SESSION_COOKIE, session_id, max_age=SESSION_LIFETIME_S, path="/")
    response.del_cookie(STATE_COOKIE, path="/login/callback")
    return response


async def _logout(request: web.Request) -> web.StreamResponse:
    """Ends the session. A post, with the CSRF token, so no other site can sign anyone out."""
    who = await viewer(request)
    if who.via == "session" and who.session_id is not None:
        form = await request.post()
        await check_csrf(request, {k: v for k, v in form.items() if isinstance(v, str)})
        _access(request).sessions.pop(who.session_id)
        log.info("signed out", extra={"login": who.login})
    response = _redirect("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def add_routes(app: web.Application, settings: Settings) -> None:
    """`/login`, GitHub's `/login/callback` and `/logout`, and the sign-in state they share."""
    access = Access(settings)
    app[ACCESS] = access

    async def close(_: web.Application) -> None:
        await access.close()

    app.on_cleanup.append(close)
    app.router.add_get("/login", _login)
    app.router.add_get("/login/callback", _callback)
    app.router.add_post("/logout", _logout)
