"""The GitHub calls reviewer requests make, and no others (Prow's "narrow client").

Each method is one question or one write, answered in the planner's terms, so the handler reads
as "ask, plan, act" and a handler test can stand in for GitHub with a small table.
"""

from __future__ import annotations

from collections.abc import Sequence

import gidgethub

from bot.clients.github import GitHubAPI
from bot.clients.repo_config import fetch_text
from handlers.reviewers.plan import Candidate, ChangedFile, review_request_body


class Refused(Exception):
    """GitHub would not request these reviewers (422: not a collaborator, say)."""


class ReviewersGitHub:
    """One repository's pull requests, seen as reviewer selection needs them."""

    def __init__(self, gh: GitHubAPI, repo: str) -> None:
        self.gh = gh
        self.repo = repo

    async def owners_file(self, path: str, ref: str) -> str | None:
        """The owners file's text at `ref`; None when the branch has none."""
        return await fetch_text(self.gh, self.repo, path, ref)

    async def changed_files(self, number: int) -> list[ChangedFile]:
        return [
            ChangedFile(f["filename"], int(f.get("changes", 0)))
            async for f in self.gh.getiter(f"{self._pull(number)}/files?per_page=100")
        ]

    async def reviewers_so_far(self, number: int) -> tuple[list[str], list[str]]:
        """Who reviewed (logins), and who is requested now (logins and team slugs)."""
        reviews = [
            r["user"]["login"]
            async for r in self.gh.getiter(f"{self._pull(number)}/reviews")
            if r.get("user")
        ]
        current = await self.gh.getitem(f"{self._pull(number)}/requested_reviewers")
        requested = [u["login"] for u in current.get("users", ())]
        requested += [t["slug"] for t in current.get("teams", ())]
        return reviews, requested

    async def open_review_load(self) -> dict[str, int]:
        """Open review requests per login (and per `org/team`) across the open pull requests."""
        org = self.repo.split("/", 1)[0]
        load: dict[str, int] = {}
        async for pull in self.gh.getiter(f"/repos/{self.repo}/pulls?state=open&per_page=100"):
            for user in pull.get("requested_reviewers") or ():
                load[user["login"]] = load.get(user["login"], 0) + 1
            for team in pull.get("requested_teams") or ():
                key = f"{org}/{team['slug']}"
                load[key] = load.get(key, 0) + 1
        return load

    async def request_reviews(self, number: int, batch: Sequence[Candidate]) -> None:
        """Requests the whole batch, or raises `Refused` when GitHub takes none of it."""
        url = f"{self._pull(number)}/requested_reviewers"
        try:
            await self.gh.post(url, data=review_request_body(batch))
        except gidgethub.BadRequest as exc:
            if exc.status_code != 422:
                raise
            raise Refused(str(exc)) from exc

    def _pull(self, number: int) -> str:
        return f"/repos/{self.repo}/pulls/{number}"
