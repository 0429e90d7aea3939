"""Who may see which page, through the real server and the sandbox's OAuth: private runs only
after signing in with read access, the operator's pages only for operators, and replay only
with the session's CSRF token (or the operator token)."""

from __future__ import annotations

import re

import aiohttp
import pytest

from tests.e2e.conftest import PAGES_ADMIN
from tests.support.seed_runs import write_run

ADMIN = PAGES_ADMIN
HTML = {"Accept": "text/html"}


@pytest.fixture
def bot(pages_bot):
    return pages_bot


@pytest.fixture
async def browser():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _seed(harness, **fields) -> int:
    return await harness.runtime.store.call(lambda conn: write_run(conn, **fields), single=True)


async def _sign_in(harness, browser, login: str) -> None:
    harness.github.sign_in_as(login)
    async with browser.get(f"{harness.url}/login?next=/", headers=HTML) as response:
        assert response.status == 200, await response.text()
        assert "signed in as" in await response.text()


async def _csrf(browser, url: str) -> str:
    async with browser.get(url, headers=HTML) as response:
        found = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert found, "no CSRF field on the page"
    return found.group(1)


async def test_a_private_runs_page_is_a_404_offering_sign_in_and_shows_after_it(bot, browser):
    # Not a redirect to sign in: that would tell a private run's id from one that does not
    # exist. The same 404 as a missing run, whose header offers signing in and coming back.
    run_id = await _seed(bot, repo="acme/secret", private=True, title="Secret model")
    async with browser.get(
        f"{bot.url}/runs/{run_id}", headers=HTML, allow_redirects=False
    ) as response:
        hidden = (response.status, await response.text())
    async with browser.get(
        f"{bot.url}/runs/{run_id + 1000}", headers=HTML, allow_redirects=False
    ) as response:
        missing = (response.status, await response.text())
    assert hidden[0] == missing[0] == 404
    assert "Secret model" not in hidden[1]
    assert hidden[1] == missing[1].replace(str(run_id + 1000), str(run_id))
    assert f'href="/login?next=/runs/{run_id}"' in hidden[1]
    harness_text = await (await browser.get(f"{bot.url}/runs")).text()
    assert "Secret model" not in harness_text  # not listed to an anonymous viewer either
    bot.github.sign_in_as("maint")
    async with browser.get(f"{bot.url}/login?next=/runs/{run_id}", headers=HTML) as response:
        text = await response.text()
    assert response.status == 200 and str(response.url).endswith(f"/runs/{run_id}")
    assert "Secret model" in text and "signed in as" in text
    assert "Secret model" in await (await browser.get(f"{bot.url}/runs")).text()


async def test_without_read_access_a_private_run_is_a_404_like_a_missing_one(bot, browser):
    run_id = await _seed(bot, repo="acme/secret", private=True, title="Secret model")
    await _sign_in(bot, browser, "stranger")
    async with browser.get(f"{bot.url}/runs/{run_id}", headers=HTML) as hidden:
        hidden_text = await hidden.text()
    async with browser.get(f"{bot.url}/runs/{run_id + 1000}", headers=HTML) as missing:
        missing_text = await missing.text()
    assert hidden.status == missing.status == 404
    assert "Secret model" not in hidden_text
    assert re.sub(r"\d+", "N", hidden_text) == re.sub(r"\d+", "N", missing_text)


async def test_a_public_run_needs_no_sign_in(bot, browser):
    run_id = await _seed(bot, repo="acme/open", private=False, title="Open model")
    async with browser.get(f"{bot.url}/runs/{run_id}") as response:
        assert response.status == 200 and "Open model" in await response.text()


async def test_operator_pages_need_an_operator(bot, browser):
    async with browser.get(f"{bot.url}/deliveries", headers=HTML, allow_redirects=False) as r:
        assert r.status == 302 and r.headers["Location"].startswith("/login?next=")
    async with browser.get(f"{bot.url}/outbox") as r:
        assert r.status == 401  # a script without the token
    await _sign_in(bot, browser, "maint")
    async with browser.get(f"{bot.url}/deliveries", headers=HTML) as r:
        assert r.status == 403 and "403" in await r.text()
    async with aiohttp.ClientSession() as script:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        async with script.get(f"{bot.url}/deliveries", headers=auth) as r:
            assert r.status == 200


async def test_a_failed_delivery_shows_its_error_and_replays_only_with_the_csrf_token(
    bot, browser, caplog
):
    # A payload of the wrong shape fails on its first try, with the reason.
    sent = await bot.deliver("issue_comment", {"action": "created", "repository": "acme/open"})
    assert sent.status == 202
    await bot.settle()
    await _sign_in(bot, browser, "ops")
    page_url = f"{bot.url}/deliveries/{sent.delivery_id}"
    async with browser.get(page_url, headers=HTML) as r:
        text = await r.text()
    assert r.status == 200 and "failed" in text and "repository is a string" in text
    overview = await (await browser.get(f"{bot.url}/", headers=HTML)).text()
    assert sent.delivery_id[:18] in overview  # listed under failed deliveries

    replay = f"{page_url}/replay"
    async with browser.post(replay, data={}, allow_redirects=False) as r:
        assert r.status == 403 and "CSRF" in await r.text()
    async with browser.post(replay, data={"csrf": "forged"}, allow_redirects=False) as r:
        assert r.status == 403
    token = await _csrf(browser, page_url)
    async with browser.post(replay, data={"csrf": token}, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"].endswith("?replayed=1")
    await bot.settle()
    (delivery,) = [d for d in await bot.deliveries() if d.id == sent.delivery_id]
    assert delivery.status == "failed"
    tries = [r for r in caplog.records if "repository is a string" in r.getMessage()]
    assert len(tries) == 2  # handled again on the replay, failed with the same reason


async def test_the_operator_token_replays_without_a_csrf_token(bot):
    sent = await bot.deliver("ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    await bot.settle()
    async with aiohttp.ClientSession() as script:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        async with script.post(
            f"{bot.url}/deliveries/{sent.delivery_id}/replay", headers=auth, allow_redirects=False
        ) as r:
            assert r.status == 303, await r.text()
        async with script.post(
            f"{bot.url}/deliveries/nope/replay", headers=auth, allow_redirects=False
        ) as r:
            assert r.status == 404


async def test_the_outbox_lists_a_failed_message_and_retries_it_with_the_csrf_token(bot, browser):
    bot.slack.auto_create = False  # a channel that does not exist stays missing
    outbox = bot.runtime.outbox
    await outbox.queue_slack("test:nowhere", {"channel": "#does-not-exist", "text": "Hello"})
    await bot.settle()
    (item,) = await bot.outbox()
    assert item.status == "failed"
    await _sign_in(bot, browser, "ops")
    page_url = f"{bot.url}/outbox"
    async with browser.get(page_url, headers=HTML) as r:
        text = await r.text()
    assert "channel_not_found" in text and "test:nowhere" in text and "retry now" in text
    retry = f"{bot.url}/outbox/{item.id}/retry"
    async with browser.post(retry, data={}, allow_redirects=False) as r:
        assert r.status == 403
    token = await _csrf(browser, page_url)
    async with browser.post(retry, data={"csrf": token}, allow_redirects=False) as r:
        assert r.status == 303
    await bot.settle()
    (again,) = await bot.outbox()
    assert again.status == "failed" and again.attempts == item.attempts + 1  # sent again


async def test_a_delivery_whose_body_was_pruned_is_listed_but_not_replayed(bot, browser):
    import time

    from bot.store.retention import prune_store

    sent = await bot.deliver("ping", {"zen": "Half measures are as bad as nothing.", "hook_id": 1})
    await bot.settle()
    counts = await prune_store(bot.runtime.store, time.time() + 3 * 86400, 86400)
    assert counts.delivery_bodies == 1
    await _sign_in(bot, browser, "ops")
    async with browser.get(f"{bot.url}/deliveries/{sent.delivery_id}", headers=HTML) as r:
        text = await r.text()
    assert r.status == 200 and "were pruned" in text and "Replay this delivery" not in text
    async with (
        aiohttp.ClientSession() as script,
        script.post(
            f"{bot.url}/deliveries/{sent.delivery_id}/replay",
            headers={"Authorization": f"Bearer {ADMIN}"},
            allow_redirects=False,
        ) as r,
    ):
        assert r.status == 404
