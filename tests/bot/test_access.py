"""Who may see what: public and private run pages, signing in with GitHub's OAuth web flow
against the sandbox GitHub, the admin token, operators, CSRF and signing out.

A small aiohttp app with `access.add_routes` and one page per interface function stands in for
the real pages; a browser is an aiohttp client session that keeps cookies and follows each
redirect by hand, so every answer on the way can be looked at.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import gidgethub
import pytest
from aiohttp import web
from gidgethub.aiohttp import GitHubAPI
from multidict import CIMultiDictProxy
from yarl import URL

from bot import logs
from bot.config import ConfigError, Settings
from bot.web import access
from bot.web.oauth import local_path
from tests.sandbox import SandboxGitHub

ADMIN_TOKEN = "admin-token-0123456789abcdef"
PUBLIC, PRIVATE, OTHER_PRIVATE = "acme/open", "acme/secret", "acme/hidden"


# ---------------------------------------------------------------------- the world


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[SandboxGitHub]:
    github = SandboxGitHub(tmp_path / "github")
    await github.start()
    github.create_repo(PUBLIC, files={"README.md": "open\n"})
    github.create_repo(PRIVATE, files={"README.md": "secret\n"}, private=True)
    github.create_repo(OTHER_PRIVATE, files={"README.md": "hidden\n"}, private=True)
    github.add_collaborator(PRIVATE, "alice", "read")
    github.add_collaborator(OTHER_PRIVATE, "alice", "read")
    github.add_user("bob")
    yield github
    await github.close()


async def public_page(request: web.Request) -> web.Response:
    who = await access.require_repo(request, PUBLIC, private=False)
    return web.Response(text=f"{PUBLIC} for {who.login or who.via}")


async def private_page(request: web.Request) -> web.Response:
    repo = f"{request.match_info['owner']}/{request.match_info['name']}"
    who = await access.require_repo(request, repo, private=True)
    return web.Response(text=f"{repo} for {who.login or who.via}")


async def ops_page(request: web.Request) -> web.Response:
    who = await access.require_operator(request)
    return web.json_response({"login": who.login, "csrf": access.csrf_token(who)})


async def replay(request: web.Request) -> web.Response:
    await access.require_operator(request)
    form = await request.post()
    await access.check_csrf(request, {k: v for k, v in form.items() if isinstance(v, str)})
    return web.Response(text="replayed")


async def whoami(request: web.Request) -> web.Response:
    who = await access.viewer(request)
    body = {"login": who.login, "operator": who.operator, "via": who.via}
    return web.json_response({**body, "csrf": access.csrf_token(who)})


@dataclass
class Bot:
    url: str
    app: web.Application

    @property
    def access(self) -> access.Access:
        return self.app[access.ACCESS]

    def at(self, path: str) -> str:
        return self.url + path


MakeBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
def make_bot(aiohttp_server: Any, hub: SandboxGitHub) -> MakeBot:
    async def factory(**overrides: Any) -> Bot:
        settings = Settings(
            webhook_secret="not-used-here",
            github_api_url=hub.url,
            github_client_id=hub.oauth_client_id,
            github_client_secret=hub.oauth_client_secret,
            admin_token=ADMIN_TOKEN,
            operators=("Alice",),
        )
        app = web.Application()
        access.add_routes(app, dataclasses.replace(settings, **overrides))
        app.router.add_get("/public", public_page)
        app.router.add_get("/private/{owner}/{name}", private_page)
        app.router.add_get("/ops", ops_page)
        app.router.add_post("/ops/replay", replay)
        app.router.add_get("/whoami", whoami)
        server = await aiohttp_server(app)
        return Bot(str(server.make_url("")).rstrip("/"), app)

    return factory


@pytest.fixture
async def bot(make_bot: MakeBot) -> Bot:
    return await make_bot()


@pytest.fixture
async def browsers() -> AsyncIterator[Callable[[], aiohttp.ClientSession]]:
    """Browsers: each keeps its own cookies (for 127.0.0.1 too, hence `unsafe`)."""
    opened: list[aiohttp.ClientSession] = []

    def new() -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        opened.append(session)
        return session

    yield new
    for session in opened:
        await session.close()


@dataclass
class Hop:
    url: str
    status: int
    headers: CIMultiDictProxy[str]
    body: str

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    @property
    def cookies(self) -> list[str]:
        return self.headers.getall("Set-Cookie", [])


async def step(
    browser: aiohttp.ClientSession,
    url: str,
    *,
    html: bool = True,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
) -> Hop:
    """One request, its redirect not followed."""
    sent = {"Accept": "text/html,application/xhtml+xml"} if html else {}
    async with browser.request(
        method, url, headers={**sent, **(headers or {})}, data=data, allow_redirects=False
    ) as response:
        return Hop(url, response.status, response.headers, await response.text())


async def follow(browser: aiohttp.ClientSession, url: str, **options: Any) -> list[Hop]:
    """Every answer from `url` to the first that is not a redirect (which a browser GETs)."""
    hops = [await step(browser, url, **options)]
    while hops[-1].status in (301, 302, 303, 307, 308):
        if len(hops) > 10:
            raise AssertionError(f"too many redirects: {[h.url for h in hops]}")
        url = str(URL(hops[-1].url).join(URL(hops[-1].location)))
        hops.append(await step(browser, url, html=options.get("html", True)))
    return hops


async def sign_in(
    browser: aiohttp.ClientSession, bot: Bot, hub: SandboxGitHub, login: str, next_: str = "/"
) -> list[Hop]:
    hub.sign_in_as(login)
    hops = await follow(browser, bot.at(f"/login?next={next_}"))
    assert any(hop.url.startswith(bot.at("/login/callback")) for hop in hops), hops
    return hops


def sent_to_sign_in(hop: Hop) -> str:
    """Where a redirect to /login will come back to."""
    assert hop.status == 302
    location = URL(hop.location)
    assert location.path == "/login" and not location.host
    return location.query["next"]


def repo_checks(hub: SandboxGitHub, repo: str) -> int:
    return sum(1 for r in hub.requests if r.method == "GET" and r.path == f"/repos/{repo}")


# ---------------------------------------------------------------------- anonymous


async def test_anonymous_sees_public_runs_but_is_sent_to_sign_in_for_private_ones(bot, browsers):
    browser = browsers()
    [hop] = await follow(browser, bot.at("/public"))
    assert (hop.status, hop.body) == (200, f"{PUBLIC} for anonymous")
    hop = await step(browser, bot.at(f"/private/{PRIVATE}?tab=logs"))
    assert hop.status == 302
    assert sent_to_sign_in(hop) == f"/private/{PRIVATE}?tab=logs"


async def test_a_script_without_credentials_gets_401_not_a_redirect(bot, browsers):
    browser = browsers()
    for path in (f"/private/{PRIVATE}", "/ops"):
        [hop] = await follow(browser, bot.at(path), html=False)
        assert hop.status == 401
        assert hop.headers["WWW-Authenticate"].startswith("Bearer")


# ---------------------------------------------------------------------- signing in


async def test_signing_in_through_github_comes_back_signed_in_where_it_started(bot, hub, browsers):
    browser = browsers()
    hops = await sign_in(browser, bot, hub, "alice", next_=f"/private/{PRIVATE}")
    login, authorize, callback, page = hops
    assert login.location.startswith(f"{hub.url}/login/oauth/authorize?")
    query = URL(login.location).query
    assert query["client_id"] == hub.oauth_client_id
    assert query["redirect_uri"] == bot.at("/login/callback")
    assert authorize.location.startswith(bot.at("/login/callback?code="))
    assert URL(authorize.location).query["state"] == query["state"]
    [state_cookie] = login.cookies
    assert "HttpOnly" in state_cookie and "SameSite=Lax" in state_cookie
    assert "Secure" not in state_cookie  # an http:// bot: the browser would drop it otherwise
    [session_cookie] = [c for c in callback.cookies if c.startswith(access.SESSION_COOKIE)]
    for flag in ("HttpOnly", "SameSite=Lax", "Path=/;", "Max-Age=28800"):
        assert flag in session_cookie + ";"
    assert callback.location == f"/private/{PRIVATE}"
    assert (page.status, page.body) == (200, f"{PRIVATE} for alice")
    [me] = await follow(browser, bot.at("/whoami"), html=False)
    assert me.body and '"via": "session"' in me.body and '"login": "alice"' in me.body


async def test_cookies_are_secure_when_the_bot_is_served_over_https(make_bot, browsers):
    bot = await make_bot(public_url="https://bot.example.org")
    hop = await step(browsers(), bot.at("/login"))
    assert URL(hop.location).query["redirect_uri"] == "https://bot.example.org/login/callback"
    [state_cookie] = hop.cookies
    assert "Secure" in state_cookie


async def test_signed_in_with_read_access_a_private_repository_is_visible(bot, hub, browsers):
    browser = browsers()
    await sign_in(browser, bot, hub, "alice")
    [hop] = await follow(browser, bot.at(f"/private/{PRIVATE}"))
    assert (hop.status, hop.body) == (200, f"{PRIVATE} for alice")


async def test_without_read_access_a_private_repository_is_not_found_like_a_missing_one(
    bot, hub, browsers
):
    browser = browsers()
    await sign_in(browser, bot, hub, "bob")
    [hidden] = await follow(browser, bot.at(f"/private/{PRIVATE}"))
    [missing] = await follow(browser, bot.at("/private/acme/does-not-exist"))
    assert hidden.status == missing.status == 404
    assert hidden.body == missing.body
    [public] = await follow(browser, bot.at("/public"))
    assert public.body == f"{PUBLIC} for bob"


async def test_githubs_answer_is_kept_a_minute_per_login_and_repository(bot, hub, browsers):
    browser = browsers()
    await sign_in(browser, bot, hub, "alice")
    for _ in range(3):
        [hop] = await follow(browser, bot.at(f"/private/{PRIVATE}"))
        assert hop.status == 200
    assert repo_checks(hub, PRIVATE) == 1
    started = bot.access.clock()
    bot.access.clock = lambda: started + access.ACCESS_CACHE_S + 1
    await follow(browser, bot.at(f"/private/{PRIVATE}"))
    assert repo_checks(hub, PRIVATE) == 2


async def test_a_refusal_is_cached_too_but_a_github_outage_is_not(bot, hub, browsers):
    browser = browsers()
    await sign_in(browser, bot, hub, "bob")
    for _ in range(2):
        await follow(browser, bot.at(f"/private/{PRIVATE}"))
    assert repo_checks(hub, PRIVATE) == 1
    hub.fail_next("GET", f"/repos/{OTHER_PRIVATE}$", 502)
    [down] = await follow(browser, bot.at(f"/private/{OTHER_PRIVATE}"))
    assert down.status == 404  # no answer is no access
    await follow(browser, bot.at(f"/private/{OTHER_PRIVATE}"))
    assert repo_checks(hub, OTHER_PRIVATE) == 2  # asked again: the outage was not remembered


async def test_a_callback_whose_state_does_not_match_is_refused(bot, hub, browsers):
    hub.sign_in_as("alice")
    browser = browsers()
    authorize = await step(browser, (await step(browser, bot.at("/login"))).location)
    forged = URL(authorize.location).update_query(state="forged-state")
    hop = await step(browser, str(forged))
    assert hop.status == 400
    assert "start again at /login" in hop.body
    # A genuine callback is refused in a browser that did not start this sign-in...
    stranger = browsers()
    hop = await step(stranger, authorize.location)
    assert hop.status == 400
    me = await step(stranger, bot.at("/whoami"), html=False)
    assert '"via": "anonymous"' in me.body
    # ...and works once in the one that did.
    assert (await step(browser, authorize.location)).status == 302
    assert (await step(browser, authorize.location)).status == 400


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "x"],
)
async def test_after_signing_in_a_browser_never_leaves_for_another_site(bot, hub, browsers, target):
    browser = browsers()
    hub.sign_in_as("alice")
    hops = await follow(browser, bot.at("/login?") + URL.build(query={"next": target}).query_string)
    callback = next(hop for hop in hops if hop.url.startswith(bot.at("/login/callback")))
    assert callback.location == "/"


def test_only_local_paths_are_places_to_come_back_to():
    assert local_path("/runs/3?tab=log#end") == "/runs/3?tab=log#end"
    for bad in (None, "", "//evil", "///evil", "/\\evil", "https://evil", "/\n/evil", "runs", "/é"):
        assert local_path(bad) == "/"


async def test_without_an_oauth_client_login_says_what_to_configure(make_bot, browsers):
    bot = await make_bot(github_client_id=None, github_client_secret=None)
    browser = browsers()
    [hop] = await follow(browser, bot.at("/login?next=/ops"))
    assert hop.status == 503
    assert "GITHUB_CLIENT_ID" in hop.body and "GITHUB_CLIENT_SECRET" in hop.body
    hop = await step(browser, bot.at(f"/private/{PRIVATE}"))
    assert sent_to_sign_in(hop) == f"/private/{PRIVATE}"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    [hop] = await follow(browser, bot.at(f"/private/{PRIVATE}"), headers=auth)
    assert (hop.status, hop.body) == (200, f"{PRIVATE} for token")


# ---------------------------------------------------------------------- the admin token


async def test_the_admin_token_reaches_private_and_operator_pages(bot, hub, browsers):
    script = browsers()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    [hop] = await follow(script, bot.at(f"/private/{PRIVATE}"), html=False, headers=auth)
    assert (hop.status, hop.body) == (200, f"{PRIVATE} for token")
    [hop] = await follow(script, bot.at("/ops"), html=False, headers=auth)
    assert hop.status == 200
    assert '"csrf": ""' in hop.body  # nothing for a form to carry
    assert repo_checks(hub, PRIVATE) == 0  # the token is not a person: GitHub is not asked
    [hop] = await follow(
        script, bot.at("/ops/replay"), method="POST", html=False, headers=auth, data={}
    )
    assert (hop.status, hop.body) == (200, "replayed")  # no cookie to ride on: no CSRF token


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong-token-0123456789", f"Basic {ADMIN_TOKEN}", "Bearer", "token x"]
)
async def test_a_wrong_token_is_401_even_where_anonymous_would_do(bot, browsers, authorization):
    browser = browsers()
    for path in ("/public", "/ops", f"/private/{PRIVATE}"):
        [hop] = await follow(browser, bot.at(path), headers={"Authorization": authorization})
        assert hop.status == 401, path


async def test_a_bearer_token_is_refused_when_no_admin_token_is_configured(make_bot, browsers):
    bot = await make_bot(admin_token=None)
    [hop] = await follow(browsers(), bot.at("/ops"), headers={"Authorization": "Bearer "})
    assert hop.status == 401


# ---------------------------------------------------------------------- operators


async def test_operators_are_the_configured_logins_in_any_case(bot, hub, browsers):
    alice, bob = browsers(), browsers()
    await sign_in(alice, bot, hub, "alice")
    await sign_in(bob, bot, hub, "bob")
    [hop] = await follow(alice, bot.at("/ops"))
    assert hop.status == 200 and '"login": "alice"' in hop.body
    [hop] = await follow(bob, bot.at("/ops"))
    assert hop.status == 403
    hop = await step(browsers(), bot.at("/ops"))
    assert sent_to_sign_in(hop) == "/ops"
    [hop] = await follow(browsers(), bot.at("/ops"), html=False)
    assert hop.status == 401


# ---------------------------------------------------------------------- CSRF


async def _csrf(browser: aiohttp.ClientSession, bot: Bot) -> str:
    async with browser.get(bot.at("/whoami")) as response:
        return (await response.json())["csrf"]


async def test_a_form_post_needs_the_sessions_csrf_token(bot, hub, browsers):
    alice, other_alice = browsers(), browsers()
    await sign_in(alice, bot, hub, "alice")
    await sign_in(other_alice, bot, hub, "alice")
    token = await _csrf(alice, bot)
    assert token and token != await _csrf(other_alice, bot)
    for form in (
        {},
        {"csrf": ""},
        {"csrf": "0" * len(token)},
        {"csrf": await _csrf(other_alice, bot)},
    ):
        [hop] = await follow(alice, bot.at("/ops/replay"), method="POST", data=form)
        assert hop.status == 403, form
        assert "missing or wrong CSRF token" in hop.body
    [hop] = await follow(alice, bot.at("/ops/replay"), method="POST", data={"csrf": token})
    assert (hop.status, hop.body) == (200, "replayed")


# ---------------------------------------------------------------------- sessions


async def test_signing_out_ends_the_session_on_the_server(bot, hub, browsers):
    browser = browsers()
    await sign_in(browser, bot, hub, "alice")
    session_id = browser.cookie_jar.filter_cookies(URL(bot.url))[access.SESSION_COOKIE].value
    [hop] = await follow(browser, bot.at("/logout"), method="POST", data={})
    assert hop.status == 403  # no CSRF token: another site cannot sign anyone out
    [hop] = await follow(browser, bot.at(f"/private/{PRIVATE}"))
    assert hop.status == 200
    [out, _home] = await follow(
        browser, bot.at("/logout"), method="POST", data={"csrf": await _csrf(browser, bot)}
    )
    assert out.location == "/"
    assert any(c.startswith(f'{access.SESSION_COOKIE}=""') for c in out.cookies)
    hop = await step(browser, bot.at(f"/private/{PRIVATE}"))
    assert sent_to_sign_in(hop) == f"/private/{PRIVATE}"
    # The old cookie, kept by someone, opens nothing any more.
    replayed = browsers()
    replayed.cookie_jar.update_cookies({access.SESSION_COOKIE: session_id}, URL(bot.url))
    [hop] = await follow(replayed, bot.at("/whoami"), html=False)
    assert '"via": "anonymous"' in hop.body


async def test_a_session_lasts_eight_hours(bot, hub, browsers):
    browser = browsers()
    await sign_in(browser, bot, hub, "alice")
    started = bot.access.clock()
    bot.access.clock = lambda: started + access.SESSION_LIFETIME_S - 60
    [hop] = await follow(browser, bot.at("/whoami"), html=False)
    assert '"via": "session"' in hop.body
    bot.access.clock = lambda: started + access.SESSION_LIFETIME_S + 1
    [hop] = await follow(browser, bot.at("/whoami"), html=False)
    assert '"via": "anonymous"' in hop.body


async def test_a_token_revoked_on_github_signs_the_person_out(bot, hub, browsers):
    browser = browsers()
    await sign_in(browser, bot, hub, "alice")
    [token] = hub.user_tokens("alice")
    hub.expire_token(token)
    hop = await step(browser, bot.at(f"/private/{PRIVATE}"))
    assert sent_to_sign_in(hop) == f"/private/{PRIVATE}"
    [hop] = await follow(browser, bot.at("/whoami"), html=False)
    assert '"via": "anonymous"' in hop.body


def test_sessions_are_bounded_the_oldest_going_first():
    now = [0.0]
    sessions: access._Expiring[str, int] = access._Expiring(3, lambda: now[0])
    for number in range(5):
        sessions.put(f"s{number}", number, ttl=10)
    assert len(sessions) == 3
    assert sessions.get("s0") is None and sessions.get("s4") == 4
    now[0] = 11
    assert sessions.get("s4") is None


async def test_the_user_token_appears_in_no_answer_no_url_and_no_log_record(
    bot, hub, browsers, caplog
):
    caplog.set_level(logging.DEBUG)
    browser = browsers()
    hops = await sign_in(browser, bot, hub, "alice", next_="/ops")
    hops += await follow(browser, bot.at(f"/private/{PRIVATE}"))
    hops += await follow(browser, bot.at("/whoami"))
    hops += await follow(browser, bot.at("/logout"), method="POST", data={"csrf": "wrong"})
    [token] = hub.user_tokens("alice")
    for hop in hops:
        assert token not in hop.url and token not in hop.body
        assert all(token not in f"{name}: {value}" for name, value in hop.headers.items())
    assert caplog.records  # the sign-in was logged, without it
    for record in caplog.records:
        assert token not in record.getMessage()
        assert all(token not in str(value) for value in vars(record).values())
    assert any(getattr(r, "login", None) == "alice" for r in caplog.records)


def test_a_received_user_token_is_masked_in_the_logs_from_then_on(capsys):
    token = "ghu_" + "x" * 36
    logs.configure(fmt="text")
    logs.add_secret(token)  # what the token exchange does on receiving one
    logging.getLogger("bot.test").warning("Authorization: token %s", token)
    assert token not in capsys.readouterr().err


# ---------------------------------------------------------------------- the sandbox's side


async def _exchange(hub: SandboxGitHub, body: dict[str, str]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{hub.url}/login/oauth/access_token",
            json=body,
            headers={"Accept": "application/json"},
        ) as response,
    ):
        assert response.status == 200  # GitHub answers errors here with 200 too
        return await response.json()


async def _code(hub: SandboxGitHub, redirect_uri: str = "http://bot.test/cb") -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{hub.url}/login/oauth/authorize",
            params={"client_id": hub.oauth_client_id, "redirect_uri": redirect_uri, "state": "s"},
            allow_redirects=False,
        ) as response,
    ):
        assert response.status == 302
        location = URL(response.headers["Location"])
        assert location.query["state"] == "s"
        return location.query["code"]


async def test_the_sandbox_exchanges_a_code_once_and_only_for_its_own_client(hub):
    hub.sign_in_as("alice")
    code = await _code(hub)
    good = {
        "client_id": hub.oauth_client_id,
        "client_secret": hub.oauth_client_secret,
        "code": code,
        "redirect_uri": "http://bot.test/cb",
    }
    wrong_secret = await _exchange(hub, {**good, "client_secret": "nope"})
    assert wrong_secret["error"] == "incorrect_client_credentials"
    answer = await _exchange(hub, good)
    assert answer["access_token"].startswith("ghu_") and answer["token_type"] == "bearer"
    assert (await _exchange(hub, good))["error"] == "bad_verification_code"
    other = await _exchange(hub, {**good, "code": await _code(hub), "redirect_uri": "http://x/"})
    assert other["error"] == "redirect_uri_mismatch"


async def test_the_sandbox_authorize_page_refuses_strangers_and_the_signed_out(hub):
    async with aiohttp.ClientSession() as http:
        query = {"client_id": "Iv1.someone-else", "redirect_uri": "http://bot.test/cb"}
        async with http.get(
            f"{hub.url}/login/oauth/authorize", params=query, allow_redirects=False
        ) as response:
            assert response.status == 404
        query = {"client_id": hub.oauth_client_id, "redirect_uri": "http://bot.test/cb"}
        async with http.get(
            f"{hub.url}/login/oauth/authorize", params=query, allow_redirects=False
        ) as response:
            assert response.status == 401  # nobody signed in to the sandbox GitHub
            assert "sign_in_as" in await response.text()


async def test_a_user_token_sees_what_its_person_may_read(hub):
    hub.sign_in_as("bob")
    answer = await _exchange(
        hub,
        {
            "client_id": hub.oauth_client_id,
            "client_secret": hub.oauth_client_secret,
            "code": await _code(hub),
        },
    )
    async with aiohttp.ClientSession() as http:
        gh = GitHubAPI(http, "t", oauth_token=answer["access_token"], base_url=hub.url)
        assert (await gh.getitem("/user"))["login"] == "bob"
        public = await gh.getitem(f"/repos/{PUBLIC}")
        assert public["permissions"]["pull"] is True and public["permissions"]["push"] is False
        for path in (f"/repos/{PRIVATE}", f"/repos/{PRIVATE}/pulls"):
            with pytest.raises(gidgethub.BadRequest) as caught:
                await gh.getitem(path)
            assert caught.value.status_code == 404
        hub.add_collaborator(PRIVATE, "bob", "write")
        private = await gh.getitem(f"/repos/{PRIVATE}")
        assert private["permissions"]["push"] is True
        installation = GitHubAPI(http, "t", oauth_token=hub.token, base_url=hub.url)
        with pytest.raises(gidgethub.BadRequest) as caught:
            await installation.getitem("/user")
        assert caught.value.status_code == 403


# ---------------------------------------------------------------------- settings


def test_sign_in_settings_come_from_the_environment_and_are_secrets():
    settings = Settings.from_env(
        {
            "GITHUB_CLIENT_ID": "Iv1.abc",
            "GITHUB_CLIENT_SECRET": "client-secret-0123456789",
            "BOT_ADMIN_TOKEN": ADMIN_TOKEN,
            "BOT_OPERATORS": " Alice, @bob,,ALICE ",
        }
    )
    assert settings.operators == ("alice", "bob")
    assert settings.github_client_id == "Iv1.abc"
    assert {"client-secret-0123456789", ADMIN_TOKEN} <= set(settings.secrets)
    assert "client-secret" not in repr(settings) and ADMIN_TOKEN not in repr(settings)
    with pytest.raises(ConfigError, match="GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET"):
        Settings.from_env({"GITHUB_CLIENT_ID": "Iv1.abc"})
    with pytest.raises(ConfigError, match="BOT_ADMIN_TOKEN"):
        Settings.from_env({"BOT_ADMIN_TOKEN": "short"})
