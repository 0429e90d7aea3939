"""Request reviewers from the owners file when a pull request becomes ready for review.

The decision is `plan.plan_reviewers` (pure); this module reads its inputs through
`ReviewersGitHub` and carries the plan out. The owners file is read from the base branch, never
from the pull request: a pull request must not choose its own reviewers by editing it.
"""

from __future__ import annotations

from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.clients.github import GitHubAPI
from bot.kit.context import Context
from bot.kit.help import Help
from codeowners import OwnersFile, OwnersFileTooLarge
from handlers.reviewers.client import Refused, ReviewersGitHub
from handlers.reviewers.plan import (
    Candidate,
    ReviewerPlan,
    plan_reviewers,
    settings_from,
    targets_branch,
)

router = Router()

HELP = Help(
    name="reviewer requests",
    summary=(
        "Requests the top owners of the changed lines as reviewers, from the review-owners"
        " file on the base branch."
    ),
    trigger="a pull request to the default branch is opened (not as a draft) or marked ready",
    who="automatic; skipped when the author is an owner or reviews are already under way",
)


@router.register("pull_request", action="opened")
@router.register("pull_request", action="ready_for_review")
async def on_ready(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    await request_reviewers(event.data["pull_request"], ReviewersGitHub(gh, ctx.repo), ctx)


async def request_reviewers(pull: dict[str, Any], github: ReviewersGitHub, ctx: Context) -> None:
    """Reads what the plan needs, plans, and requests; once per pull request, ever."""
    if pull.get("draft") or pull.get("state") != "open":
        return
    config = (await ctx.repo_config()).reviewers
    if not config.enabled or not targets_branch(pull, config, ctx.default_branch):
        return
    number = pull["number"]
    key = f"reviewers:{ctx.repo}#{number}"
    if await ctx.already_done(key):
        ctx.log.info("reviewers for #%s were handled before", number)
        return
    base = pull["base"]["ref"]
    try:
        text = await github.owners_file(config.owners_file, base)
        if text is None:
            ctx.log.warning("no %s on %s: no reviewers requested", config.owners_file, base)
            return
        owners = OwnersFile.parse(text, semantics=config.semantics)
    except (OwnersFileTooLarge, UnicodeDecodeError) as exc:
        # A person must fix the file; retrying the delivery cannot.
        ctx.log.warning("%s is unusable: %s; no reviewers requested", config.owners_file, exc)
        await ctx.mark_done(key, f"owners file unusable: {exc}")
        return
    for problem in owners.problems:
        ctx.log.warning("%s:%s: %s", config.owners_file, problem.line, problem.message)
    files = await github.changed_files(number)
    reviews, requested = await github.reviewers_so_far(number)
    load = await github.open_review_load() if config.max_open_reviews else None
    plan = plan_reviewers(
        files,
        pull["user"]["login"],
        reviews,
        requested,
        owners,
        settings_from(config),
        load,
        repo_owner=ctx.repo.split("/", 1)[0],
    )
    if plan.skip_reason is not None:
        ctx.log.info("#%s: no reviewers requested: %s", number, plan.skip_reason)
        await ctx.mark_done(key, plan.skip_reason)
        return
    done, refused = await _request(github, number, plan, ctx.log)
    summary = "; ".join(c.reason for c in done) or "nobody could be requested"
    ctx.log.info(
        "#%s: requested %s", number, summary, extra={"refused": refused, "files": len(files)}
    )
    await ctx.mark_done(key, summary)


async def _request(
    github: ReviewersGitHub, number: int, plan: ReviewerPlan, log: Any
) -> tuple[list[Candidate], list[str]]:
    """Requests the plan's reviewers, falling through to the next owner when one is refused."""
    requested: list[Candidate] = []
    rejected: list[str] = []
    while batch := plan.next_batch(rejected=rejected, requested=[c.owner for c in requested]):
        try:
            await github.request_reviews(number, batch)
            requested.extend(batch)
            continue
        except Refused as exc:
            if len(batch) == 1:
                rejected.append(batch[0].owner)
                log.warning("GitHub refused %s as reviewer: %s", batch[0].owner, exc)
                continue
        # Several at once were refused: ask one by one to find who GitHub will not take.
        for candidate in batch:
            try:
                await github.request_reviews(number, [candidate])
                requested.append(candidate)
            except Refused as exc:
                rejected.append(candidate.owner)
                log.warning("GitHub refused %s as reviewer: %s", candidate.owner, exc)
    return requested, rejected
