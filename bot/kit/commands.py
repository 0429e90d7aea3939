"""Finds `@bot /command args` in comment bodies, the way people actually write them.

A command counts only where GitHub shows it as prose. Quoted replies (`> @bot /style`), code
(fenced, indented, or inline as `` `@bot /style` ``) and HTML comments (`<!-- @bot /style -->`,
invisible on the page) show or quote a command without giving it: someone explaining the bot,
or a template, must not run it. A mention inside a word (`mail@bot`) is not a command either.

The reading follows CommonMark closely enough for commands, and errs towards "not a command"
where it does not (an indented block inside a list item is taken for code). It is linear in the
comment's length: comments reach 65,536 characters, and a hostile one must not stall a worker.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]


@lru_cache(maxsize=8)
def _pattern(handle: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?<![\w@/-])@{re.escape(handle)}\s+/([a-z][a-z0-9_-]*)(?![\w/-])([^\n]*)",
        re.IGNORECASE,
    )


#: An HTML comment, as GitHub hides it: `<!-->` and `<!--->` are whole comments, and one that is
#: never closed hides the rest of the comment.
_HTML_COMMENT = re.compile(r"<!--(?:>|->|.*?(?:-->|\Z))", re.DOTALL)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: A fence opens with three or more backticks (no backtick in its info string) or tildes.
_FENCE = re.compile(r" {0,3}(`{3,}(?=[^`]*$)|~{3,})")
_QUOTE = re.compile(r" {0,3}>")
_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")
_LIST_ITEM = re.compile(r" {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
_BACKTICKS = re.compile(r"`+")


def parse_commands(body: str | None, handle: str) -> list[Command]:
    """Every command addressed to `@handle` in a comment body, in the order written."""
    handle = handle.lstrip("@")
    if not body or f"@{handle.lower()}" not in body.lower():
        return []  # the common case, and long comments are common: no line-by-line scan
    pattern = _pattern(handle)
    commands: list[Command] = []
    for line in _prose_lines(body):
        for match in pattern.finditer(line):
            commands.append(Command(match.group(1).lower(), tuple(match.group(2).split())))
    return commands


def _prose_lines(body: str) -> Iterator[str]:
    """The body's lines GitHub renders as prose (paragraphs, list items, headings), with code
    spans blanked out; fenced and indented code, quotes and HTML comments left out."""
    body = _HTML_COMMENT.sub(lambda m: "\n" * m.group().count("\n"), body)
    paragraph: list[str] = []
    fence = ""
    # What the previous line was: "start", "blank", "paragraph", "quote", "code" or "block".
    before = "start"
    for line in _LINE_BREAK.split(body):
        if fence:
            if _closes(line, fence):
                fence, before = "", "block"
            continue
        if not line.strip():
            yield from _flush(paragraph)
            before = "blank"
            continue
        indent = _indent(line)
        if indent >= 4:
            # Code, unless it continues a paragraph (or a quote's paragraph, lazily).
            if before in ("start", "blank", "code", "block"):
                before = "code"
                continue
            if before == "quote":
                continue
            paragraph.append(line)
            continue
        opening = _FENCE.match(line)
        if opening:
            yield from _flush(paragraph)
            fence = opening.group(1)
            continue
        if _QUOTE.match(line):
            yield from _flush(paragraph)
            before = "quote"
            continue
        if before == "quote" and not (_HEADING.match(line) or _LIST_ITEM.match(line)):
            continue  # a lazy continuation line: GitHub shows it inside the quote
        if _HEADING.match(line):
            yield from _flush(paragraph)
            yield from _flush([line])
            before = "block"
            continue
        if _LIST_ITEM.match(line):
            yield from _flush(paragraph)  # a code span does not run from one item into the next
        paragraph.append(line)
        before = "paragraph"
    yield from _flush(paragraph)


def _flush(paragraph: list[str]) -> Iterator[str]:
    if paragraph:
        yield from _without_code_spans("\n".join(paragraph)).split("\n")
        paragraph.clear()


def _closes(line: str, fence: str) -> bool:
    """Whether `line` closes `fence`: the same character, at least as many, nothing after."""
    stripped = line.strip()
    return (
        _indent(line) < 4 and len(stripped) >= len(fence) and stripped == fence[0] * len(stripped)
    )


def _indent(line: str) -> int:
    """The line's indentation in columns, a tab reaching the next multiple of four."""
    width = 0
    for char in line:
        if char == " ":
            width += 1
        elif char == "\t":
            width += 4 - width % 4
        else:
            break
    return width


def _without_code_spans(text: str) -> str:
    """`text` with each code span blanked (its line breaks kept).

    A span opens with a run of backticks and closes with the next run of exactly as many; a run
    with no such partner is literal. Outside a span a backslash makes the next backtick literal
    (inside one it does not). Each run's partner is found by bisecting the positions of the runs
    of that length, so a comment of many unmatched runs costs n log n, not n squared.
    """
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(text)]
    if len(runs) < 2:
        return text
    by_length: dict[int, list[int]] = {}
    for index, (start, end) in enumerate(runs):
        by_length.setdefault(end - start, []).append(index)
    out: list[str] = []
    done = 0  # text[:done] is settled
    index = 0
    while index < len(runs):
        start, end = runs[index]
        escapes = 0
        while start - escapes - 1 >= done and text[start - escapes - 1] == "\\":
            escapes += 1
        if escapes % 2:
            start += 1  # the first backtick is escaped; the rest of the run may still open
        length = end - start
        partner = None
        if length:
            same = by_length.get(length, [])
            found = bisect.bisect_right(same, index)
            if found < len(same):
                partner = same[found]
        if partner is None:
            index += 1
            continue
        close_end = runs[partner][1]
        out.append(text[done:start])
        out.append("".join("\n" if char == "\n" else " " for char in text[start:close_end]))
        done = close_end
        index = partner + 1
    out.append(text[done:])
    return "".join(out)
