"""What a visitor learns from the pages without being allowed to: a private run answers exactly
as a missing one, byte for byte, and every answer of the server, error or not, carries the
Content-Security-Policy."""

from __future__ import annotations

import aiohttp
import pytest

from bot.web.render import SECURITY_HEADERS
from tests.e2e.conftest import PAGES_ADMIN
from tests.support.seed_runs import results_for, write_run

ADMIN = PAGES_ADMIN
HTML = {"Accept": "text/html,application/xhtml+xml"}
#: Every per-run URL, in the forms a browser or a script asks for them.
RUN_PATHS = (
    "/runs/{run}",
    "/runs/{run}?q=test&outcome=failed&page=2",
    "/runs/{run}/jobs/{job}/log",
    "/runs/{run}/jobs/{job}/log?whole=1",
    "/runs/{run}/jobs/{job}/log?format=text&download=1",
    "/runs/{run}/jobs/{job + 1000}/log",
)


@pytest.fixture
def bot(pages_bot):
    return pages_bot


async def _seed_private(harness) -> tuple[int, int]:
    jobs = [("tests/models/bert", results_for("tests/models/bert", 3, failed=1))]

    def write(conn):
        run_id = write_run(conn, repo="acme/secret", private=True, title="Secret model", jobs=jobs)
        (job_id,) = conn.execute("SELECT id FROM jobs WHERE run_id = ?", (run_id,)).fetchone()
        return run_id, job_id

    return await harness.runtime.store.call(write, single=True)


async def _forget(harness, run_id: int) -> None:
    """The run gone from the store, as if it had never been made."""

    def delete(conn):
        conn.execute("DELETE FROM jobs WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    await harness.runtime.store.call(delete, single=True)


Answer = tuple[str, str, int, list[tuple[str, str]], bytes]


async def _answers(
    harness, session: aiohttp.ClientSession, run_id: int, job_id: int, extra: dict[str, str]
) -> list[Answer]:
    """Status, headers (all but Date) and body of every per-run URL, as a browser and a script."""
    answers: list[Answer] = []
    for template in RUN_PATHS:
        path = template.replace("{job + 1000}", str(job_id + 1000)).format(run=run_id, job=job_id)
        for accept in (HTML, {}):
            for method in ("GET", "HEAD"):
                async with session.request(
                    method,
                    harness.url + path,
                    headers={**accept, **extra},
                    allow_redirects=False,
                ) as response:
                    headers = [(k, v) for k, v in response.headers.items() if k != "Date"]
                    body = await response.read()
                answers.append((method, path, response.status, headers, body))
    return answers


async def _sign_in(harness, session: aiohttp.ClientSession, login: str) -> None:
    harness.github.sign_in_as(login)
    async with session.get(f"{harness.url}/login?next=/", headers=HTML) as response:
        assert response.status == 200 and "signed in as" in await response.text()


@pytest.mark.parametrize("who", ["anonymous", "stranger", "wrong-token"])
async def test_a_private_run_answers_byte_for_byte_as_a_missing_one(bot, who):
    run_id, job_id = await _seed_private(bot)
    extra = {"Authorization": "Bearer not-the-admin-token"} if who == "wrong-token" else {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        if who == "stranger":
            await _sign_in(bot, session, "stranger")
        hidden = await _answers(bot, session, run_id, job_id, extra)
        await _forget(bot, run_id)
        missing = await _answers(bot, session, run_id, job_id, extra)
    for seen, absent in zip(hidden, missing, strict=True):
        assert seen == absent, f"{seen[0]} {seen[1]} tells a private run from a missing one"
    assert all(b"Secret model" not in answer[4] for answer in hidden)
    statuses = {answer[2] for answer in hidden}
    assert statuses == ({401} if who == "wrong-token" else {404})


async def test_the_missing_run_page_offers_signing_in_and_signing_in_shows_the_run(bot):
    run_id, _ = await _seed_private(bot)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{bot.url}/runs/{run_id}", headers=HTML) as response:
            text = await response.text()
        assert response.status == 404
        assert f'href="/login?next=/runs/{run_id}"' in text
        bot.github.sign_in_as("maint")
        async with session.get(f"{bot.url}/login?next=/runs/{run_id}", headers=HTML) as response:
            text = await response.text()
        assert response.status == 200 and "Secret model" in text


async def test_the_admin_token_sees_the_private_run_and_a_missing_one_is_404(bot):
    run_id, _ = await _seed_private(bot)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{bot.url}/runs/{run_id}", headers=auth) as response:
            assert response.status == 200 and "Secret model" in await response.text()
        async with session.get(f"{bot.url}/runs/{run_id + 1}", headers=auth) as response:
            assert response.status == 404


# ---------------------------------------------------------------------- the policy on everything


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/", HTML, 200),
        ("GET", "/no/such/page", {}, 404),
        ("GET", "/no/such/page", HTML, 404),
        ("DELETE", "/runs", {}, 405),
        ("GET", "/webhook", {}, 405),
        ("POST", "/webhook", {}, 401),
        ("POST", "/webhook", {"X-Hub-Signature-256": "sha256=" + "0" * 64}, 400),
        ("GET", "/healthz", {}, 200),
        ("GET", "/metrics", {}, 200),
        ("GET", "/help", {}, 200),
        ("GET", "/help?format=markdown", {}, 200),
        ("GET", "/runs/987654", HTML, 404),
        ("GET", "/runs/987654/jobs/1/log?format=text", {}, 404),
        ("GET", "/deliveries", HTML, 302),
        ("GET", "/deliveries", {}, 401),
        ("GET", "/outbox", {"Authorization": "Bearer wrong"}, 401),
        ("POST", "/outbox/1/retry", {"Authorization": f"Bearer {ADMIN}"}, 404),
        ("GET", "/login", {}, 302),
        ("GET", "/login/callback", {}, 400),
        ("POST", "/logout", {}, 302),
    ],
)
async def test_every_answer_carries_the_content_security_policy(bot, method, path, headers, status):
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, bot.url + path, headers=headers, allow_redirects=False) as r,
    ):
        await r.read()
    assert r.status == status
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (name, method, path)
