"""The operator's schedules page through the real server and the sandbox's OAuth: who may see
it, firing a schedule by hand only with the session's CSRF token (or the operator token), and
what the page shows of each schedule's fires."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from bot.store import schedules as schedules_db
from tests.e2e.conftest import PAGES_ADMIN
from tests.support.seed_runs import write_run

HTML = {"Accept": "text/html"}
AUTH = {"Authorization": f"Bearer {PAGES_ADMIN}"}
REPO = "acme/open"
FIRE = "/schedules/acme/open/ticker/nightly/fire"


@pytest.fixture
async def bot(pages_bot):
    """The pages' bot with two schedules of `acme/open` for a feature it does not have:
    `nightly`, fired once with a run, and one whose name a config could make hostile."""
    # Seeded after the start-up read, which would disable a feature's schedules it lacks.
    await asyncio.wait_for(pages_bot.runtime.scheduler.read_at_start.wait(), 10)

    def seed(conn) -> int:
        schedules_db.sync_schedules(
            conn,
            REPO,
            None,
            {("ticker", "nightly"): "17 2 * * *", ("ticker", "<b>x</b>"): "0 * * * *"},
            0.0,
            next_after=lambda cron, t: 1_900_000_000.0,
        )
        run_id = write_run(conn, repo=REPO)
        fire = schedules_db.fire_now(conn, REPO, "ticker", "nightly", 1_000.0)
        assert fire is not None
        schedules_db.record_fire_result(conn, fire.id, run_id, "")
        return run_id

    pages_bot.run_id = await pages_bot.runtime.store.call(seed)
    return pages_bot


@pytest.fixture
async def browser():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _sign_in(harness, browser, login: str) -> None:
    harness.github.sign_in_as(login)
    async with browser.get(f"{harness.url}/login?next=/", headers=HTML) as response:
        assert response.status == 200 and "signed in as" in await response.text()


async def _fires(harness) -> list[schedules_db.FireRow]:
    return await harness.runtime.store.call(
        lambda c: schedules_db.fires_of(c, REPO, "ticker", "nightly")
    )


async def test_the_schedules_page_is_for_operators(bot, browser):
    url = f"{bot.url}/schedules"
    async with browser.get(url, headers=HTML, allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"].startswith("/login?next=")
    async with browser.get(url) as r:
        assert r.status == 401  # a script without the token
    async with aiohttp.ClientSession() as script:
        async with script.get(url, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with script.get(url, headers=AUTH) as r:
            assert r.status == 200 and "nightly" in await r.text()
    await _sign_in(bot, browser, "stranger")
    async with browser.get(url, headers=HTML) as r:
        text = await r.text()
    assert r.status == 403 and "nightly" not in text


async def test_the_page_lists_each_schedule_with_its_fires_escaped(bot, browser):
    await _sign_in(bot, browser, "ops")
    async with browser.get(f"{bot.url}/schedules", headers=HTML) as r:
        text = await r.text()
    assert r.status == 200
    assert "<code>17 2 * * *</code>" in text and "2030-03-17 17:46:40 UTC" in text
    assert f'<a href="/runs/{bot.run_id}">run {bot.run_id}</a>' in text and "(by hand)" in text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    # Its button's address is quoted: the name cannot break out of the path.
    assert 'action="/schedules/acme/open/ticker/%3Cb%3Ex%3C%2Fb%3E/fire"' in text
    assert '<a href="/schedules">Schedules</a>' in text


async def test_firing_by_hand_needs_the_sessions_csrf_token(bot, browser):
    await _sign_in(bot, browser, "ops")
    async with browser.post(f"{bot.url}{FIRE}", data={}, allow_redirects=False) as r:
        assert r.status == 403 and "CSRF" in await r.text()
    async with browser.post(
        f"{bot.url}{FIRE}", data={"csrf": "forged"}, allow_redirects=False
    ) as r:
        assert r.status == 403
    assert len(await _fires(bot)) == 1  # only the seeded one
    async with browser.get(f"{bot.url}/schedules", headers=HTML) as r:
        found = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert found
    data = {"csrf": found.group(1)}
    async with browser.post(f"{bot.url}{FIRE}", data=data, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
        location = r.headers["Location"]
    newest, _ = await _fires(bot)
    assert newest.manual and location == f"/schedules?fired={newest.id}"
    await bot.runtime.scheduler.settle()
    # No feature of this bot takes `ticker`'s fires: the fire says so.
    (newest, _) = await _fires(bot)
    assert newest.finished and "no feature 'ticker'" in (newest.note or "")
    async with browser.get(f"{bot.url}{location}", headers=HTML) as r:
        text = await r.text()
    assert f"Fire {newest.id} was handed to its feature" in text
    assert "no feature &#39;ticker&#39;" in text


async def test_the_operator_token_fires_without_a_csrf_token(bot):
    async with aiohttp.ClientSession() as script:
        async with script.post(f"{bot.url}{FIRE}", headers=AUTH, allow_redirects=False) as r:
            assert r.status == 303, await r.text()
        missing = f"{bot.url}/schedules/acme/open/ticker/weekly/fire"
        async with script.post(missing, headers=AUTH, allow_redirects=False) as r:
            assert r.status == 404
        async with script.post(f"{bot.url}{FIRE}", allow_redirects=False) as r:
            assert r.status == 401  # no token, no session
        # The address the page gives a name no URL could hold as it is reaches that schedule.
        hostile = f"{bot.url}/schedules/acme/open/ticker/%3Cb%3Ex%3C%2Fb%3E/fire"
        async with script.post(hostile, headers=AUTH, allow_redirects=False) as r:
            assert r.status == 303, await r.text()
    assert len(await _fires(bot)) == 2
    (fire,) = await bot.runtime.store.call(
        lambda c: schedules_db.fires_of(c, REPO, "ticker", "<b>x</b>")
    )
    assert fire.manual
