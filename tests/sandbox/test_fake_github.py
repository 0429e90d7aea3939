"""The sandbox GitHub through the real gidgethub client, over real git repositories."""

from __future__ import annotations

import base64
import subprocess

import gidgethub
import pytest
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_installation_access_token

REPO = "acme/models"
GPT2 = "model_lib/models/gpt2/modeling_gpt2.py"
GPT3 = "model_lib/models/gpt3/modeling_gpt3.py"


@pytest.fixture
def repo(github):
    github.create_repo(
        REPO,
        files={"README.md": "hello\n", "model_lib/models/gpt2/modeling_gpt2.py": "x = 1\n"},
        collaborators={"alice": "write", "bob": "admin"},
    )
    return REPO


async def test_bad_token_is_401(github, repo, session):
    bad = GitHubAPI(session, "t", oauth_token="nope", base_url=github.url)
    with pytest.raises(gidgethub.HTTPException) as caught:
        await bad.getitem(f"/repos/{repo}")
    assert caught.value.status_code == 401


async def test_installation_token_from_a_real_jwt(github, repo, session):
    minter = GitHubAPI(session, "t", base_url=github.url)
    answer = await get_installation_access_token(
        minter, installation_id="1", app_id="1", private_key=github.private_key_pem
    )
    installed = GitHubAPI(session, "t", oauth_token=answer["token"], base_url=github.url)
    assert (await installed.getitem(f"/repos/{repo}"))["default_branch"] == "main"
    with pytest.raises(gidgethub.HTTPException):
        await get_installation_access_token(
            minter, installation_id="1", app_id="2", private_key=github.private_key_pem
        )


async def test_pull_files_paginate_and_cap(github, repo, gh):
    changes = {f"data/file_{i:04d}.txt": f"{i}\n" for i in range(3005)}
    github.commit(repo, "big", changes, message="many files", author="carol")
    number = github.open_pull(repo, "big", author="carol")
    files = [f async for f in gh.getiter(f"/repos/{repo}/pulls/{number}/files?per_page=100")]
    assert len(files) == 3000  # GitHub lists at most 3,000 files of a pull request
    assert files[0] == {
        "filename": "data/file_0000.txt",
        "status": "added",
        "additions": 1,
        "deletions": 0,
        "changes": 1,
    }


async def test_unknown_pull_is_404(gh, repo):
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/pulls/99")
    assert caught.value.status_code == 404


async def test_reviewer_requests_follow_githubs_rules(github, repo, gh):
    github.commit(repo, "fix", {"README.md": "hi\n"}, author="carol")
    number = github.open_pull(repo, "fix", author="carol")
    url = f"/repos/{repo}/pulls/{number}/requested_reviewers"
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.post(url, data={"reviewers": ["alice", "mallory"]})
    assert caught.value.status_code == 422
    assert "collaborators" in str(caught.value)
    await gh.post(url, data={"reviewers": ["alice"]})
    assert (await gh.getitem(url))["users"][0]["login"] == "alice"
    with pytest.raises(gidgethub.BadRequest):
        await gh.post(url, data={"reviewers": ["carol"]})  # the author


async def test_compare_shows_added_renamed_and_removed(github, repo, gh):
    before = github.git(repo).rev("main")
    after = github.commit(
        repo,
        "main",
        {"README.md": None, "model_lib/models/llama/modeling_llama.py": "y = 2\n"},
        renames={
            "model_lib/models/gpt2/modeling_gpt2.py": "model_lib/models/gpt3/modeling_gpt3.py"
        },
    )
    answer = await gh.getitem(f"/repos/{repo}/compare/{before}...{after}")
    statuses = {f["filename"]: (f["status"], f.get("previous_filename")) for f in answer["files"]}
    assert statuses == {
        "README.md": ("removed", None),
        "model_lib/models/llama/modeling_llama.py": ("added", None),
        "model_lib/models/gpt3/modeling_gpt3.py": (
            "renamed",
            "model_lib/models/gpt2/modeling_gpt2.py",
        ),
    }
    assert (answer["status"], answer["ahead_by"]) == ("ahead", 1)
    assert answer["merge_base_commit"]["sha"] == before


async def test_contents_statuses_comments_and_permission(github, repo, gh):
    content = await gh.getitem(f"/repos/{repo}/contents/README.md?ref=main")
    assert base64.b64decode(content["content"]) == b"hello\n"
    with pytest.raises(gidgethub.BadRequest):
        await gh.getitem(f"/repos/{repo}/contents/missing.txt")
    sha = github.git(repo).rev("main")
    await gh.post(
        f"/repos/{repo}/statuses/{sha}",
        data={"state": "pending", "context": "pytest/custom-tests", "description": "Slow CI job"},
    )
    combined = await gh.getitem(f"/repos/{repo}/commits/{sha}/status")
    assert combined["state"] == "pending"
    with pytest.raises(gidgethub.BadRequest):
        await gh.post(f"/repos/{repo}/statuses/{sha}", data={"state": "bogus"})
    github.commit(repo, "x", {"a.txt": "a"})
    number = github.open_pull(repo, "x")
    await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": "hello"})
    assert [c["body"] for c in github.comments(repo, number)] == ["hello"]
    perm = await gh.getitem(f"/repos/{repo}/collaborators/bob/permission")
    assert perm["permission"] == "admin"
    assert (await gh.getitem(f"/repos/{repo}/collaborators/eve/permission"))["permission"] == "none"


async def test_a_push_from_a_clone_moves_the_pull_head(github, repo, gh, tmp_path):
    github.commit(repo, "feature", {"a.txt": "a\n"}, author="carol")
    number = github.open_pull(repo, "feature", author="carol")
    clone = tmp_path / "clone"
    git_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    clone_url = (await gh.getitem(f"/repos/{repo}"))["clone_url"]
    subprocess.run(
        ["git", "clone", "-q", "-b", "feature", clone_url, str(clone)], check=True, env=git_env
    )
    (clone / "a.txt").write_text("b\n")
    ident = ["-c", "user.name=bot", "-c", "user.email=bot@example.invalid"]
    subprocess.run(["git", *ident, "commit", "-qam", "style"], cwd=clone, check=True, env=git_env)
    subprocess.run(["git", "push", "-q", "origin", "feature"], cwd=clone, check=True, env=git_env)
    pushed = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=clone,
        check=True,
        env=git_env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert (await gh.getitem(f"/repos/{repo}/pulls/{number}"))["head"]["sha"] == pushed


async def test_merge_links_commits_to_their_pull(github, repo, gh):
    first = github.commit(repo, "feat", {"b.txt": "b\n"}, author="carol")
    number = github.open_pull(repo, "feat", title="Add b", author="carol")
    before, after = github.merge_pull(repo, number)
    assert before != after
    for sha in (first, after):
        pulls = await gh.getitem(f"/repos/{repo}/commits/{sha}/pulls")
        assert [(p["number"], p["merged"]) for p in pulls] == [(number, True)]
    payload = github.push_payload(repo, "refs/heads/main", before, after)
    assert payload["commits"][0]["added"] == ["b.txt"]
    assert payload["repository"]["default_branch"] == "main"


async def test_scripted_failures(github, repo, gh):
    github.fail_next("GET", r"/pulls$", 502, times=2)
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.getitem(f"/repos/{repo}/pulls")
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.getitem(f"/repos/{repo}/pulls")
    assert await gh.getitem(f"/repos/{repo}/pulls") == []
