"""The GitHub calls `run-slow` makes, and no others (Prow's "narrow client").

Each method is one question or one write, in the terms the handler and the job reporter use, so
a handler test can stand in for GitHub with a small table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import gidgethub

from bot.conversation import Conversation


@dataclass(frozen=True)
class PullInfo:
    number: int
    state: str
    draft: bool
    title: str
    html_url: str
    author: str
    head_sha: str
    head_ref: str
    head_clone_url: str
    base_ref: str
    base_clone_url: str
    comments_url: str


def pull_info(pull: dict[str, Any]) -> PullInfo:
    head, base = pull["head"], pull["base"]
    head_repo = head.get("repo") or base["repo"]  # a deleted fork: its head is still fetchable
    return PullInfo(
        number=pull["number"],
        state=pull["state"],
        draft=bool(pull.get("draft")),
        title=pull.get("title") or "",
        html_url=pull.get("html_url") or "",
        author=(pull.get("user") or {}).get("login", ""),
        head_sha=head["sha"],
        head_ref=head["ref"],
        head_clone_url=head_repo["clone_url"],
        base_ref=base["ref"],
        base_clone_url=base["repo"]["clone_url"],
        comments_url=pull.get("comments_url") or pull["issue_url"] + "/comments",
    )


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SlowCiGitHub(Conversation):
    """One repository, seen as slow runs need it."""

    async def pull(self, number: int) -> PullInfo:
        return pull_info(await self.gh.getitem(f"/repos/{self.repo}/pulls/{number}"))

    async def commit(self, sha: str) -> tuple[datetime, str]:
        """A commit's committer date (what a comment must be newer than) and its message."""
        answer = await self.gh.getitem(f"/repos/{self.repo}/commits/{sha}")
        commit = answer["commit"]
        return _parse_time(commit["committer"]["date"]), commit.get("message") or ""

    async def changed_files(self, number: int) -> list[dict[str, Any]]:
        return [
            {"filename": f["filename"], "status": f.get("status", "modified")}
            async for f in self.gh.getiter(f"/repos/{self.repo}/pulls/{number}/files?per_page=100")
        ]

    async def is_folder(self, path: str, ref: str) -> bool:
        """Whether `path` is a folder at `ref` (the pinned SHA, never a branch name)."""
        try:
            answer = await self.gh.getitem(
                f"/repos/{self.repo}/contents/{{+path}}{{?ref}}",
                url_vars={"path": path, "ref": ref},
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return False
            raise
        return isinstance(answer, list)

    async def set_status(self, sha: str, state: str, description: str, target_url: str) -> None:
        data = {"state": state, "context": "pytest/custom-tests", "description": description}
        if target_url.startswith(("http://", "https://")):
            data["target_url"] = target_url
        await self.gh.post(f"/repos/{self.repo}/statuses/{sha}", data=data)


__all__ = ["PullInfo", "SlowCiGitHub", "pull_info"]
