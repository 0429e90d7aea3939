"""GitHub's test merge of an open pull request: a merge of the base tip and the head that GitHub
commits after each push to either, dated when that push arrived, served as `merge_commit_sha`
and `refs/pull/N/merge`. A bot can trust its date where it cannot trust the author's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import gidgethub
import pytest

BASE_PUSH = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)
HEAD_PUSH = BASE_PUSH + timedelta(hours=1)
AUTHORED = datetime(2030, 1, 1, tzinfo=UTC)  # whatever the author says: not GitHub's time


@pytest.fixture
def pushed(github):
    """A repository pushed at BASE_PUSH and a PR whose head was pushed at HEAD_PUSH."""
    github.create_repo(
        "acme/merges",
        files={"README.md": "hello\n", "a.txt": "a\n"},
        collaborators={"alice": "write"},
        pushed_at=BASE_PUSH,
    )
    github.commit(
        "acme/merges",
        "feature",
        {"b.txt": "b\n"},
        author="carol",
        date=AUTHORED,
        pushed_at=HEAD_PUSH,
    )
    return "acme/merges", github.open_pull("acme/merges", "feature", author="carol")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _merge_of(gh, repo: str, number: int) -> tuple[dict, dict]:
    """The pull request and its test merge as the commits API shows it."""
    pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    assert pull["mergeable"] is True
    commit = await gh.getitem(f"/repos/{repo}/commits/{pull['merge_commit_sha']}")
    return pull, commit


async def test_the_test_merge_merges_the_head_into_the_base_as_github_at_the_push(
    github, pushed, gh
):
    repo, number = pushed
    pull, merge = await _merge_of(gh, repo, number)
    base, head = github.git(repo).resolve("main"), github.git(repo).resolve("feature")
    assert (pull["base"]["sha"], pull["head"]["sha"]) == (base, head)
    assert [p["sha"] for p in merge["parents"]] == [base, head]
    committer = merge["commit"]["committer"]
    assert (committer["name"], committer["email"]) == ("GitHub", "noreply@github.com")
    assert _time(committer["date"]) == HEAD_PUSH  # the later push, not the author's date
    assert merge["committer"]["login"] == "web-flow"
    assert merge["commit"]["message"] == f"Merge {head} into {base}"
    assert {f["filename"] for f in merge["files"]} == {"b.txt"}  # against the base
    authored = await gh.getitem(f"/repos/{repo}/commits/{head}")
    assert _time(authored["commit"]["committer"]["date"]) == AUTHORED
    # listed pull requests and webhook payloads carry it too
    (listed,) = await gh.getitem(f"/repos/{repo}/pulls")
    assert listed["merge_commit_sha"] == pull["merge_commit_sha"]
    payload = github.pull_request_payload(repo, number, "opened")
    assert payload["pull_request"]["merge_commit_sha"] == pull["merge_commit_sha"]


async def test_a_push_a_force_push_and_a_base_push_each_make_a_new_test_merge(github, pushed, gh):
    repo, number = pushed
    first, merge = await _merge_of(gh, repo, number)
    old_head = first["head"]["sha"]
    later = HEAD_PUSH + timedelta(minutes=5)
    new_head = github.commit(repo, "feature", {"c.txt": "c\n"}, author="carol", pushed_at=later)
    second, merge = await _merge_of(gh, repo, number)
    assert second["merge_commit_sha"] != first["merge_commit_sha"]
    assert [p["sha"] for p in merge["parents"]] == [first["base"]["sha"], new_head]
    assert _time(merge["commit"]["committer"]["date"]) == later

    forced = later + timedelta(minutes=5)
    github.force_push(repo, "feature", old_head, pushed_at=forced)  # back to an older head
    third, merge = await _merge_of(gh, repo, number)
    assert third["merge_commit_sha"] not in (first["merge_commit_sha"], second["merge_commit_sha"])
    assert [p["sha"] for p in merge["parents"]] == [first["base"]["sha"], old_head]
    assert _time(merge["commit"]["committer"]["date"]) == forced

    based = forced + timedelta(minutes=5)
    new_base = github.commit(repo, "main", {"a.txt": "aa\n"}, pushed_at=based)
    fourth, merge = await _merge_of(gh, repo, number)
    assert [p["sha"] for p in merge["parents"]] == [new_base, old_head]
    assert _time(merge["commit"]["committer"]["date"]) == based
    assert fourth["head"]["sha"] == old_head


async def test_git_fetches_the_merge_and_head_refs_and_a_push_from_a_clone_moves_them(
    github, pushed, gh, outside_git
):
    repo, number = pushed
    pull, _ = await _merge_of(gh, repo, number)
    clone = outside_git.home / "clone"
    await outside_git.net(
        "clone", "-q", "-b", "feature", pull["head"]["repo"]["clone_url"], str(clone)
    )
    await outside_git.net("fetch", "-q", "origin", f"pull/{number}/merge", cwd=clone)
    assert outside_git("rev-parse", "FETCH_HEAD", cwd=clone) == pull["merge_commit_sha"]
    await outside_git.net("fetch", "-q", "origin", f"pull/{number}/head", cwd=clone)
    assert outside_git("rev-parse", "FETCH_HEAD", cwd=clone) == pull["head"]["sha"]

    (clone / "b.txt").write_text("bb\n")
    outside_git("commit", "-qam", "More", cwd=clone)
    before = datetime.now(UTC).replace(microsecond=0)
    await outside_git.net("push", "-q", "origin", "feature", cwd=clone, token=github.token)
    after = datetime.now(UTC)
    moved, merge = await _merge_of(gh, repo, number)
    pushed_head = outside_git("rev-parse", "HEAD", cwd=clone)
    assert [p["sha"] for p in merge["parents"]] == [pull["base"]["sha"], pushed_head]
    assert before <= _time(merge["commit"]["committer"]["date"]) <= after  # git logged the push
    await outside_git.net("fetch", "-q", "origin", f"pull/{number}/merge", cwd=clone)
    assert outside_git("rev-parse", "FETCH_HEAD", cwd=clone) == moved["merge_commit_sha"]


async def test_a_sandbox_push_moves_the_merge_ref_before_any_request(github, pushed, gh):
    repo, number = pushed
    first, _ = await _merge_of(gh, repo, number)
    github.commit(repo, "main", {"a.txt": "aa\n"})
    ref = f"refs/pull/{number}/merge"
    moved = github.git(repo).refs(ref)[ref]
    assert moved != first["merge_commit_sha"]
    assert github.pull(repo, number).merge_commit_sha == moved


async def test_a_conflicting_head_is_not_mergeable_and_has_no_merge_ref(github, pushed, gh):
    repo, number = pushed
    github.commit(repo, "feature", {"README.md": "theirs\n"}, author="carol")
    clean, _ = await _merge_of(gh, repo, number)
    github.commit(repo, "main", {"README.md": "ours\n"})
    pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    assert (pull["mergeable"], pull["mergeable_state"]) == (False, "dirty")
    assert pull["merge_commit_sha"] == clean["merge_commit_sha"]  # stale, as GitHub leaves it
    ref = f"pull/{number}/merge"
    assert f"refs/{ref}" not in github.git(repo).refs("refs/pull/")
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/git/ref/{ref}")
    assert caught.value.status_code == 404
    # a pull request that conflicts from its opening never had a test merge
    github.commit(repo, "clash", {"README.md": "clash\n"}, base=clean["base"]["sha"])
    other = github.open_pull(repo, "clash", author="carol")
    fresh = await gh.getitem(f"/repos/{repo}/pulls/{other}")
    assert (fresh["mergeable"], fresh["merge_commit_sha"]) == (False, None)


async def test_a_merged_pull_request_names_its_real_merge(github, pushed, gh):
    repo, number = pushed
    test_merge, _ = await _merge_of(gh, repo, number)
    _, after = github.merge_pull(repo, number, merged_by="alice")
    pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
    assert pull["merge_commit_sha"] == after != test_merge["merge_commit_sha"]
    assert github.git(repo).resolve("main") == after
