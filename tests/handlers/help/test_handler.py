"""`@bot /help` as a table: this comment, this answer. No HTTP."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from gidgethub.sansio import Event

from bot.kit.help import Help
from bot.server.routing import all_help
from handlers.help.handler import on_comment

COMMENTS_URL = "/repos/acme/widgets/issues/3/comments"


@dataclass
class FakeContext:
    """Records what `comment_once` would post: one comment per key, ever."""

    help: tuple[Help, ...] = field(default_factory=all_help)
    settings: Any = field(default_factory=lambda: SimpleNamespace(handle="bot"))
    posted: dict[str, tuple[str, str]] = field(default_factory=dict)
    log: Any = field(default_factory=lambda: logging.getLogger("tests.help"))

    async def comment_once(self, comments_url: str, key: str, body: str) -> bool:
        if key in self.posted:
            return False
        self.posted[key] = (comments_url, body)
        return True


def comment(body: str, *, on_pull: bool = True, sender_type: str = "User") -> Event:
    issue: dict[str, Any] = {"number": 3, "comments_url": COMMENTS_URL}
    if on_pull:
        issue["pull_request"] = {"url": "/repos/acme/widgets/pulls/3"}
    data = {
        "action": "created",
        "issue": issue,
        "comment": {"id": 11, "body": body},
        "sender": {"login": "someone", "type": sender_type},
        "repository": {"full_name": "acme/widgets"},
    }
    return Event(data, event="issue_comment", delivery_id="d-1")


@pytest.mark.parametrize(
    ("event", "answered"),
    [
        (comment("@bot /help"), True),
        (comment("thanks!\n@BOT /Help"), True),
        (comment("> @bot /help\nquoted, not asked"), False),
        (comment("@bot /style"), False),
        (comment("@bot /help", on_pull=False), False),
        (comment("@bot /help", sender_type="Bot"), False),
    ],
    ids=["asked", "any-case", "quoted", "another-command", "on-an-issue", "by-a-bot"],
)
async def test_this_comment_gets_this_answer(event, answered):
    ctx = FakeContext()
    await on_comment(event, None, ctx=ctx)  # type: ignore[arg-type]
    assert list(ctx.posted) == (["help:11"] if answered else [])


async def test_the_answer_lists_every_feature_under_the_bots_handle():
    ctx = FakeContext(settings=SimpleNamespace(handle="maintainer-bot"))
    await on_comment(comment("@maintainer-bot /help"), None, ctx=ctx)  # type: ignore[arg-type]
    ((url, body),) = ctx.posted.values()
    assert url == COMMENTS_URL
    assert body.startswith("**What @maintainer-bot does here**")
    for feature in all_help():
        assert f"**{feature.name}**" in body
    assert "`@maintainer-bot /help`" in body


async def test_a_redelivery_answers_once():
    ctx = FakeContext()
    for _ in range(2):
        await on_comment(comment("@bot /help"), None, ctx=ctx)  # type: ignore[arg-type]
    assert len(ctx.posted) == 1
