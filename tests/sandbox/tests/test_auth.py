"""Credentials as GitHub checks them: App JWTs, installation tokens, the static token, limits."""

from __future__ import annotations

import time

import gidgethub
import jwt
import pytest
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_installation_access_token, get_jwt


async def test_an_installation_token_minted_with_a_real_jwt_reads_the_repository(
    github, repo, session
):
    minter = GitHubAPI(session, "t", base_url=github.url)
    answer = await get_installation_access_token(
        minter, installation_id="1", app_id="1", private_key=github.private_key_pem
    )
    assert answer["token"].startswith("ghs_")
    assert answer["permissions"]["pull_requests"] == "write"
    installed = GitHubAPI(session, "t", oauth_token=answer["token"], base_url=github.url)
    assert (await installed.getitem(f"/repos/{repo}"))["default_branch"] == "main"
    assert [r.path for r in github.writes()] == []  # minting is not a write


async def test_a_jwt_for_another_app_or_installation_is_refused(github, session):
    minter = GitHubAPI(session, "t", base_url=github.url)
    with pytest.raises(gidgethub.BadRequest) as caught:
        await get_installation_access_token(
            minter, installation_id="1", app_id="2", private_key=github.private_key_pem
        )
    assert caught.value.status_code == 401
    with pytest.raises(gidgethub.BadRequest) as caught:
        await get_installation_access_token(
            minter, installation_id="7", app_id="1", private_key=github.private_key_pem
        )
    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iat": -700, "exp": -100}, "'Expiration time' claim ('exp') must be a numeric value"),
        ({"iat": -60, "exp": 3600}, "'Expiration time' claim ('exp') is too far in the future"),
        ({"iat": 600, "exp": 500}, "'Issued at' claim ('iat') must be an Integer"),
    ],
)
async def test_jwt_lifetimes_github_refuses(github, session, claims, message):
    now = int(time.time())
    token = jwt.encode(
        {"iss": "1", "iat": now + claims["iat"], "exp": now + claims["exp"]},
        github.private_key_pem,
        algorithm="RS256",
    )
    app = GitHubAPI(session, "t", base_url=github.url)
    with pytest.raises(gidgethub.BadRequest) as caught:
        await app.getitem("/app", jwt=token)
    assert caught.value.status_code == 401
    assert message in str(caught.value)


async def test_app_endpoints_need_the_jwt_and_repo_endpoints_a_token(github, repo, gh, session):
    app = GitHubAPI(session, "t", base_url=github.url)
    token = get_jwt(app_id="1", private_key=github.private_key_pem)
    assert (await app.getitem("/app", jwt=token))["id"] == 1
    assert (await app.getitem(f"/repos/{repo}/installation", jwt=token))["id"] == 1
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/installation")  # a token is not a JWT
    assert caught.value.status_code == 401
    with pytest.raises(gidgethub.BadRequest) as caught:
        await app.getitem(f"/repos/{repo}", jwt=token)  # a JWT is not a token
    assert caught.value.status_code == 401


@pytest.mark.parametrize(
    ("token", "message"), [("nope", "Bad credentials"), (None, "Requires authentication")]
)
async def test_bad_or_missing_token_is_401(github, repo, session, token, message):
    client = GitHubAPI(session, "t", oauth_token=token, base_url=github.url)
    with pytest.raises(gidgethub.BadRequest) as caught:
        await client.getitem(f"/repos/{repo}")
    assert caught.value.status_code == 401
    assert str(caught.value) == message
    assert github.requests[-1].status == 401


async def test_an_expired_installation_token_is_refused(github, repo, session):
    minter = GitHubAPI(session, "t", base_url=github.url)
    answer = await get_installation_access_token(
        minter, installation_id="1", app_id="1", private_key=github.private_key_pem
    )
    github.expire_token(answer["token"])
    installed = GitHubAPI(session, "t", oauth_token=answer["token"], base_url=github.url)
    with pytest.raises(gidgethub.BadRequest) as caught:
        await installed.getitem(f"/repos/{repo}")
    assert caught.value.status_code == 401


async def test_rate_limit_headers_count_down_and_run_out(tmp_path, session):
    from tests.sandbox import SandboxGitHub

    github = SandboxGitHub(tmp_path / "gh", rate_limit=3)
    await github.start()
    try:
        github.create_repo("acme/tiny")
        gh = GitHubAPI(session, "t", oauth_token=github.token, base_url=github.url)
        for left in (2, 1, 0):
            await gh.getitem("/repos/acme/tiny")
            assert gh.rate_limit.remaining == left
        assert (await gh.getitem("/rate_limit"))["rate"]["remaining"] == 0  # free to ask
        with pytest.raises(gidgethub.RateLimitExceeded):
            await gh.getitem("/repos/acme/tiny")
    finally:
        await github.close()


async def test_programmed_rate_limits(github, repo, gh):
    github.rate_limit_next(path_regex=r"/pulls$")
    with pytest.raises(gidgethub.RateLimitExceeded):
        await gh.getitem(f"/repos/{repo}/pulls")
    github.rate_limit_next(secondary=True, reset_in=7)
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/pulls")
    assert caught.value.status_code == 403
    assert caught.value.headers["Retry-After"] == "7"
    assert "secondary rate limit" in str(caught.value)
    assert await gh.getitem(f"/repos/{repo}/pulls") == []


async def test_a_token_cannot_ask_for_more_than_the_app_was_granted(github, session):
    app = GitHubAPI(session, "t", base_url=github.url)
    token = get_jwt(app_id="1", private_key=github.private_key_pem)
    url = "/app/installations/1/access_tokens"
    narrowed = await app.post(url, data={"permissions": {"issues": "read"}}, jwt=token)
    assert narrowed["permissions"] == {"issues": "read"}
    with pytest.raises(gidgethub.BadRequest) as caught:
        await app.post(url, data={"permissions": {"administration": "write"}}, jwt=token)
    assert caught.value.status_code == 422
