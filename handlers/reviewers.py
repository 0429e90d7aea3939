"""Request reviewers from the owners file when a pull request becomes ready for review.

The decision is `handlers.reviewers_plan.plan_reviewers` (pure); this module only gathers its
inputs from GitHub and carries the plan out. The owners file is read from the base branch,
never from the pull request: a pull request must not choose its own reviewers by editing it.
"""

from __future__ import annotations

from typing import Any

import gidgethub
from gidgethub.routing import Router
from gidgethub.sansio import Event

from bot.config import ReviewersConfig
from bot.context import Context
from bot.github import GitHubAPI
from bot.help import Help
from bot.repo_config import fetch_text
from codeowners import OwnersFile, OwnersFileTooLarge
from handlers.reviewers_plan import (
    Candidate,
    ChangedFile,
    ReviewerPlan,
    ReviewerSettings,
    plan_reviewers,
    review_request_body,
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


def settings_from(config: ReviewersConfig, *, bots: tuple[str, ...] = ()) -> ReviewerSettings:
    return ReviewerSettings(
        count=config.count,
        unavailable=config.unavailable,
        bots=bots,
        max_open_reviews=config.max_open_reviews or None,
    )


def targets_branch(pull: dict[str, Any], config: ReviewersConfig, default_branch: str) -> bool:
    branches = config.branches or (default_branch,)
    return pull["base"]["ref"] in branches


async def open_review_load(gh: GitHubAPI, repo: str) -> dict[str, int]:
    """Open review requests per login (and per `org/team`) across the repository's open PRs."""
    org = repo.split("/", 1)[0]
    load: dict[str, int] = {}
    async for pull in gh.getiter(f"/repos/{repo}/pulls?state=open&per_page=100"):
        for user in pull.get("requested_reviewers") or ():
            load[user["login"]] = load.get(user["login"], 0) + 1
        for team in pull.get("requested_teams") or ():
            key = f"{org}/{team['slug']}"
            load[key] = load.get(key, 0) + 1
    return load


async def request_reviews(
    gh: GitHubAPI, url: str, plan: ReviewerPlan, log: Any
) -> tuple[list[Candidate], list[str]]:
    """Requests the plan's reviewers, falling through to the next owner when one is refused."""
    requested: list[Candidate] = []
    rejected: list[str] = []
    while batch := plan.next_batch(rejected=rejected, requested=[c.owner for c in requested]):
        try:
            await gh.post(url, data=review_request_body(batch))
            requested.extend(batch)
            continue
        except gidgethub.BadRequest as exc:
            if exc.status_code != 422:
                raise
            if len(batch) == 1:
                rejected.append(batch[0].owner)
                log.warning("GitHub refused %s as reviewer: %s", batch[0].owner, exc)
                continue
        # Several at once were refused: ask one by one to find who GitHub will not take.
        for candidate in batch:
            try:
                await gh.post(url, data=review_request_body([candidate]))
                requested.append(candidate)
            except gidgethub.BadRequest as exc:
                if exc.status_code != 422:
                    raise
                rejected.append(candidate.owner)
                log.warning("GitHub refused %s as reviewer: %s", candidate.owner, exc)
    return requested, rejected


@router.register("pull_request", action="opened")
@router.register("pull_request", action="ready_for_review")
async def on_ready(event: Event, gh: GitHubAPI, *, ctx: Context, **_: Any) -> None:
    pull = event.data["pull_request"]
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
    try:
        text = await fetch_text(gh, ctx.repo, config.owners_file, pull["base"]["ref"])
        if text is None:
            ctx.log.warning(
                "no %s on %s: no reviewers requested", config.owners_file, pull["base"]["ref"]
            )
            return
        owners = OwnersFile.parse(text, semantics=config.semantics)
    except (OwnersFileTooLarge, UnicodeDecodeError) as exc:
        # A person must fix the file; retrying the delivery cannot.
        ctx.log.warning("%s is unusable: %s; no reviewers requested", config.owners_file, exc)
        await ctx.mark_done(key, f"owners file unusable: {exc}")
        return
    for problem in owners.problems:
        ctx.log.warning("%s:%s: %s", config.owners_file, problem.line, problem.message)
    pulls_url = f"/repos/{ctx.repo}/pulls/{number}"
    files = [
        ChangedFile(f["filename"], int(f.get("changes", 0)))
        async for f in gh.getiter(f"{pulls_url}/files?per_page=100")
    ]
    reviews = [
        r["user"]["login"] async for r in gh.getiter(f"{pulls_url}/reviews") if r.get("user")
    ]
    current = await gh.getitem(f"{pulls_url}/requested_reviewers")
    requested = [u["login"] for u in current.get("users", ())] + [
        t["slug"] for t in current.get("teams", ())
    ]
    load = await open_review_load(gh, ctx.repo) if config.max_open_reviews else None
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
    done, refused = await request_reviews(gh, f"{pulls_url}/requested_reviewers", plan, ctx.log)
    summary = "; ".join(c.reason for c in done) or "nobody could be requested"
    ctx.log.info(
        "#%s: requested %s", number, summary, extra={"refused": refused, "files": len(files)}
    )
    await ctx.mark_done(key, summary)
