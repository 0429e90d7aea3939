"""The GitHub client against a scripted HTTP server: retries, rate limits, dry runs, tokens."""

from __future__ import annotations

import time
from dataclasses import replace

import gidgethub
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.clients.github import CredentialsMissing, GitHubClients, new_session
from bot.config import Settings


class Scripted:
    """Answers each request with the next scripted response, and records what it received."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict, dict]] = []
        self.seen: list[tuple[str, str, dict]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.seen.append((request.method, request.path_qs, dict(request.headers), body))
        status, headers, payload = self.script.pop(0) if self.script else (200, {}, {"ok": True})
        return web.json_response(payload, status=status, headers=headers)


@pytest.fixture
async def github(aiohttp_server):
    scripted = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    server = await aiohttp_server(app)
    scripted.url = str(server.make_url("")).rstrip("/")
    return scripted


@pytest.fixture
def settings(github) -> Settings:
    return Settings(webhook_secret="x" * 20, github_token="tok-123", github_api_url=github.url)


async def test_5xx_is_retried_then_succeeds(github, settings):
    github.script = [(502, {}, {"message": "bad gateway"}), (200, {}, {"login": "octocat"})]
    async with new_session() as session:
        gh = await GitHubClients(session, settings).for_installation(None)
        gh.backoff = 0.001
        assert await gh.getitem("/user") == {"login": "octocat"}
    assert len(github.seen) == 2
    assert github.seen[0][2]["Authorization"] == "token tok-123"


async def test_5xx_gives_up_after_the_retries(github, settings):
    github.script = [(503, {}, {"message": "down"})] * 4
    async with new_session() as session:
        gh = await GitHubClients(session, settings).for_installation(None)
        gh.backoff = 0.001
        with pytest.raises(gidgethub.GitHubBroken):
            await gh.getitem("/user")
    assert len(github.seen) == 4


async def test_rate_limit_waits_for_retry_after(github, settings):
    github.script = [
        (429, {"Retry-After": "0.2"}, {"message": "secondary rate limit"}),
        (200, {}, {"ok": 1}),
    ]
    async with new_session() as session:
        gh = await GitHubClients(session, settings).for_installation(None)
        start = time.monotonic()
        assert await gh.getitem("/repos/o/r") == {"ok": 1}
        assert time.monotonic() - start >= 0.2


async def test_a_long_rate_limit_is_not_waited_for(github, settings):
    reset = str(int(time.time()) + 3600)
    github.script = [
        (
            403,
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset, "X-RateLimit-Limit": "5000"},
            {"message": "API rate limit exceeded"},
        ),
    ]
    async with new_session() as session:
        gh = await GitHubClients(session, settings).for_installation(None)
        with pytest.raises(gidgethub.HTTPException):
            await gh.getitem("/repos/o/r")
    assert len(github.seen) == 1


async def test_client_errors_are_not_retried(github, settings):
    github.script = [(422, {}, {"message": "Validation Failed"})]
    async with new_session() as session:
        gh = await GitHubClients(session, settings).for_installation(None)
        with pytest.raises(gidgethub.BadRequest) as caught:
            await gh.post("/repos/o/r/pulls/1/requested_reviewers", data={"reviewers": ["x"]})
    assert caught.value.status_code == 422
    assert len(github.seen) == 1


async def test_dry_run_reads_for_real_and_records_writes(github, settings):
    github.script = [(200, {}, {"number": 1})]
    async with new_session() as session:
        gh = await GitHubClients(session, settings, dry_run=True).for_installation(None)
        assert await gh.getitem("/repos/o/r/pulls/1") == {"number": 1}
        await gh.post("/repos/o/r/issues/1/comments", data={"body": "hello"})
        await gh.patch("/repos/o/r/issues/comments/7", data={"body": "edited"})
    # The read went out; the comment and the edit did not.
    assert [(s[0], s[1]) for s in github.seen] == [("GET", "/repos/o/r/pulls/1")]
    assert [(w.method, w.body) for w in gh.writes] == [
        ("POST", {"body": "hello"}),
        ("PATCH", {"body": "edited"}),
    ]


async def test_no_credentials_fails_only_when_github_is_called(github, settings):
    bare = replace(settings, github_token=None)
    async with new_session() as session:
        gh = await GitHubClients(session, bare).for_installation(5)
        with pytest.raises(CredentialsMissing, match="needs GitHub credentials"):
            await gh.getitem("/repos/o/r")
    assert github.seen == []


async def test_app_mode_mints_and_caches_installation_tokens(github, settings):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    app_settings = replace(settings, github_token=None, github_app_id="42", github_private_key=pem)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    github.script = [
        (201, {}, {"token": "ghs_install_7", "expires_at": expires}),
        (200, {}, {"id": 1}),
        (200, {}, {"id": 2}),
    ]
    async with new_session() as session:
        clients = GitHubClients(session, app_settings)
        first = await clients.for_installation(7)
        await first.getitem("/repos/o/r")
        second = await clients.for_installation(7)
        await second.getitem("/repos/o/r")
    method, path, headers, _ = github.seen[0]
    assert (method, path) == ("POST", "/app/installations/7/access_tokens")
    claims = jwt.decode(
        headers["Authorization"].split(" ", 1)[1],
        key.public_key(),
        algorithms=["RS256"],
    )
    assert claims["iss"] == "42"
    assert [s[2]["Authorization"] for s in github.seen[1:]] == ["token ghs_install_7"] * 2
    assert len(github.seen) == 3  # one token for both clients
