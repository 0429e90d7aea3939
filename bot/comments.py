"""Comments that are posted once, even when the bot crashes between posting and recording it.

The idempotency key is written into the comment itself as an invisible HTML marker, so GitHub is
the record: a replayed delivery finds its earlier comment and does not post a second one.
"""

from __future__ import annotations

from bot.github import GitHubAPI

MARKER_PREFIX = "<!-- maintainer-bot:"


def marker(key: str) -> str:
    return f"{MARKER_PREFIX}{key.replace('--', '-')} -->"


async def find_marked_comment(gh: GitHubAPI, comments_url: str, key: str) -> dict | None:
    tag = marker(key)
    async for comment in gh.getiter(comments_url):
        if tag in (comment.get("body") or ""):
            return comment
    return None


async def post_once(gh: GitHubAPI, comments_url: str, key: str, body: str) -> bool:
    """Posts `body` unless a comment carrying `key` exists; True when it posted."""
    if await find_marked_comment(gh, comments_url, key) is not None:
        return False
    await gh.post(comments_url, data={"body": f"{body}\n\n{marker(key)}"})
    return True
