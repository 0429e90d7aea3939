"""The GitHub calls scheduled runs make, and no others (Prow's "narrow client").

Each method answers in the feature's terms (a branch head, the test folders of a commit, the
first-parent chain between two runs, the pull request that brought a commit in), so the handler
reads as "ask, decide, act" and a handler test can stand in for GitHub with a small table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gidgethub

from bot.clients.github import GitHubAPI

#: The longest first-parent chain a bisect walks: a range longer than this (weeks of merges) is
#: not bisected, and the verdict says why, rather than paging through the whole history.
MAX_CHAIN = 500


@dataclass(frozen=True)
class Repository:
    full_name: str
    default_branch: str
    clone_url: str
    html_url: str
    private: bool


@dataclass(frozen=True)
class CommitPull:
    """Who to tell about a commit: the pull request that brought it in, its author and merger."""

    sha: str
    url: str
    author: str
    number: int | None = None
    pull_url: str = ""
    title: str = ""
    merged_by: str = ""


class ScheduledCiGitHub:
    def __init__(self, gh: GitHubAPI, repo: str) -> None:
        self.gh, self.repo = gh, repo

    async def repository(self) -> Repository:
        data = await self.gh.getitem(f"/repos/{self.repo}")
        return Repository(
            full_name=data["full_name"],
            default_branch=data.get("default_branch") or "main",
            clone_url=data["clone_url"],
            html_url=data.get("html_url", ""),
            private=data.get("private") is not False,
        )

    async def branch_head(self, branch: str) -> str:
        data = await self.gh.getitem(f"/repos/{self.repo}/branches/{branch}")
        return data["commit"]["sha"]

    async def test_folders(self, sha: str) -> list[str]:
        """Every folder two levels under `tests/` at the commit (`models/bert`,
        `quantization/bnb`): what a schedule's globs are matched against."""
        data = await self.gh.getitem(f"/repos/{self.repo}/git/trees/{sha}?recursive=1")
        folders = set()
        for entry in data.get("tree") or ():
            path = entry.get("path") or ""
            parts = path.split("/")
            if entry.get("type") == "tree" and len(parts) == 3 and parts[0] == "tests":
                folders.add(f"{parts[1]}/{parts[2]}")
        return sorted(folders)

    async def first_parents(self, good: str, bad: str) -> list[str] | None:
        """The first-parent chain from `good` (excluded) to `bad` (included), oldest first; None
        when `good` is not on it within `MAX_CHAIN` commits (a force-push, a long range)."""
        chain: list[str] = []
        sha = bad
        while sha != good:
            if len(chain) >= MAX_CHAIN:
                return None
            chain.append(sha)
            try:
                commit = await self.gh.getitem(f"/repos/{self.repo}/commits/{sha}")
            except gidgethub.BadRequest:
                return None
            parents = commit.get("parents") or []
            if not parents:
                return None
            sha = parents[0]["sha"]
        chain.reverse()
        return chain

    async def commit_pull(self, sha: str) -> CommitPull:
        """The commit's pull request (the merged one, else any), its author and who merged it;
        without one, the commit's own author."""
        commit: dict[str, Any] = await self.gh.getitem(f"/repos/{self.repo}/commits/{sha}")
        author = (commit.get("author") or {}).get("login") or (
            (commit.get("commit") or {}).get("author") or {}
        ).get("name", "")
        found = CommitPull(sha=sha, url=commit.get("html_url", ""), author=author)
        pulls = await self.gh.getitem(f"/repos/{self.repo}/commits/{sha}/pulls")
        chosen = next((p for p in pulls if p.get("merged_at")), pulls[0] if pulls else None)
        if chosen is None:
            return found
        pull = await self.gh.getitem(f"/repos/{self.repo}/pulls/{chosen['number']}")
        return CommitPull(
            sha=sha,
            url=found.url,
            author=(chosen.get("user") or {}).get("login") or author,
            number=chosen["number"],
            pull_url=chosen.get("html_url", ""),
            title=chosen.get("title") or "",
            merged_by=(pull.get("merged_by") or {}).get("login", ""),
        )
