"""Repository endpoints over real git: statuses, comparisons, commits, contents, refs, roles."""

from __future__ import annotations

import base64

import gidgethub
import pytest

GPT2 = "model_lib/models/gpt2/modeling_gpt2.py"
GPT3 = "model_lib/models/gpt3/modeling_gpt3.py"
LLAMA = "model_lib/models/llama/modeling_llama.py"


async def test_commit_statuses_and_the_combined_state(github, repo, gh):
    sha = github.git(repo).rev("main")
    url = f"/repos/{repo}/statuses/{sha}"
    await gh.post(
        url,
        data={
            "state": "pending",
            "context": "pytest/custom-tests",
            "description": "Slow CI job",
            "target_url": "http://ci/run/1",
        },
    )
    combined = await gh.getitem(f"/repos/{repo}/commits/main/status")
    assert (combined["state"], combined["sha"], combined["total_count"]) == ("pending", sha, 1)
    await gh.post(url, data={"state": "success", "context": "pytest/custom-tests"})
    await gh.post(url, data={"state": "success", "context": "lint"})
    assert (await gh.getitem(f"/repos/{repo}/commits/{sha}/status"))["state"] == "success"
    await gh.post(url, data={"state": "error", "context": "lint"})
    assert (await gh.getitem(f"/repos/{repo}/commits/{sha}/status"))["state"] == "failure"
    listed = [s["state"] async for s in gh.getiter(f"/repos/{repo}/commits/{sha}/statuses")]
    assert listed == ["error", "success", "success", "pending"]  # newest first
    assert github.statuses(repo, sha)[-1]["description"] == "Slow CI job"
    assert github.statuses(repo, sha)[0]["creator"]["login"] == "maintainer-bot[bot]"


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("main", {"state": "pending"}),  # statuses need the full SHA
        ("0" * 40, {"state": "pending"}),
        (None, {"state": "bogus"}),
        (None, {"state": "pending", "description": "x" * 141}),
    ],
)
async def test_statuses_github_refuses(github, repo, gh, target, body):
    target = target or github.git(repo).rev("main")
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.post(f"/repos/{repo}/statuses/{target}", data=body)
    assert caught.value.status_code == 422


async def test_compare_shows_added_renamed_and_removed_files(github, repo, gh):
    before = github.git(repo).rev("main")
    after = github.commit(repo, "main", {"README.md": None, LLAMA: "y = 2\n"}, renames={GPT2: GPT3})
    answer = await gh.getitem(f"/repos/{repo}/compare/{before}...{after}")
    files = {f["filename"]: (f["status"], f.get("previous_filename")) for f in answer["files"]}
    assert files == {
        "README.md": ("removed", None),
        LLAMA: ("added", None),
        GPT3: ("renamed", GPT2),
    }
    assert (answer["status"], answer["ahead_by"], answer["behind_by"]) == ("ahead", 1, 0)
    assert answer["merge_base_commit"]["sha"] == before
    assert [c["sha"] for c in answer["commits"]] == [after]


async def test_compare_status_words(github, repo, gh):
    base = github.git(repo).rev("main")
    side = github.commit(repo, "side", {"s.txt": "s"})
    main = github.commit(repo, "main", {"m.txt": "m"})
    expected = {
        f"{base}...{base}": ("identical", 0, 0),
        f"{main}...{base}": ("behind", 0, 1),
        "main...side": ("diverged", 1, 1),
        f"{base}...side": ("ahead", 1, 0),
    }
    for spec, (status, ahead, behind) in expected.items():
        answer = await gh.getitem(f"/repos/{repo}/compare/{spec}")
        assert (answer["status"], answer["ahead_by"], answer["behind_by"]) == (
            status,
            ahead,
            behind,
        ), spec
    assert side != main
    for spec in ("main...nope", "main..side", "main"):
        with pytest.raises(gidgethub.BadRequest) as caught:
            await gh.getitem(f"/repos/{repo}/compare/{spec}")
        assert caught.value.status_code == 404


async def test_compare_caps_files_and_paginates_commits(github, repo, gh):
    base = github.git(repo).rev("main")
    github.commit(repo, "big", {f"f/{i:03d}.txt": f"{i}\n" for i in range(320)})
    for i in range(4):
        github.commit(repo, "big", {f"g{i}.txt": "g"}, message=f"commit {i}")
    answer = await gh.getitem(f"/repos/{repo}/compare/{base}...big")
    assert len(answer["files"]) == 300  # the caller must notice the cap
    assert (answer["total_commits"], len(answer["commits"])) == (5, 5)
    pages = [
        c
        async for c in gh.getiter(
            f"/repos/{repo}/compare/{base}...big?per_page=2", iterable_key="commits"
        )
    ]
    assert [c["commit"]["message"] for c in pages[1:]] == [f"commit {i}" for i in range(4)]
    second = await gh.getitem(f"/repos/{repo}/compare/{base}...big?per_page=2&page=2")
    assert second["files"] == []  # files come with the first page only


async def test_a_commit_lists_its_files_300_a_page(github, repo, gh):
    sha = github.commit(repo, "main", {f"f/{i:03d}.txt": "x\n" for i in range(301)})
    files = [f async for f in gh.getiter(f"/repos/{repo}/commits/{sha}", iterable_key="files")]
    assert len(files) == 301
    detail = await gh.getitem(f"/repos/{repo}/commits/{sha}")
    assert (len(detail["files"]), detail["stats"]["additions"]) == (300, 301)
    assert detail["commit"]["author"]["name"] == "sandbox-user"
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/commits/{'1' * 40}")
    assert caught.value.status_code == 422
    history = await gh.getitem(f"/repos/{repo}/commits?path=README.md")
    assert [c["commit"]["message"] for c in history] == ["Initial commit"]


async def test_contents_of_files_and_folders(github, repo, gh):
    file = await gh.getitem(f"/repos/{repo}/contents/README.md?ref=main")
    assert (file["type"], file["encoding"], file["size"]) == ("file", "base64", 6)
    assert base64.b64decode(file["content"]) == b"hello\n"
    assert file["sha"] == github.git(repo).entry("main", "README.md").sha
    folder = await gh.getitem(f"/repos/{repo}/contents/model_lib/models")
    assert [(e["name"], e["type"]) for e in folder] == [("gpt2", "dir")]
    root = await gh.getitem(f"/repos/{repo}/contents/")
    assert {e["name"] for e in root} == {"README.md", "model_lib"}
    sha = github.commit(repo, "next", {"README.md": "changed\n"})
    at_sha = await gh.getitem(f"/repos/{repo}/contents/README.md?ref={sha}")
    assert base64.b64decode(at_sha["content"]) == b"changed\n"
    raw = await gh.getitem(f"/repos/{repo}/contents/README.md", accept="application/vnd.github.raw")
    assert raw == "hello\n"
    for path in ("contents/missing.txt", "contents/README.md?ref=nope"):
        with pytest.raises(gidgethub.BadRequest) as caught:
            await gh.getitem(f"/repos/{repo}/{path}")
        assert caught.value.status_code == 404


async def test_trees_refs_and_branches(github, repo, gh):
    tree = await gh.getitem(f"/repos/{repo}/git/trees/main?recursive=1")
    assert {e["path"] for e in tree["tree"] if e["type"] == "blob"} == {"README.md", GPT2}
    flat = await gh.getitem(f"/repos/{repo}/git/trees/main")
    assert {e["path"] for e in flat["tree"]} == {"README.md", "model_lib"}
    sha = github.git(repo).rev("main")
    ref = await gh.getitem(f"/repos/{repo}/git/ref/heads/main")
    assert (ref["ref"], ref["object"]["sha"]) == ("refs/heads/main", sha)
    branch = await gh.getitem(f"/repos/{repo}/branches/main")
    assert (branch["name"], branch["commit"]["sha"]) == ("main", sha)
    for path in ("git/ref/heads/nope", "branches/nope", "git/trees/nope"):
        with pytest.raises(gidgethub.BadRequest) as caught:
            await gh.getitem(f"/repos/{repo}/{path}")
        assert caught.value.status_code == 404


async def test_permission_follows_roles_teams_and_visibility(github, repo, gh):
    github.add_collaborator(repo, "mona", "maintain")
    github.add_team("acme", "admins", ["tess"], permission="admin")
    github.add_user("eve")

    async def permission(login: str, where: str = repo) -> tuple[str, str]:
        answer = await gh.getitem(f"/repos/{where}/collaborators/{login}/permission")
        return answer["permission"], answer["role_name"]

    assert await permission("bob") == ("admin", "admin")
    assert await permission("alice") == ("write", "write")
    assert await permission("mona") == ("write", "maintain")  # GitHub folds maintain into write
    assert await permission("tess") == ("admin", "admin")  # through the team
    assert await permission("eve") == ("read", "read")  # anyone reads a public repository
    github.create_repo("acme/secret", private=True)
    assert await permission("eve", "acme/secret") == ("none", "none")
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(f"/repos/{repo}/collaborators/no-such-user/permission")
    assert caught.value.status_code == 404
