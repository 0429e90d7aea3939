"""`make run` without credentials plays this scenario against the sandbox; it must hold."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.scenario import REPO, scenario

ROOT = Path(__file__).resolve().parents[2]


async def test_the_demo_scenario_on_this_checkout(harness, capsys):
    await scenario(harness, ROOT)
    out = capsys.readouterr().out
    assert harness.github.requested_reviewers(REPO, 1) == (["mb-gpt2", "mb-models"], [])
    assert "reviewers requested on #1: @mb-gpt2, @mb-models" in out
    assert "**What @bot does here**" in harness.github.comments(REPO, 1)[-1]["body"]
    (message,) = harness.slack.messages
    assert message["text"].startswith("New model: tinygpt (#2 Add TinyGPT")
    assert "3 of 3 deliveries handled" in out
