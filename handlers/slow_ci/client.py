"""The GitHub calls `run-slow` makes, and no others (Prow's "narrow client").

Each method is one question or one write, in the terms the handler and the job reporter use, so
a handler test can stand in for GitHub with a small table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import gidgethub

from bot.kit.conversation import Conversation, PullInfo, pull_info
from handlers.slow_ci.plan import STATUS_CONTEXT, MergeCommit


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SlowCiGitHub(Conversation):
    """One repository, seen as slow runs need it."""

    async def commit_message(self, sha: str) -> str:
        """The message of a commit, where the label variant reads its model names. Its dates
        are the author's to write, so no decision reads them."""
        answer = await self.gh.getitem(f"/repos/{self.repo}/commits/{sha}")
        return answer["commit"].get("message") or ""

    async def test_merge(self, number: int) -> MergeCommit | None:
        """GitHub's test merge of the pull request, or None where there is none (not computed,
        conflicts, merged, or gone): a time GitHub wrote after the head's last push, for when
        the bot has no record of that push."""
        pull = await self.gh.getitem(f"/repos/{self.repo}/pulls/{number}")
        sha = pull.get("merge_commit_sha")
        if not isinstance(sha, str) or pull.get("merged") or pull.get("state") != "open":
            return None
        try:
            answer = await self.gh.getitem(f"/repos/{self.repo}/commits/{sha}")
        except gidgethub.BadRequest as exc:
            if exc.status_code in (404, 422):
                return None
            raise
        committer = answer["commit"]["committer"]
        return MergeCommit(
            sha=answer["sha"],
            parents=tuple(parent["sha"] for parent in answer.get("parents") or ()),
            committer=committer.get("name") or "",
            committed_at=_parse_time(committer["date"]),
            ready=pull.get("mergeable") is True,
        )

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

    async def is_file(self, path: str, ref: str) -> bool:
        """Whether `path` is a file at `ref` (a commit SHA)."""
        try:
            answer = await self.gh.getitem(
                f"/repos/{self.repo}/contents/{{+path}}{{?ref}}",
                url_vars={"path": path, "ref": ref},
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return False
            raise
        return isinstance(answer, dict) and answer.get("type") == "file"

    async def commit_parents(self, sha: str) -> tuple[str, ...] | None:
        """A commit's parents, or None where GitHub does not have the commit (a merge the
        runner made itself)."""
        try:
            answer = await self.gh.getitem(f"/repos/{self.repo}/commits/{sha}")
        except gidgethub.BadRequest as exc:
            if exc.status_code in (404, 422):
                return None
            raise
        return tuple(parent["sha"] for parent in answer.get("parents") or ())

    async def branch_head(self, branch: str) -> str | None:
        """The branch's head now, or None where there is no such branch."""
        try:
            answer = await self.gh.getitem(
                f"/repos/{self.repo}/branches/{{branch}}", url_vars={"branch": branch}
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return None
            raise
        return str(answer["commit"]["sha"])

    async def set_status(self, sha: str, state: str, description: str, target_url: str) -> None:
        data = {"state": state, "context": STATUS_CONTEXT, "description": description}
        if target_url.startswith(("http://", "https://")):
            data["target_url"] = target_url
        await self.gh.post(f"/repos/{self.repo}/statuses/{sha}", data=data)

    async def find_check_run(self, sha: str, name: str, external_id: str) -> int | None:
        """The check run a report created before its id was stored (a crash in between), so a
        run gets one check run, found again rather than made twice."""
        async for check in self.gh.getiter(
            f"/repos/{self.repo}/commits/{sha}/check-runs{{?check_name,filter,per_page}}",
            url_vars={"check_name": name, "filter": "all", "per_page": "100"},
            iterable_key="check_runs",
        ):
            if check.get("name") == name and check.get("external_id") == external_id:
                return int(check["id"])
        return None

    async def create_check_run(self, body: dict[str, Any]) -> int:
        answer = await self.gh.post(f"/repos/{self.repo}/check-runs", data=body)
        return int(answer["id"])

    async def update_check_run(self, check_run_id: int, body: dict[str, Any]) -> None:
        await self.gh.patch(f"/repos/{self.repo}/check-runs/{check_run_id}", data=body)


__all__ = ["PullInfo", "SlowCiGitHub", "pull_info"]
