"""Text for GitHub Markdown: the escaping and formatting the comment and the check run share.

Everything a person or a test wrote (names, test ids, messages, runner errors) reaches the pull
request through these functions, so `<script>`, `|`, backticks and `@mentions` stay inert text
in both places. Pure: no I/O, no state.
"""

from __future__ import annotations

import re

__all__ = [
    "clip",
    "code_fence",
    "code_span",
    "escape_text",
    "format_duration",
    "link_destination",
    "one_line",
    "short_sha",
    "table_cell",
]

#: Control characters (C0, DEL, C1) and every line break Python or a browser knows of.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_BACKTICKS = re.compile(r"`+")


def short_sha(sha: str | None) -> str:
    """A commit's first 12 characters, as people quote it; a garbled SHA stays on one line."""
    return one_line(sha or "", 40)[:12]


def one_line(text: str, limit: int | None = None) -> str:
    """Control characters and line breaks as spaces; one physical line, cut to ``limit``.

    A line break inside a table row or a list item would end it and let the rest be markdown.
    """
    flat = _CONTROL.sub(" ", text).strip()
    return clip(flat, limit) if limit is not None else flat


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with `…` saying that it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _longest_backticks(text: str) -> int:
    return max((len(m) for m in _BACKTICKS.findall(text)), default=0)


def code_span(text: str) -> str:
    """An inline code span that holds any text, backticks included, on one line: a line break
    would end the table row or list item the span sits in, and what follows would be markdown
    (GitHub shows a span's line break as a space anyway)."""
    text = _CONTROL.sub(" ", text)
    if not text:
        return "` `"
    fence = "`" * (_longest_backticks(text) + 1)
    if "`" in text or text.startswith(" ") or text.endswith(" "):
        return f"{fence} {text} {fence}"
    return f"{fence}{text}{fence}"


def code_fence(text: str) -> str:
    """The fence of a code block holding ``text``: longer than any run of backticks in it."""
    return "`" * max(3, _longest_backticks(text) + 1)


def escape_text(text: str) -> str:
    """Text from a runner or a git error as plain text: no HTML, links, images, code or
    mentions, and on one line, so it cannot start a heading, a quote or a list of its own."""
    text = _CONTROL.sub(" ", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`*_\[\]|~#!])", r"\\\1", text)
    # A backslash does not stop a mention; a zero-width space after the `@` does.
    return text.replace("@", "@\u200b")


def table_cell(text: str) -> str:
    """A table cell: `|` ends a cell even inside a code span, unless escaped."""
    return re.sub(r"(?<!\\)\|", r"\\|", text)


def link_destination(url: str) -> str:
    """``url`` inside a link's `(...)`: a space or a parenthesis there would end the link."""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def format_duration(seconds: float) -> str:
    """Seconds as a table shows them: `42 s`, `3 min 5 s`, `2 h 10 min`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
