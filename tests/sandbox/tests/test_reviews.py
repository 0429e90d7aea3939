"""Review requests and reviews, with GitHub's rules on who may be asked."""

from __future__ import annotations

import gidgethub
import pytest


@pytest.fixture
def pull(github, repo):
    github.commit(repo, "fix", {"README.md": "hi\n"}, author="carol")
    return github.open_pull(repo, "fix", author="carol")


async def test_only_collaborators_may_be_asked_to_review(github, repo, gh, pull):
    url = f"/repos/{repo}/pulls/{pull}/requested_reviewers"
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.post(url, data={"reviewers": ["alice", "mallory"]})
    assert caught.value.status_code == 422
    assert str(caught.value) == (
        "Reviews may only be requested from collaborators. One or more of the users or teams"
        f" you specified is not a collaborator of the {repo} repository."
    )
    assert github.requested_reviewers(repo, pull) == ([], [])  # all or nothing
    answer = await gh.post(url, data={"reviewers": ["ALICE"]})
    assert [u["login"] for u in answer["requested_reviewers"]] == ["alice"]
    assert [u["login"] for u in (await gh.getitem(url))["users"]] == ["alice"]
    assert github.requested_reviewers(repo, pull) == (["alice"], [])


async def test_the_author_cannot_be_asked(github, repo, gh, pull):
    github.add_collaborator(repo, "carol", "write")
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.post(
            f"/repos/{repo}/pulls/{pull}/requested_reviewers", data={"reviewers": ["carol"]}
        )
    assert caught.value.status_code == 422
    assert "pull request author" in str(caught.value)


async def test_teams_of_the_owner_organisation_may_be_asked(github, repo, gh, pull):
    github.add_team("acme", "core", ["dave"])
    url = f"/repos/{repo}/pulls/{pull}/requested_reviewers"
    await gh.post(url, data={"team_reviewers": ["core"], "reviewers": ["dave"]})
    current = await gh.getitem(url)
    assert [t["slug"] for t in current["teams"]] == ["core"]
    assert [u["login"] for u in current["users"]] == ["dave"]  # a team member has access
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.post(url, data={"team_reviewers": ["nobody"]})
    assert caught.value.status_code == 422
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.post(url, data={})
    assert caught.value.status_code == 422


async def test_a_user_owned_repository_has_no_teams(github, gh):
    github.create_repo("carol/tools", owner_type="User", collaborators={"erin": "write"})
    github.add_team("carol", "core", ["erin"])
    github.commit("carol/tools", "x", {"a": "a"}, author="frank")
    number = github.open_pull("carol/tools", "x", author="frank")
    url = f"/repos/carol/tools/pulls/{number}/requested_reviewers"
    with pytest.raises(gidgethub.BadRequest):
        await gh.post(url, data={"team_reviewers": ["core"]})
    await gh.post(url, data={"reviewers": ["carol"]})  # the owner has access without a role
    assert github.requested_reviewers("carol/tools", number) == (["carol"], [])


async def test_removing_requests_and_reviews_answering_them(github, repo, gh, pull):
    url = f"/repos/{repo}/pulls/{pull}/requested_reviewers"
    await gh.post(url, data={"reviewers": ["alice", "bob"]})
    await gh.delete(url, data={"reviewers": ["bob"]})
    assert github.requested_reviewers(repo, pull) == (["alice"], [])
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.delete(url, data={"team_reviewers": []})
    assert caught.value.status_code == 422
    github.add_review(repo, pull, "alice", "APPROVED", body="LGTM")
    assert github.requested_reviewers(repo, pull) == ([], [])
    reviews = [r async for r in gh.getiter(f"/repos/{repo}/pulls/{pull}/reviews")]
    assert [(r["user"]["login"], r["state"], r["body"]) for r in reviews] == [
        ("alice", "APPROVED", "LGTM")
    ]
    assert reviews[0]["commit_id"] == github.git(repo).rev("fix")
    with pytest.raises(ValueError, match="review state"):
        github.add_review(repo, pull, "alice", "LOVED")
