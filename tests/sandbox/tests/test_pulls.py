"""Pull requests through gidgethub: lists, files, heads that follow pushes, forks, merges."""

from __future__ import annotations

import gidgethub
import pytest

from tests.sandbox import SandboxGitError


async def test_files_of_a_pull_request_paginate_with_links(github, repo, gh, session):
    changes = {f"data/file_{i:03d}.txt": f"{i}\n" for i in range(150)}
    github.commit(repo, "data", changes, author="carol")
    number = github.open_pull(repo, "data", author="carol")
    url = f"{github.url}/repos/{repo}/pulls/{number}/files?per_page=100"
    async with session.get(url, headers={"Authorization": f"token {github.token}"}) as answer:
        assert len(await answer.json()) == 100
        assert 'page=2>; rel="next"' in answer.headers["Link"]
        assert 'page=2>; rel="last"' in answer.headers["Link"]
    files = [f async for f in gh.getiter(f"/repos/{repo}/pulls/{number}/files?per_page=100")]
    assert [f["filename"] for f in files] == sorted(changes)
    assert files[0]["status"] == "added"
    assert (files[0]["additions"], files[0]["deletions"], files[0]["changes"]) == (1, 0, 1)


async def test_github_lists_at_most_3000_files_of_a_pull_request(github, repo, gh):
    changes = {f"data/file_{i:04d}.txt": f"{i}\n" for i in range(3005)}
    github.commit(repo, "big", changes, message="many files", author="carol")
    number = github.open_pull(repo, "big", author="carol")
    files = [f async for f in gh.getiter(f"/repos/{repo}/pulls/{number}/files?per_page=100")]
    assert len(files) == 3000
    detail = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    assert detail["changed_files"] == 3005  # the count is not capped, the list is


async def test_unknown_pull_request_is_404(github, repo, gh):
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/pulls/99")
    assert caught.value.status_code == 404
    issue = github.open_issue(repo, "A bug")  # an issue's number is not a pull request
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/pulls/{issue}")
    assert caught.value.status_code == 404
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem("/repos/acme/nothing-here/pulls/1")
    assert caught.value.status_code == 404


async def test_a_pull_request_as_github_describes_it(github, repo, gh):
    github.commit(
        repo,
        "feature",
        {"README.md": "hello\nworld\n", "new.py": "a\nb\n"},
        author="carol",
        message="Feature",
    )
    github.commit(repo, "feature", {"new.py": "a\nb\nc\n"}, author="carol", message="More")
    number = github.open_pull(repo, "feature", title="Add things", author="carol", draft=True)
    pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    assert (pull["number"], pull["state"], pull["draft"], pull["merged"]) == (
        number,
        "open",
        True,
        False,
    )
    assert pull["user"]["login"] == "carol"
    assert pull["head"]["ref"] == "feature"
    assert pull["head"]["sha"] == github.git(repo).rev("feature")
    assert pull["head"]["repo"]["full_name"] == repo
    assert pull["base"]["sha"] == github.git(repo).rev("main")
    assert pull["head"]["repo"]["clone_url"] == f"{github.url}/{repo}.git"
    assert (pull["commits"], pull["additions"], pull["deletions"], pull["changed_files"]) == (
        2,
        4,
        0,
        2,
    )
    assert (pull["mergeable"], pull["mergeable_state"]) == (True, "draft")
    github.mark_ready(repo, number)
    ready = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    assert (ready["draft"], ready["mergeable_state"]) == (False, "clean")
    commits = [c async for c in gh.getiter(f"/repos/{repo}/pulls/{number}/commits")]
    assert [c["commit"]["message"] for c in commits] == ["Feature", "More"]
    assert commits[0]["author"]["login"] == "carol"
    issue = await gh.getitem(f"/repos/{repo}/issues/{number}")
    assert issue["pull_request"]["url"].endswith(f"/pulls/{number}")


async def test_listing_filters_by_state_and_head_newest_first(github, repo, gh):
    for branch in ("one", "two", "three"):
        github.commit(repo, branch, {f"{branch}.txt": branch}, author="carol")
    first = github.open_pull(repo, "one", created_at="2024-01-01T00:00:00Z")
    second = github.open_pull(repo, "two", created_at="2024-01-02T00:00:00Z")
    third = github.open_pull(repo, "three", created_at="2024-01-03T00:00:00Z")
    github.close_issue(repo, second)
    listed = [p["number"] async for p in gh.getiter(f"/repos/{repo}/pulls")]
    assert listed == [third, first]
    everything = [
        p["number"] async for p in gh.getiter(f"/repos/{repo}/pulls?state=all&per_page=1")
    ]
    assert everything == [third, second, first]
    by_head = await gh.getitem(f"/repos/{repo}/pulls?head=acme:one")
    assert [p["number"] for p in by_head] == [first]
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/pulls?state=bogus")
    assert caught.value.status_code == 422


async def test_a_push_from_a_clone_moves_the_pull_request_head(github, repo, gh, outside_git):
    github.commit(repo, "feature", {"a.txt": "a\n"}, author="carol")
    number = github.open_pull(repo, "feature", author="carol")
    clone_url = (await gh.getitem(f"/repos/{repo}"))["clone_url"]
    clone = outside_git.home / "clone"
    await outside_git.net("clone", "-q", "-b", "feature", clone_url, str(clone))
    (clone / "a.txt").write_text("b\n")
    outside_git("commit", "-qam", "Apply style fixes", cwd=clone)
    await outside_git.net("push", "-q", "origin", "feature", cwd=clone, token=github.token)
    pushed = outside_git("rev-parse", "HEAD", cwd=clone)
    assert (await gh.getitem(f"/repos/{repo}/pulls/{number}"))["head"]["sha"] == pushed
    files = await gh.getitem(f"/repos/{repo}/pulls/{number}/files")
    assert [(f["filename"], f["additions"]) for f in files] == [("a.txt", 1)]
    # GitHub keeps the head under refs/pull/N/head, where CI fetches it from
    await outside_git.net("fetch", "-q", "origin", f"pull/{number}/head", cwd=clone)
    assert outside_git("rev-parse", "FETCH_HEAD", cwd=clone) == pushed


async def test_a_pull_request_from_a_fork(github, repo, gh, outside_git):
    fork = github.fork(repo, "carol")
    github.commit(fork.full_name, "fix", {"README.md": "fixed\n"}, author="carol")
    number = github.open_pull(repo, "fix", head_repo=fork.full_name, author="carol")
    pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    assert pull["head"]["label"] == "carol:fix"
    assert pull["head"]["repo"]["full_name"] == "carol/models"
    assert pull["head"]["repo"]["fork"] is True
    assert pull["head"]["repo"]["clone_url"] == f"{github.url}/{fork.full_name}.git"
    # the bot pushes a style fix to the fork's branch: the PR follows it
    clone = outside_git.home / "fork"
    await outside_git.net("clone", "-q", "-b", "fix", pull["head"]["repo"]["clone_url"], str(clone))
    (clone / "README.md").write_text("fixed, styled\n")
    outside_git("commit", "-qam", "Apply style fixes", cwd=clone)
    await outside_git.net("push", "-q", "origin", "fix", cwd=clone, token=github.token)
    head = outside_git("rev-parse", "HEAD", cwd=clone)
    assert (await gh.getitem(f"/repos/{repo}/pulls/{number}"))["head"]["sha"] == head
    compare = await gh.getitem(f"/repos/{repo}/compare/main...{head}")  # fetched into the base
    assert compare["ahead_by"] == 2
    parent = await gh.getitem(f"/repos/{fork.full_name}")
    assert parent["parent"]["full_name"] == repo
    github.create_repo("other/models")
    with pytest.raises(ValueError, match="not a fork"):
        github.open_pull(repo, "main", head_repo="other/models")


@pytest.mark.parametrize("method", ["merge", "squash"])
async def test_a_merge_links_its_commits_to_the_pull_request(github, repo, gh, method):
    first = github.commit(repo, "feat", {"b.txt": "b\n"}, author="carol", message="Add b")
    number = github.open_pull(repo, "feat", title="Add b", author="carol")
    before, after = github.merge_pull(repo, number, method=method, merged_by="bob")
    assert before != after
    parents = [p["sha"] for p in (await gh.getitem(f"/repos/{repo}/commits/{after}"))["parents"]]
    assert parents == ([before, first] if method == "merge" else [before])
    for sha in (first, after):
        pulls = await gh.getitem(f"/repos/{repo}/commits/{sha}/pulls")
        assert [(p["number"], p["merged_at"] is not None) for p in pulls] == [(number, True)]
    pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    assert (pull["state"], pull["merged"], pull["merged_by"]["login"]) == ("closed", True, "bob")
    assert pull["merge_commit_sha"] == after
    assert pull["head"]["sha"] == first  # stays at the last head, as on GitHub
    files = await gh.getitem(f"/repos/{repo}/pulls/{number}/files")
    assert [f["filename"] for f in files] == ["b.txt"]  # a merged PR keeps its files
    with pytest.raises(ValueError, match="closed"):
        github.merge_pull(repo, number)


async def test_an_open_pull_request_names_the_commits_it_carries(github, repo, gh):
    sha = github.commit(repo, "wip", {"c.txt": "c\n"}, author="carol")
    number = github.open_pull(repo, "wip", author="carol")
    assert [p["number"] for p in await gh.getitem(f"/repos/{repo}/commits/{sha}/pulls")] == [number]
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/commits/{'0' * 40}/pulls")
    assert caught.value.status_code == 422


async def test_conflicting_pull_requests_are_not_mergeable(github, repo, gh):
    github.commit(repo, "left", {"README.md": "left\n"}, author="carol")
    github.commit(repo, "main", {"README.md": "right\n"}, author="bob")
    number = github.open_pull(repo, "left", author="carol")
    pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    assert (pull["mergeable"], pull["mergeable_state"]) == (False, "dirty")
    with pytest.raises(SandboxGitError, match="conflicts"):
        github.merge_pull(repo, number)


async def test_a_closed_pull_request_keeps_its_head(github, repo, gh):
    sha = github.commit(repo, "gone", {"d.txt": "d\n"}, author="carol")
    number = github.open_pull(repo, "gone", author="carol")
    github.close_issue(repo, number)
    github.commit(repo, "gone", {"d.txt": "e\n"}, author="carol")
    assert (await gh.getitem(f"/repos/{repo}/pulls/{number}"))["head"]["sha"] == sha
    github.reopen_issue(repo, number)
    assert (await gh.getitem(f"/repos/{repo}/pulls/{number}"))["head"]["sha"] != sha
