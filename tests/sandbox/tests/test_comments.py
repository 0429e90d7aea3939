"""Issues and their comments, reactions and labels; issues and pull requests share numbers."""

from __future__ import annotations

import gidgethub
import pytest


@pytest.fixture
def pull(github, repo):
    github.commit(repo, "fix", {"README.md": "hi\n"}, author="carol")
    return github.open_pull(repo, "fix", author="carol")


async def test_issues_and_pull_requests_share_one_sequence(github, repo, gh, pull):
    issue = github.open_issue(repo, "Crash on load", author="erin")
    assert (pull, issue) == (1, 2)
    plain = await gh.getitem(f"/repos/{repo}/issues/{issue}")
    assert "pull_request" not in plain
    assert plain["html_url"].endswith(f"/issues/{issue}")
    assert "pull_request" in await gh.getitem(f"/repos/{repo}/issues/{pull}")


async def test_comments_are_posted_listed_edited_and_deleted(github, repo, gh, pull):
    github.add_comment(repo, pull, "first", "carol", created_at="2024-05-01T10:00:00Z")
    url = f"/repos/{repo}/issues/{pull}/comments"
    posted = await gh.post(url, data={"body": "hello from the bot"})
    assert posted["user"]["login"] == "maintainer-bot[bot]"
    assert posted["user"]["type"] == "Bot"
    assert posted["performed_via_github_app"]["slug"] == "maintainer-bot"
    for i in range(40):
        await gh.post(url, data={"body": f"note {i}"})
    listed = [c async for c in gh.getiter(url)]  # 42 comments: two pages of 30
    assert [c["body"] for c in listed[:2]] == ["first", "hello from the bot"]
    assert len(listed) == 42
    assert listed[0]["created_at"] == "2024-05-01T10:00:00Z"
    assert listed[0]["author_association"] == "NONE"
    edited = await gh.patch(posted["url"], data={"body": "edited"})
    assert edited["body"] == "edited"
    await gh.delete(posted["url"])
    bodies = [c["body"] for c in github.comments(repo, pull)]
    assert "edited" not in bodies and "hello from the bot" not in bodies
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.getitem(posted["url"])
    assert caught.value.status_code == 404


@pytest.mark.parametrize("body", [{}, {"body": ""}, {"body": "x" * 65537}, {"body": 3}])
async def test_comment_bodies_github_refuses(github, repo, gh, pull, body):
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.post(f"/repos/{repo}/issues/{pull}/comments", data=body)
    assert caught.value.status_code == 422
    assert github.comments(repo, pull) == []


async def test_comments_on_an_unknown_issue_are_404(repo, gh):
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.post(f"/repos/{repo}/issues/7/comments", data={"body": "hi"})
    assert caught.value.status_code == 404


async def test_reactions_are_created_once(github, repo, gh, pull):
    comment = github.add_comment(repo, pull, "@bot /style", "bob")
    url = f"/repos/{repo}/issues/comments/{comment['id']}/reactions"
    first = await gh.post(url, data={"content": "eyes"})
    again = await gh.post(url, data={"content": "eyes"})  # 200 and the same reaction
    assert first["id"] == again["id"]
    assert [r["content"] for r in github.reactions(repo, comment["id"])] == ["eyes"]
    statuses = [r.status for r in github.requests if r.path.endswith("/reactions")]
    assert statuses == [201, 200]
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.post(url, data={"content": "party"})
    assert caught.value.status_code == 422
    shown = await gh.getitem(f"/repos/{repo}/issues/comments/{comment['id']}")
    assert shown["reactions"]["eyes"] == 1
    await gh.post(f"/repos/{repo}/issues/{pull}/reactions", data={"content": "rocket"})
    assert (await gh.getitem(f"/repos/{repo}/issues/{pull}"))["reactions"]["rocket"] == 1


async def test_labels_are_added_listed_and_removed(github, repo, gh, pull):
    answer = await gh.post(f"/repos/{repo}/issues/{pull}/labels", data={"labels": ["run-slow"]})
    assert [label["name"] for label in answer] == ["run-slow"]
    await gh.post(f"/repos/{repo}/issues/{pull}/labels", data=["bug", "run-slow"])
    listed = await gh.getitem(f"/repos/{repo}/issues/{pull}/labels")
    assert [label["name"] for label in listed] == ["run-slow", "bug"]
    assert github.labels(repo, pull) == ["run-slow", "bug"]
    await gh.delete(f"/repos/{repo}/issues/{pull}/labels/run-slow")
    assert github.labels(repo, pull) == ["bug"]
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.delete(f"/repos/{repo}/issues/{pull}/labels/run-slow")
    assert caught.value.status_code == 404
    pull_json = await gh.getitem(f"/repos/{repo}/pulls/{pull}")
    assert [label["name"] for label in pull_json["labels"]] == ["bug"]


async def test_closing_and_reopening_through_the_api(github, repo, gh, pull):
    closed = await gh.patch(f"/repos/{repo}/issues/{pull}", data={"state": "closed"})
    assert closed["state"] == "closed"
    assert (await gh.getitem(f"/repos/{repo}/pulls/{pull}"))["merged"] is False
    await gh.patch(f"/repos/{repo}/issues/{pull}", data={"state": "open", "title": "Again"})
    reopened = await gh.getitem(f"/repos/{repo}/pulls/{pull}")
    assert (reopened["state"], reopened["title"]) == ("open", "Again")


async def test_a_merged_pull_request_cannot_be_reopened(github, repo, gh, pull):
    github.merge_pull(repo, pull)
    with pytest.raises(gidgethub.BadRequest) as caught:
        await gh.patch(f"/repos/{repo}/issues/{pull}", data={"state": "open", "title": "New"})
    assert caught.value.status_code == 422
    assert (await gh.getitem(f"/repos/{repo}/issues/{pull}"))["title"] == "A change"
