"""git over smart HTTP: clone URLs are URLs, and the token is asked for as GitHub asks for it."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from tests.sandbox.tests.conftest import Git


def _header(url: str, token: str) -> tuple[str, str]:
    """The token as the bot's runners send it: an HTTP header for the clone URL's host."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    host = url.split("/", 3)[:3]
    return "-c", f"http.{'/'.join(host)}/.extraHeader=Authorization: Basic {basic}"


async def _fails(git: Git, *args: str, cwd=None) -> str:
    with pytest.raises(subprocess.CalledProcessError) as caught:
        await git.net(*args, cwd=cwd)
    return caught.value.stderr


async def test_clone_urls_are_smart_http_urls_on_loopback(github, repo, gh):
    answer = await gh.getitem(f"/repos/{repo}")
    assert answer["clone_url"] == f"{github.url}/{repo}.git"
    assert answer["clone_url"].startswith("http://127.0.0.1:")


async def test_a_public_repository_clones_anonymously_and_pushes_only_with_a_token(
    github, repo, gh, outside_git
):
    url = (await gh.getitem(f"/repos/{repo}"))["clone_url"]
    clone = outside_git.home / "clone"
    await outside_git.net("clone", "-q", url, str(clone))
    assert (clone / "README.md").read_text() == "hello\n"
    (clone / "README.md").write_text("changed\n")
    outside_git("commit", "-qam", "Change", cwd=clone)
    await _fails(outside_git, "push", "-q", "origin", "main", cwd=clone)
    assert github.git(repo).rev("main") != outside_git("rev-parse", "HEAD", cwd=clone)

    minted = github.auth.mint()["token"]
    await outside_git.net(*_header(url, minted), "push", "-q", "origin", "main", cwd=clone)
    assert github.git(repo).rev("main") == outside_git("rev-parse", "HEAD", cwd=clone)
    kinds = [(r.service, r.credential, r.status) for r in github.git_http.requests]
    assert ("git-receive-pack", "installation", 200) in kinds
    assert ("git-receive-pack", None, 401) in kinds


async def test_a_read_only_token_may_fetch_but_not_push(github, repo, outside_git):
    url = f"{github.url}/{repo}.git"
    reader = github.auth.mint({"contents": "read"})["token"]
    clone = outside_git.home / "clone"
    await outside_git.net(*_header(url, reader), "clone", "-q", url, str(clone))
    (clone / "README.md").write_text("changed\n")
    outside_git("commit", "-qam", "Change", cwd=clone)
    refused = await _fails(
        outside_git, *_header(url, reader), "push", "-q", "origin", "main", cwd=clone
    )
    assert "denied" in refused
    assert github.git_http.requests[-1].status == 403


async def test_a_private_repository_needs_a_token_that_sees_it(github, outside_git):
    github.create_repo("acme/secret", files={"a.txt": "a\n"}, private=True)
    url = f"{github.url}/acme/secret.git"
    await _fails(outside_git, "clone", "-q", url, str(outside_git.home / "anon"))
    assert github.git_http.requests[-1].status == 401  # git would prompt for a password
    await _fails(
        outside_git, *_header(url, "ghs_nope"), "clone", "-q", url, str(outside_git.home / "b")
    )
    assert github.git_http.requests[-1].status == 401
    token = github.auth.mint()["token"]
    await outside_git.net(*_header(url, token), "clone", "-q", url, str(outside_git.home / "ok"))
    assert (outside_git.home / "ok" / "a.txt").read_text() == "a\n"
    missing = f"{github.url}/acme/nothing.git"
    await _fails(
        outside_git, *_header(missing, token), "clone", "-q", missing, str(outside_git.home / "n")
    )
    assert [r.status for r in github.git_http.requests if r.full_name == "acme/nothing"] == [404]


async def test_a_push_from_a_clone_moves_the_pull_refs_before_any_api_request(
    github, repo, outside_git
):
    github.commit(repo, "feature", {"a.txt": "a\n"}, author="carol")
    number = github.open_pull(repo, "feature", author="carol")
    url = f"{github.url}/{repo}.git"
    token = github.auth.mint()["token"]
    clone = outside_git.home / "clone"
    await outside_git.net("clone", "-q", "-b", "feature", url, str(clone))
    (clone / "a.txt").write_text("b\n")
    outside_git("commit", "-qam", "More", cwd=clone)
    await outside_git.net(*_header(url, token), "push", "-q", "origin", "feature", cwd=clone)
    pushed = outside_git("rev-parse", "HEAD", cwd=clone)
    await outside_git.net("fetch", "-q", "origin", f"pull/{number}/head", cwd=clone)
    assert outside_git("rev-parse", "FETCH_HEAD", cwd=clone) == pushed
    await outside_git.net("fetch", "-q", "origin", f"pull/{number}/merge", cwd=clone)
    assert outside_git("rev-parse", "FETCH_HEAD^2", cwd=clone) == pushed


async def test_a_large_push_streams_through(github, repo, outside_git):
    """Several megabytes of pack each way: bodies are streamed, and gzip-encoded requests
    (git compresses large negotiations) are undone before http-backend reads them."""
    url = f"{github.url}/{repo}.git"
    token = github.auth.mint()["token"]
    clone = outside_git.home / "clone"
    await outside_git.net("clone", "-q", url, str(clone))
    for i in range(300):
        (clone / f"blob{i}.bin").write_bytes(os.urandom(20_000))
        if i % 100 == 99:
            outside_git("add", ".", cwd=clone)
            outside_git("commit", "-qm", f"Blobs {i}", cwd=clone)
    await outside_git.net(*_header(url, token), "push", "-q", "origin", "main", cwd=clone)
    head = outside_git("rev-parse", "HEAD", cwd=clone)
    assert github.git(repo).rev("main") == head
    again = outside_git.home / "again"
    await outside_git.net("clone", "-q", url, str(again))
    assert outside_git("rev-parse", "HEAD", cwd=again) == head
    # Many local commits to offer: git negotiates with a gzip-encoded request body.
    for i in range(80):
        outside_git("commit", "-q", "--allow-empty", "-m", f"Local {i}", cwd=again)
    (clone / "last.txt").write_text("last\n")
    outside_git("add", ".", cwd=clone)
    outside_git("commit", "-qm", "Last", cwd=clone)
    await outside_git.net(*_header(url, token), "push", "-q", "origin", "main", cwd=clone)
    await outside_git.net("fetch", "-q", "origin", cwd=again)
    assert outside_git("rev-parse", "origin/main", cwd=again) == github.git(repo).rev("main")
    assert any(r.content_encoding == "gzip" for r in github.git_http.requests)
    assert all(r.status == 200 for r in github.git_http.requests)
