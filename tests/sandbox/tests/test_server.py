"""The HTTP face: recording, programmed failures, GitHub's error shapes, serving options."""

from __future__ import annotations

import asyncio

import gidgethub
import pytest
from gidgethub.aiohttp import GitHubAPI

from tests.sandbox import SandboxGitHub


async def test_every_request_is_recorded_and_writes_are_told_apart(github, repo, gh):
    await gh.getitem(f"/repos/{repo}")
    github.commit(repo, "x", {"a": "a"})
    number = github.open_pull(repo, "x")
    await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": "hi"})
    with pytest.raises(gidgethub.BadRequest):
        await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": ""})
    assert [(r.method, r.path, r.status) for r in github.requests] == [
        ("GET", f"/repos/{repo}", 200),
        ("POST", f"/repos/{repo}/issues/{number}/comments", 201),
        ("POST", f"/repos/{repo}/issues/{number}/comments", 422),
    ]
    (write, refused) = github.writes()
    assert (write.json, refused.json) == ({"body": "hi"}, {"body": ""})


async def test_programmed_failures_come_first_then_stop(github, repo, gh):
    github.fail_next("GET", r"/pulls$", 502, times=2)
    for _ in range(2):
        with pytest.raises(gidgethub.GitHubBroken) as caught:
            await gh.getitem(f"/repos/{repo}/pulls")
        assert str(caught.value) == "Bad Gateway"
    assert await gh.getitem(f"/repos/{repo}/pulls") == []
    github.fail_next("*", r"/comments", 500, body="<html>oops</html>")
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.post(f"/repos/{repo}/issues/1/comments", data={"body": "x"})
    with pytest.raises(ValueError):
        github.fail_next("GET", ".", 999)


async def test_github_error_shapes(github, repo, gh, session):
    headers = {"Authorization": f"token {github.token}"}
    async with session.get(f"{github.url}/repos/{repo}/nothing", headers=headers) as answer:
        assert answer.status == 404
        body = await answer.json()
        assert body["message"] == "Not Found"
        assert body["documentation_url"].startswith("https://docs.github.com/")
    async with session.post(
        f"{github.url}/repos/{repo}/issues/1/comments", data=b"{not json", headers=headers
    ) as answer:
        assert (answer.status, (await answer.json())["message"]) == (400, "Problems parsing JSON")
    async with session.get(f"{github.url}/repos/{repo}", headers=headers) as answer:
        assert answer.headers["X-RateLimit-Resource"] == "core"
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"


async def test_make_app_serves_under_a_test_server(tmp_path, aiohttp_client):
    github = SandboxGitHub(tmp_path / "gh")
    github.create_repo("acme/tiny")
    client = await aiohttp_client(github.make_app())
    answer = await client.get(
        "/repos/acme/tiny", headers={"Authorization": f"token {github.token}"}
    )
    assert answer.status == 200
    assert (await answer.json())["url"] == f"{github.url}/repos/acme/tiny"
    assert github.url.startswith("http://127.0.0.1:")


async def test_set_up_while_requests_are_answered(github, repo, session):
    """Requests run on a worker thread under the sandbox's lock; set-up takes the same lock."""
    gh = GitHubAPI(session, "t", oauth_token=github.token, base_url=github.url)
    github.commit(repo, "busy", {f"f{i}.txt": "x\n" for i in range(200)})
    number = github.open_pull(repo, "busy")
    reads = [gh.getitem(f"/repos/{repo}/pulls/{number}") for _ in range(10)]
    pending = asyncio.gather(*reads)
    for i in range(5):
        github.commit(repo, "main", {f"main{i}.txt": "m"})
    answers = await pending
    assert {a["number"] for a in answers} == {number}
    assert github.git(repo).list_tree("main") is not None
