"""Approval of a pull request's later pushes, while a label a maintainer added stays on it.

A label (`run-slow`, `run-benchmark`) approves the head it was added on. A later push runs the
pull request's code again only when every push since an approved head was made by someone who
may approve runs: otherwise an outsider pushes onto a labelled pull request and a maintainer's
push on top would run the outsider's code. The pushes are the bot's own records of GitHub's
signed deliveries (`before` and `after`), never the commits' dates, which the author writes.
The pure rules come first; `label_push_approval` reads the records and asks who may approve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.kit.context import Context

__all__ = [
    "Push",
    "PushApproval",
    "label_push_approval",
    "push_approval",
    "pushes_since_approval",
]


class Push(Protocol):
    """A delivery that told the bot a pull request's head became `sha` (the store's record).

    Everything but `received_at` is what GitHub signed; `received_at` is the bot's own clock
    when the delivery arrived. Neither is written by the pull request's author.
    """

    @property
    def sha(self) -> str: ...
    @property
    def received_at(self) -> float: ...
    @property
    def sender(self) -> str: ...
    @property
    def before(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class PushApproval:
    """Whether a push to a pull request with a run label runs: `approved`, `refused`
    (with the pushers since the last approved head who may not approve, in push order) or
    `unknown` (the bot's records do not reach back to an approved head)."""

    verdict: Literal["approved", "refused", "unknown"]
    refused: tuple[str, ...] = ()


def pushes_since_approval(
    head_sha: str, pushes: Sequence[Push], approved: Collection[str]
) -> tuple[Push, ...] | None:
    """The pushes from the last approved head to `head_sha`, newest first; None when the
    records do not lead back to an approved head.

    Each push is followed to the head it replaced (`before`, as GitHub signed it), not by
    arrival order, which GitHub does not promise. `approved` holds the heads a maintainer
    approved (a run, the label, a comment): a SHA names its content, so a push back to an
    approved head is approved content again. An `opened` or `reopened` record ends the chain:
    what came before it is not known.
    """
    last_push_to: dict[str, Push] = {}
    for push in pushes:
        last_push_to[push.sha] = push
    chain: list[Push] = []
    sha = head_sha
    while sha not in approved:
        push = last_push_to.pop(sha, None)  # popped: a cycle of pushes ends here
        if push is None:
            return None
        chain.append(push)
        if push.before is None:
            return None
        sha = push.before
    return tuple(chain)


def push_approval(chain: Sequence[Push] | None, may_approve: Collection[str]) -> PushApproval:
    """A push runs only when every push since the last approved head was made by someone who
    may approve runs (`may_approve`, logins): a maintainer's push on top of an outsider's
    refused one would otherwise run the outsider's code."""
    if chain is None:
        return PushApproval("unknown")
    allowed = {login.casefold() for login in may_approve}
    refused = [push.sender for push in reversed(chain) if push.sender.casefold() not in allowed]
    if refused:
        return PushApproval("refused", tuple(dict.fromkeys(refused)))
    return PushApproval("approved")


async def label_push_approval(
    ctx: Context,
    *,
    number: int,
    head_sha: str,
    approved_key: Callable[[str], str],
    run_heads: Iterable[str],
    may_approve: Callable[[str], Awaitable[bool]],
) -> PushApproval:
    """Whether a push to a labelled pull request runs: who pushed since the last head a
    maintainer approved (the heads recorded under `approved_key(sha)` and the heads of the
    feature's runs, `run_heads`), each of whom `may_approve` must allow."""
    pushes = await ctx.push_records(number)
    shas = {sha for push in pushes for sha in (push.sha, push.before) if sha}
    keys = {approved_key(sha): sha for sha in shas}
    done = await ctx.done_of(keys)
    approved = {keys[key] for key in done} | set(run_heads)
    chain = pushes_since_approval(head_sha, pushes, approved)
    senders = list(dict.fromkeys(push.sender for push in chain or ()))
    allowed = await asyncio.gather(*(may_approve(login) for login in senders))
    return push_approval(chain, [login for login, ok in zip(senders, allowed, strict=True) if ok])
