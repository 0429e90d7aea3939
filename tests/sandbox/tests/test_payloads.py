"""Webhook payloads built from the sandbox's state, checked against GitHub's real deliveries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ZERO = "0" * 40
PAYLOADS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "payloads"
needs_real_payloads = pytest.mark.skipif(
    not PAYLOADS.is_dir(), reason=f"real payloads not found at {PAYLOADS} (a clone without shared/)"
)


@pytest.fixture
def pull(github, repo):
    github.commit(repo, "fix", {"README.md": "hi\n"}, author="carol")
    return github.open_pull(repo, "fix", author="carol")


def _keys(payload: dict, *path: str) -> set[str]:
    for key in path:
        payload = payload[key]
    return set(payload)


@needs_real_payloads
@pytest.mark.parametrize(
    ("real", "parts"),
    [
        (
            "pull_request.opened",
            [
                (),
                ("pull_request",),
                ("pull_request", "head"),
                ("pull_request", "base", "repo"),
                ("sender",),
            ],
        ),
        ("issue_comment.created", [(), ("issue",), ("comment",), ("repository",)]),
        ("push.branch", [(), ("repository",), ("repository", "owner"), ("head_commit",)]),
    ],
)
def test_payloads_carry_every_field_of_githubs_own(github, repo, pull, real, parts):
    theirs = json.loads((PAYLOADS / f"{real}.json").read_text())
    main = github.git(repo).rev("main")
    ours = {
        "pull_request.opened": lambda: github.pull_request_payload(repo, pull, "opened"),
        "issue_comment.created": lambda: github.issue_comment_payload(repo, pull, "hi", "bob"),
        "push.branch": lambda: github.push_payload(repo, "refs/heads/main", ZERO, main),
    }[real]()
    for part in parts:
        assert _keys(theirs, *part) <= _keys(ours, *part), part


def test_a_pull_request_payload_describes_the_pull_request_now(github, repo, pull):
    payload = github.pull_request_payload(repo, pull, "opened")
    assert (payload["action"], payload["number"]) == ("opened", pull)
    assert payload["installation"]["id"] == 1
    assert payload["organization"]["login"] == "acme"
    assert payload["sender"]["login"] == "carol"
    assert payload["repository"]["full_name"] == repo
    assert payload["repository"]["default_branch"] == "main"
    assert payload["repository"]["clone_url"] == f"{github.url}/{repo}.git"
    assert payload["pull_request"]["head"]["sha"] == github.git(repo).rev("fix")
    assert payload["pull_request"]["author_association"] == "NONE"


def test_action_specific_fields_and_their_checks(github, repo, pull):
    with pytest.raises(ValueError, match="not on"):
        github.pull_request_payload(repo, pull, "labeled", label="run-slow")
    github.add_label(repo, pull, "run-slow")
    labeled = github.pull_request_payload(repo, pull, "labeled", label="run-slow", sender="bob")
    assert (labeled["label"]["name"], labeled["sender"]["login"]) == ("run-slow", "bob")
    before = github.git(repo).rev("fix")
    after = github.commit(repo, "fix", {"README.md": "again\n"}, author="carol")
    synced = github.pull_request_payload(repo, pull, "synchronize", before=before)
    assert (synced["before"], synced["after"]) == (before, after)
    with pytest.raises(ValueError, match="synchronize"):
        github.pull_request_payload(repo, pull, "synchronize")
    with pytest.raises(ValueError, match="not a pull_request action"):
        github.pull_request_payload(repo, pull, "exploded")


def test_an_issue_comment_payload_creates_its_comment(github, repo, pull):
    issue = github.open_issue(repo, "Question")
    on_pull = github.issue_comment_payload(
        repo, pull, "run-slow: bert", "bob", created_at="2024-06-01T12:00:00Z"
    )
    on_issue = github.issue_comment_payload(repo, issue, "thanks", "alice")
    assert on_pull["issue"]["pull_request"]["url"].endswith(f"/pulls/{pull}")
    assert "pull_request" not in on_issue["issue"]
    assert on_pull["comment"]["created_at"] == "2024-06-01T12:00:00Z"
    assert on_pull["comment"]["author_association"] == "COLLABORATOR"
    assert [c["id"] for c in github.comments(repo, pull)] == [on_pull["comment"]["id"]]


def test_push_payloads_list_what_git_holds(github, repo):
    git = github.git(repo)
    before = git.rev("main")
    github.commit(repo, "main", {"a.py": "a\n"}, message="Add a", author="carol")
    after = github.rename(repo, "main", "a.py", "b.py", author="carol")
    payload = github.push_payload(repo, "refs/heads/main", before, after)
    assert (payload["created"], payload["deleted"], payload["forced"]) == (False, False, False)
    assert [c["message"] for c in payload["commits"]] == ["Add a", "Rename a.py to b.py"]
    assert payload["commits"][0]["added"] == ["a.py"]
    # a push delivery lists a rename as a removal and an addition
    assert (payload["commits"][1]["added"], payload["commits"][1]["removed"]) == (
        ["b.py"],
        ["a.py"],
    )
    assert payload["head_commit"]["id"] == after
    assert payload["head_commit"]["author"]["username"] == "carol"
    assert payload["pusher"]["name"] == "sandbox-user"

    created = github.commit(repo, "topic", {"t.txt": "t"}, message="Topic")
    new_branch = github.push_payload(repo, "refs/heads/topic", ZERO, created)
    assert new_branch["created"] and [c["message"] for c in new_branch["commits"]] == ["Topic"]
    assert github.delete_branch(repo, "topic") == created
    deleted = github.push_payload(repo, "refs/heads/topic", created, ZERO)
    assert (deleted["deleted"], deleted["commits"], deleted["head_commit"]) == (True, [], None)
    with pytest.raises(ValueError, match="full SHA"):
        github.push_payload(repo, "refs/heads/main", before[:7], after)
    with pytest.raises(ValueError, match="full ref"):
        github.push_payload(repo, "main", before, after)


def test_a_forced_push_and_its_payload(github, repo):
    base = github.git(repo).rev("main")
    old = github.commit(repo, "main", {"old.txt": "old\n"})
    rewritten = github.commit(repo, "rewrite", {"new.txt": "new\n"}, base=base)
    before, after = github.force_push(repo, "main", rewritten)
    assert (before, after) == (old, rewritten)
    payload = github.push_payload(repo, "refs/heads/main", before, after, forced=True)
    assert payload["forced"]
    assert [c["added"] for c in payload["commits"]] == [["new.txt"]]
