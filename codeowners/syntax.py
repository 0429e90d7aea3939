r"""Reading the text of a CODEOWNERS file into rules, keeping every line's number.

A line is ``pattern owner owner ...``. This module only splits lines into those parts and
checks the owners; what a pattern *means* belongs to the matchers (``patterns.py`` for
GitHub's semantics, ``reference.py`` for the reference script's), because the two accept
different pattern syntax.

The rules of the text, each with an example:

- Blank lines and lines starting with ``#`` are ignored.
- An unescaped ``#`` anywhere starts a comment that runs to the end of the line:
  ``* @alice # the fallback owner`` gives the owner ``@alice`` only.
- A backslash makes the next character literal, so ``\#`` puts a ``#`` in a pattern and
  ``docs/my\ notes.md`` is one pattern containing a space. The pattern keeps its backslashes
  (``Rule.pattern`` is the text as written); the matchers read them.
- Owners are ``@user``, ``@org/team`` or an e-mail address, separated by whitespace.
- A pattern with no owners is a rule too: the matching files are *explicitly unowned*.
- A malformed line is reported as an error ``Finding`` with its line number, and parsing goes
  on with the next line. An owner that is not in one of the three forms is dropped from its
  rule (the rest of the rule stays); a line left with no valid owner, or whose pattern cannot
  be read, is skipped.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]
OwnerKind = Literal["user", "team", "email"]

# GitHub logins: letters, digits and single hyphens; underscores appear in managed-user logins.
_USER = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?")
_TEAM = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9_][A-Za-z0-9_.-]*")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the file: ``pattern`` as written (escapes kept) and its owners in order."""

    line: int
    pattern: str
    owners: tuple[str, ...]

    @property
    def unowned(self) -> bool:
        """True for a rule that deliberately names nobody: matching files ping no one."""
        return not self.owners

    def __str__(self) -> str:
        return " ".join((self.pattern, *self.owners))


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem in an owners file, tied to a line, a path, or both."""

    severity: Severity
    line: int | None
    code: str
    message: str
    path: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else (self.path or "file")
        return f"{where}: {self.severity} [{self.code}] {self.message}"


@dataclass(frozen=True, slots=True)
class ParsedText:
    """Rules in file order, and the problems met while reading them."""

    rules: tuple[Rule, ...]
    problems: tuple[Finding, ...]


def owner_kind(owner: str) -> OwnerKind | None:
    """Classifies an owner as written in a file; None when it is in none of the three forms."""
    if _TEAM.fullmatch(owner):
        return "team"
    if _USER.fullmatch(owner):
        return "user"
    if _EMAIL.fullmatch(owner):
        return "email"
    return None


def parse_text(text: str) -> ParsedText:
    """Splits a whole file into rules; bad lines become findings instead of exceptions.

    Why not stop at the first bad line: an owners file is edited by many people, and one typo
    must not switch off every other rule (GitHub itself skips only the broken line).
    """
    if not isinstance(text, str):
        raise TypeError(f"CODEOWNERS text must be str, got {type(text).__name__}")
    rules: list[Rule] = []
    problems: list[Finding] = []
    kinds: dict[str, OwnerKind | None] = {}  # files name the same few owners on every line
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        rule = _parse_line(raw, number, problems, kinds)
        if rule is not None:
            rules.append(rule)
    return ParsedText(tuple(rules), tuple(problems))


def _parse_line(
    raw: str, number: int, problems: list[Finding], kinds: dict[str, OwnerKind | None]
) -> Rule | None:
    words = _split_words(raw, number, problems)
    if not words:
        return None
    pattern, *candidates = words
    for owner in candidates:
        if owner not in kinds:
            kinds[owner] = owner_kind(owner)
    owners = tuple(owner for owner in candidates if kinds[owner] is not None)
    # A rule whose every owner is malformed would silently make its files unowned; skipping
    # the line instead lets the earlier rules keep pinging someone while it gets fixed.
    outcome = "it is ignored" if owners else "no valid owner is left, so the line is skipped"
    for owner in candidates:
        if kinds[owner] is None:
            problems.append(
                Finding(
                    "error",
                    number,
                    "bad-owner",
                    f"{owner!r} is not an owner: expected @user, @org/team or an e-mail"
                    f" address; {outcome}",
                )
            )
    if candidates and not owners:
        return None
    return Rule(number, pattern, owners)


def _split_words(raw: str, number: int, problems: list[Finding]) -> list[str]:
    """Whitespace-separated words up to the first unescaped ``#``, escapes kept in place."""
    if "\\" not in raw:
        return raw.split("#", 1)[0].split()
    words: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            if i + 1 == len(raw):
                problems.append(
                    Finding(
                        "error",
                        number,
                        "dangling-escape",
                        "the line ends with a backslash that escapes nothing; the line is skipped",
                    )
                )
                return []
            current.append(raw[i : i + 2])
            i += 2
            continue
        if ch == "#":
            break
        if ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
        i += 1
    if current:
        words.append("".join(current))
    return words


class Wild(enum.Enum):
    """The characters of a pattern that are not literal (unless escaped)."""

    STAR = "*"
    QMARK = "?"
    SLASH = "/"
    OPEN = "["


Token = str | Wild


def pattern_tokens(pattern: str) -> tuple[Token, ...]:
    r"""Reads escapes once so both matchers see the same literals.

    ``a\*b*`` gives ``("a*b", Wild.STAR)``: an escaped character is literal text, runs of
    literal text are merged, and every unescaped wildcard, ``/`` or ``[`` is its own token.
    """
    if "\\" not in pattern:
        return tuple(_WILD.get(piece, piece) for piece in _WILD_SPLIT.split(pattern) if piece)
    tokens: list[Token] = []
    literal: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            literal.append(pattern[i + 1])
            i += 2
            continue
        wild = _WILD.get(ch)
        if wild is None:
            literal.append(ch)
        else:
            if literal:
                tokens.append("".join(literal))
                literal = []
            tokens.append(wild)
        i += 1
    if literal:
        tokens.append("".join(literal))
    return tuple(tokens)


_WILD: dict[str, Token] = {w.value: w for w in Wild}
_WILD_SPLIT = re.compile(r"([*?/\[])")
