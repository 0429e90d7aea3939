"""Comments that are posted once, even when the bot crashes between posting and recording it.

The idempotency key is written into the comment itself as an invisible HTML marker, so GitHub is
the record: a replayed delivery finds its earlier comment and does not post a second one.

Anyone can write a marker, though: a pull request's author who posts the marker of a comment
the bot is about to write would have the bot edit the author's comment (which the author then
edits back, with made-up results), or believe it had replied already. So a marker counts only
in a comment the bot wrote itself: the account its token writes as, learnt from GitHub.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gidgethub

from bot.clients.github import GitHubAPI

MARKER_PREFIX = "<!-- maintainer-bot:"
#: Tokens whose account is remembered; installation tokens change hourly, so it stays small.
_REMEMBERED = 256


def marker(key: str) -> str:
    return f"{MARKER_PREFIX}{key.replace('--', '-')} -->"


@dataclass(frozen=True)
class Author:
    """The account the bot's comments are written by.

    A person's token (`GITHUB_TOKEN` set to a personal access token) writes as that person:
    ``login``. An installation's token (App mode, and GitHub Actions' own token) writes as the
    App's bot account: GitHub marks such a comment `user.type == "Bot"` with the App in
    `performed_via_github_app`, which no person and no other kind of token can produce; with
    ``app_id`` known, the App must be that one.
    """

    login: str | None = None
    app_id: str | None = None

    def wrote(self, comment: Mapping[str, Any]) -> bool:
        user = comment.get("user")
        if not isinstance(user, Mapping):
            return False
        if self.login is not None:
            login = user.get("login")
            return isinstance(login, str) and login.casefold() == self.login.casefold()
        app = comment.get("performed_via_github_app")
        if user.get("type") != "Bot" or not isinstance(app, Mapping):
            return False
        return self.app_id is None or str(app.get("id")) == str(self.app_id)


_authors: OrderedDict[str, Author] = OrderedDict()


async def bot_author(gh: GitHubAPI, *, app_id: str | None = None) -> Author:
    """Whom `gh`'s token writes as: `GET /user` names a person's token; GitHub refuses the
    question (403) for an installation's. Asked once per token, not once per comment. A client
    without a token (a dry run reading a public repository) writes nothing: an App's rule."""
    token = gh.oauth_token or ""
    key = hashlib.sha256(f"{gh.base_url}\0{token}".encode()).hexdigest()
    known = _authors.get(key) if token else Author()
    if known is None:
        try:
            me = await gh.getitem("/user")
        except gidgethub.BadRequest as exc:
            if exc.status_code not in (403, 404):
                raise
            known = Author()
        else:
            login = me.get("login") if isinstance(me, Mapping) else None
            if not isinstance(login, str) or not login:
                raise ValueError("GitHub's answer to GET /user names no login")
            known = Author(login=login)
        _authors[key] = known
        while len(_authors) > _REMEMBERED:
            _authors.popitem(last=False)
    return Author(app_id=app_id) if known.login is None and app_id else known


async def find_marked_comment(
    gh: GitHubAPI, comments_url: str, key: str, *, author: Author | None = None
) -> dict | None:
    """The bot's own comment carrying `key`'s marker; anyone else's is passed over."""
    tag = marker(key)
    author = author or await bot_author(gh)
    async for comment in gh.getiter(comments_url):
        if tag in (comment.get("body") or "") and author.wrote(comment):
            return comment
    return None


async def post_once(
    gh: GitHubAPI, comments_url: str, key: str, body: str, *, author: Author | None = None
) -> bool:
    """Posts `body` unless the bot's comment carrying `key` exists; True when it posted."""
    if await find_marked_comment(gh, comments_url, key, author=author) is not None:
        return False
    await gh.post(comments_url, data={"body": f"{body}\n\n{marker(key)}"})
    return True
