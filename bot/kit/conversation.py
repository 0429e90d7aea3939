"""What every command feature asks and writes on a pull request's conversation: who the person
is to the repository, one reply per key, the result comment it edits, reactions.

The features' narrow clients (`run-slow`'s, `/style`'s) build on this one, so two features never
depend on each other and a reply is posted once, the same way, everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gidgethub

from bot.clients.github import GitHubAPI
from bot.kit.comments import Author, find_marked_comment, marker

if TYPE_CHECKING:
    from bot.jobs.system import JobSystem

#: GitHub's repository roles, weakest first; `role_name` answers with one of them.
ROLES = ("none", "read", "triage", "write", "maintain", "admin")


#: What a command that needs the job system answers where no job runs (a one-shot `bot handle`,
#: as in a GitHub Actions step): a run accepted there would show `pending` for ever.
NO_JOBS_REPLY = (
    "This bot runs here without its server (`bot serve`), so it cannot run jobs: nothing was"
    " started. Ask again where the bot's server runs."
)
#: Without a server only GitHub Actions runs jobs: PR code never runs beside the bot's token.
NO_RUNNER_REPLY = (
    "This bot runs here without its server (`bot serve`), where jobs run only on GitHub Actions;"
    " {hint} Nothing was started."
)


def by_a_bot(data: dict[str, Any]) -> bool:
    """An event a bot caused (its sender, or the comment's author): never a person's request,
    so the bot never answers itself or another App into a loop."""
    sender = data.get("sender") or {}
    author = (data.get("comment") or {}).get("user") or {}
    return "Bot" in (sender.get("type"), author.get("type")) or str(
        sender.get("login", "")
    ).endswith("[bot]")


def job_refusal(jobs: JobSystem, runner: str, hint: str) -> str | None:
    """Why a command's job cannot be queued here, or None when it can; `hint` says what would
    make it work (a setting, or the server)."""
    if not jobs.started:
        return NO_JOBS_REPLY
    if runner not in jobs.runners:
        return NO_RUNNER_REPLY.format(hint=hint)
    # A runner that cannot start PR code here (no confinement) says why, before anything queues.
    refusal = getattr(jobs.runners[runner], "refusal", None)
    return refusal() if callable(refusal) else None


def at_least(role: str, wanted: str) -> bool:
    return ROLES.index(role if role in ROLES else "none") >= ROLES.index(wanted)


@dataclass(frozen=True)
class PullInfo:
    """A pull request as the command features need it (GitHub's object, trimmed)."""

    number: int
    state: str
    draft: bool
    title: str
    html_url: str
    author: str
    head_sha: str
    head_ref: str
    head_repo: str  # "" once a fork is deleted
    head_clone_url: str  # "" likewise
    base_sha: str
    base_ref: str
    base_repo: str
    base_clone_url: str
    maintainer_can_modify: bool
    comments_url: str

    @property
    def from_fork(self) -> bool:
        return self.head_repo.casefold() != self.base_repo.casefold()

    @property
    def may_push(self) -> bool:
        """The bot may push to the head branch: the base repository's own, or a fork that
        allows edits from maintainers."""
        return not self.from_fork or self.maintainer_can_modify


def pull_info(pull: dict[str, Any]) -> PullInfo:
    head, base = pull["head"], pull["base"]
    head_repo = head.get("repo") or {}
    return PullInfo(
        number=pull["number"],
        state=pull["state"],
        draft=bool(pull.get("draft")),
        title=pull.get("title") or "",
        html_url=pull.get("html_url") or "",
        author=(pull.get("user") or {}).get("login", ""),
        head_sha=head["sha"],
        head_ref=head["ref"],
        head_repo=head_repo.get("full_name") or "",
        head_clone_url=head_repo.get("clone_url") or "",
        base_sha=base.get("sha", ""),
        base_ref=base["ref"],
        base_repo=base["repo"]["full_name"],
        base_clone_url=base["repo"]["clone_url"],
        maintainer_can_modify=bool(pull.get("maintainer_can_modify")),
        comments_url=pull.get("comments_url") or pull["issue_url"] + "/comments",
    )


class Conversation:
    """One repository's pull-request conversations, as a command feature needs them."""

    def __init__(self, gh: GitHubAPI, repo: str, *, author: Author | None = None) -> None:
        self.gh = gh
        self.repo = repo
        #: Whose comments are the bot's (`bot.kit.comments`); None: asked of GitHub when needed.
        self.author = author

    async def role(self, login: str) -> str:
        """The user's role on the repository (`none` for a stranger)."""
        try:
            answer = await self.gh.getitem(
                f"/repos/{self.repo}/collaborators/{{login}}/permission", url_vars={"login": login}
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return "none"
            raise
        role = answer.get("role_name") or answer.get("permission") or "none"
        return role if role in ROLES else "none"

    async def pull(self, number: int) -> PullInfo:
        return pull_info(await self.gh.getitem(f"/repos/{self.repo}/pulls/{number}"))

    async def changed_files(self, number: int) -> list[dict[str, Any]]:
        """The PR's files with their status (added, modified, renamed, removed)."""
        return [
            {"filename": f["filename"], "status": f.get("status", "modified")}
            async for f in self.gh.getiter(f"/repos/{self.repo}/pulls/{number}/files?per_page=100")
        ]

    async def comment(self, comments_url: str, key: str, body: str) -> int:
        """Posts a comment once: a replay finds the earlier one by its marker, among the bot's
        own comments only."""
        found = await find_marked_comment(self.gh, comments_url, key, author=self.author)
        if found is not None:
            return int(found["id"])
        posted = await self.gh.post(comments_url, data={"body": body})
        return int(posted["id"])

    async def upsert_comment(self, comments_url: str, key: str, body: str) -> int:
        """The marked comment with this body: posted, or edited where one is there already
        (a report whose rows predate the comment's id being stored, a restart). Only a comment
        the bot wrote is ever edited: a marker in someone else's is a copy."""
        found = await find_marked_comment(self.gh, comments_url, key, author=self.author)
        if found is None:
            posted = await self.gh.post(comments_url, data={"body": body})
            return int(posted["id"])
        if found.get("body") != body:
            await self.edit_comment(int(found["id"]), body)
        return int(found["id"])

    async def reply(self, comments_url: str, key: str, text: str) -> str:
        """A one-line answer (a refusal, a reason), once per key; returns its first line."""
        await self.comment(comments_url, key, f"{text}\n\n{marker(key)}")
        return text.splitlines()[0]

    async def edit_comment(self, comment_id: int, body: str) -> None:
        await self.gh.patch(f"/repos/{self.repo}/issues/comments/{comment_id}", data={"body": body})

    async def react(self, comment_id: int, content: str) -> None:
        await self.gh.post(
            f"/repos/{self.repo}/issues/comments/{comment_id}/reactions",
            data={"content": content},
        )
