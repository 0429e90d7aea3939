"""A command shown rather than given: `@bot /style` in inline code, inside an HTML comment or in
an indented code block is not a command, as a quoted or fenced one is not; one written as
prose still is. And reading a long comment stays fast."""

from __future__ import annotations

import time

import pytest

from bot.kit.commands import Command, parse_commands

STYLE = [Command("style", ())]


@pytest.mark.parametrize(
    "body",
    [
        "`@bot /style`",
        "run `@bot /style` to format the code",
        "``@bot /style``",
        "`` `@bot /style` ``",
        "the help says:\n`@bot /style\nfixes it`",  # a code span over two lines
        "<!-- @bot /style -->",
        "text <!-- @bot /style --> text",
        "<!--\n@bot /style\n-->",
        "<!-- a comment\nthat goes on\n@bot /style\n-->\nthanks",
        "<!-- never closed\n@bot /style",
        "<!-->\n<!--\n@bot /style\n-->",
        "    @bot /style",
        "\t@bot /style",
        "intro\n\n    @bot /style\n\nafter",
        "intro\n\n    code\n\n    @bot /style",  # a blank line inside an indented block
        "````\n```\n@bot /style\n````",  # a shorter fence does not close a longer one
        "~~~\n```\n@bot /style\n~~~",
        "```\n@bot /style",  # a fence never closed runs to the end
        "> quoted\n@bot /style",  # a lazy continuation line is still the quote
        "   > @bot /style",
    ],
)
def test_a_command_shown_in_code_or_hidden_is_not_given(body):
    assert parse_commands(body, "bot") == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("`code` then @bot /style", STYLE),
        ("`unclosed @bot /style", STYLE),  # one backtick alone is a backtick
        ("<!-- hidden -->\n@bot /style", STYLE),
        ("<!-- a --> @bot /style <!-- b -->", STYLE),
        ("some text\n    @bot /style", STYLE),  # an indented line continuing a paragraph
        ("   @bot /style", STYLE),  # three spaces are not a code block
        ("```\ncode\n```\n@bot /style", STYLE),
        ("````\n```\n````\n@bot /style", STYLE),
        ("> quoted\n\n@bot /style", STYLE),
        ("> quoted\n- @bot /style", STYLE),  # a list item ends the quote
        ("> quoted\n# @bot /style", STYLE),  # so does a heading
        ("- @bot /style", STYLE),
        ("please @bot /style now", [Command("style", ("now",))]),
        ("`x` @bot /style `y`", STYLE),
        ("\\`@bot /style\\`", [Command("style", ("\\`",))]),  # escaped: no code span
    ],
)
def test_a_command_written_as_prose_is_given(body, expected):
    assert parse_commands(body, "bot") == expected


#: GitHub's limit on a comment's body, in characters.
LONGEST = 65_536


@pytest.mark.parametrize(
    "body",
    [
        "`" * (LONGEST - 20) + " @bot /help",
        "".join(f"{'`' * n} " for n in range(1, 100)) * 12 + "@bot /help",
        "<!--" * (LONGEST // 4 - 5) + "@bot /help",
        "<!-- -->" * (LONGEST // 8 - 2) + "\n@bot /help",
        "> q\n" * (LONGEST // 4 - 5) + "\n@bot /help",
        "    x\n\n" * (LONGEST // 8 - 2) + "@bot /help",
        "```\n~~~\n" * (LONGEST // 8 - 2) + "@bot /help",
        "`a` `b` c\n" * (LONGEST // 10 - 2) + "@bot /help",
        "`` x ` " * (LONGEST // 8 - 2) + "@bot /help",
    ],
    ids=[
        "backticks",
        "runs",
        "comment-openers",
        "comments",
        "quotes",
        "indented",
        "fences",
        "prose",
        "unmatched",
    ],
)
def test_the_longest_hostile_comment_is_read_quickly(body):
    assert len(body) <= LONGEST
    started = time.perf_counter()
    parse_commands(body, "bot")
    assert time.perf_counter() - started < 0.25
