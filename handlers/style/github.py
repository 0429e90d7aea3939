"""The GitHub calls `/style` makes, and no others (Prow's "narrow client").

The calls it shares with `run-slow` (the commenter's role, the marked reply, editing it,
reactions) are `SlowCiGitHub`'s, so there is one copy of each; this adds the pull request as
`/style` reads it (the head repository, whether maintainers may push to it, the base SHA) and
its files with their statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.conversation import Conversation


@dataclass(frozen=True)
class StylePull:
    number: int
    state: str
    author: str
    head_sha: str
    head_ref: str
    head_repo: str
    head_clone_url: str
    base_sha: str
    base_repo: str
    base_clone_url: str
    maintainer_can_modify: bool
    comments_url: str
    html_url: str

    @property
    def from_fork(self) -> bool:
        return self.head_repo.casefold() != self.base_repo.casefold()

    @property
    def may_push(self) -> bool:
        """The bot may push to the head branch: the base repository's own, or a fork that
        allows edits from maintainers."""
        return not self.from_fork or self.maintainer_can_modify


def style_pull(pull: dict[str, Any]) -> StylePull:
    head, base = pull["head"], pull["base"]
    head_repo = head.get("repo") or {}
    return StylePull(
        number=pull["number"],
        state=pull["state"],
        author=(pull.get("user") or {}).get("login", ""),
        head_sha=head["sha"],
        head_ref=head["ref"],
        head_repo=head_repo.get("full_name") or "",  # "" once the fork is deleted
        head_clone_url=head_repo.get("clone_url") or "",
        base_sha=base["sha"],
        base_repo=base["repo"]["full_name"],
        base_clone_url=base["repo"]["clone_url"],
        maintainer_can_modify=bool(pull.get("maintainer_can_modify")),
        comments_url=pull.get("comments_url") or pull["issue_url"] + "/comments",
        html_url=pull.get("html_url") or "",
    )


class StyleGitHub(Conversation):
    """One repository, seen as `/style` needs it."""

    async def style_pull(self, number: int) -> StylePull:
        return style_pull(await self.gh.getitem(f"/repos/{self.repo}/pulls/{number}"))

    async def files(self, number: int) -> list[dict[str, Any]]:
        return [
            {"filename": f["filename"], "status": f.get("status", "modified")}
            async for f in self.gh.getiter(f"/repos/{self.repo}/pulls/{number}/files?per_page=100")
        ]


__all__ = ["StyleGitHub", "StylePull", "style_pull"]
