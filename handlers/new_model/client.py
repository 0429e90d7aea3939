"""The GitHub calls new-model alerts make, and no others (Prow's "narrow client").

Each method answers in the planner's terms (`FileChange`, `MergedPull`), so the handler reads as
"ask, plan, act" and a handler test can stand in for GitHub with a small table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.clients.github import GitHubAPI
from handlers.new_model.plan import FileChange, MergedPull

#: The compare API lists at most this many files; past it, each commit's files are listed.
COMPARE_FILE_LIMIT = 300


@dataclass(frozen=True)
class Comparison:
    """What changed between a push's endpoints, as far as one compare answer tells."""

    files: list[FileChange]
    complete: bool  # False: GitHub cut the file list short; ask commit by commit instead
    merge_base: str | None


class NewModelGitHub:
    """One repository's commits, seen as new-model alerts need them."""

    def __init__(self, gh: GitHubAPI, repo: str) -> None:
        self.gh = gh
        self.repo = repo

    async def compare(self, before: str, after: str) -> Comparison:
        answer = await self.gh.getitem(f"/repos/{self.repo}/compare/{before}...{after}")
        files = answer.get("files") or []
        return Comparison(
            files=_changes(files),
            complete=len(files) < COMPARE_FILE_LIMIT,
            merge_base=(answer.get("merge_base_commit") or {}).get("sha"),
        )

    async def commits_between(self, before: str, after: str) -> list[str]:
        """The SHAs from `before` (excluded) to `after`, oldest first."""
        return [
            commit["sha"]
            async for commit in self.gh.getiter(
                f"/repos/{self.repo}/compare/{before}...{after}", iterable_key="commits"
            )
        ]

    async def commit_files(self, sha: str) -> list[FileChange]:
        return _changes(
            [
                item
                async for item in self.gh.getiter(
                    f"/repos/{self.repo}/commits/{sha}", iterable_key="files"
                )
            ]
        )

    async def pull_for_commit(self, sha: str) -> MergedPull | None:
        """The merged pull request that brought the commit in (else any that holds it)."""
        pulls = await self.gh.getitem(f"/repos/{self.repo}/commits/{sha}/pulls")
        chosen = next((p for p in pulls if p.get("merged_at")), pulls[0] if pulls else None)
        if chosen is None:
            return None
        return MergedPull(
            number=chosen["number"],
            title=chosen.get("title") or "",
            author=(chosen.get("user") or {}).get("login", ""),
            url=chosen.get("html_url", ""),
        )


def _changes(files: Iterable[Mapping[str, Any]]) -> list[FileChange]:
    return [
        FileChange(f["filename"], f.get("status", "modified"), f.get("previous_filename"))
        for f in files
    ]
