"""The GitHub calls `run-slow` makes, and no others (Prow's "narrow client").

Each method is one question or one write, in the terms the handler and the job reporter use, so
a handler test can stand in for GitHub with a small table.
"""

from __future__ import annotations

from datetime import datetime

import gidgethub

from bot.conversation import Conversation, PullInfo, pull_info


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SlowCiGitHub(Conversation):
    """One repository, seen as slow runs need it."""

    async def commit(self, sha: str) -> tuple[datetime, str]:
        """A commit's committer date (what a comment must be newer than) and its message."""
        answer = await self.gh.getitem(f"/repos/{self.repo}/commits/{sha}")
        commit = answer["commit"]
        return _parse_time(commit["committer"]["date"]), commit.get("message") or ""

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
