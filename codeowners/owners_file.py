"""An owners file, parsed and compiled once, answering "who owns this path?".

Two semantics are offered because the reviewer bot replaces a script that had its own, simpler
reading of the same file: ``"github"`` (the default) is GitHub's CODEOWNERS matching, see
``codeowners.patterns``; ``"reference"`` reproduces the script, see ``codeowners.reference``.
Both share the file syntax of ``codeowners.syntax`` and the rule that the last matching rule
decides, even when it names no owners.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Protocol

from codeowners.patterns import CompiledPattern, GithubMatcher, PatternError, compile_patterns
from codeowners.reference import ReferenceMatcher
from codeowners.syntax import Finding, Rule, parse_text

Semantics = Literal["github", "reference"]
SEMANTICS: tuple[Semantics, ...] = ("github", "reference")

#: GitHub ignores a CODEOWNERS file larger than this; a larger file is refused, not parsed.
MAX_BYTES = 3 * 1024 * 1024


class OwnersFileTooLarge(ValueError):
    """The file is over `MAX_BYTES`: GitHub would ignore it, and parsing it costs gigabytes."""


class _Matcher(Protocol):
    def decide(self, path: str) -> int: ...

    def matching(self, path: str) -> tuple[int, ...]: ...


class OwnersFile:
    """Rules in file order, the problems found reading them, and fast owner lookups.

    Lines whose pattern cannot be used under the chosen semantics are not rules: they are in
    ``problems`` with their line numbers, and matching carries on without them.
    """

    __slots__ = ("_decide", "_matcher", "_owner_names", "problems", "rules", "semantics")

    def __init__(
        self,
        rules: tuple[Rule, ...],
        problems: tuple[Finding, ...],
        semantics: Semantics,
        matcher: _Matcher,
    ) -> None:
        self.rules = rules
        self.problems = problems
        self.semantics: Semantics = semantics
        self._matcher = matcher
        self._decide = matcher.decide
        seen: dict[str, str] = {}
        for rule in rules:
            for owner in rule.owners:
                seen.setdefault(owner.casefold(), owner)
        self._owner_names = tuple(seen.values())

    @classmethod
    def parse(cls, text: str, *, semantics: Semantics = "github") -> OwnersFile:
        """Reads CODEOWNERS text; never raises for bad lines (see ``problems``)."""
        if semantics not in SEMANTICS:
            raise ValueError(f"unknown semantics {semantics!r}: expected one of {SEMANTICS}")
        if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            raise OwnersFileTooLarge(
                f"owners file is larger than {MAX_BYTES // (1024 * 1024)} MB, the size GitHub"
                " reads; split it or remove rules"
            )
        parsed = parse_text(text)
        problems = list(parsed.problems)
        if semantics == "github":
            rules: list[Rule] = []
            compiled: list[CompiledPattern] = []
            for rule, result in zip(
                parsed.rules, compile_patterns(r.pattern for r in parsed.rules), strict=True
            ):
                if isinstance(result, PatternError):
                    problems.append(
                        Finding(
                            "error",
                            rule.line,
                            result.code,
                            f"{result.message}; the line is skipped",
                        )
                    )
                else:
                    rules.append(rule)
                    compiled.append(result)
            matcher: _Matcher = GithubMatcher(compiled)
        else:
            rules = list(parsed.rules)
            matcher = ReferenceMatcher(rule.pattern for rule in rules)
        problems.sort(key=lambda finding: finding.line or 0)
        return cls(tuple(rules), tuple(problems), semantics, matcher)

    @classmethod
    def read(cls, path: str | os.PathLike[str], *, semantics: Semantics = "github") -> OwnersFile:
        """Parses a file from disk (UTF-8); a file over `MAX_BYTES` is refused before reading."""
        if Path(path).stat().st_size > MAX_BYTES:
            raise OwnersFileTooLarge(
                f"{os.fspath(path)} is larger than {MAX_BYTES // (1024 * 1024)} MB, the size"
                " GitHub reads; split it or remove rules"
            )
        with open(path, encoding="utf-8") as handle:
            return cls.parse(handle.read(), semantics=semantics)

    def owners(self, path: str) -> tuple[str, ...]:
        """Owners of ``path`` as written in the file; empty when unowned or unmatched."""
        try:
            index = self._decide(path)
        except AttributeError:
            raise TypeError(f"path must be str, got {type(path).__name__}") from None
        return self.rules[index].owners if index >= 0 else ()

    def explain(self, path: str) -> Rule | None:
        """The rule that decides ``path`` (its line, pattern and owners), or None if none does."""
        try:
            index = self._decide(path)
        except AttributeError:
            raise TypeError(f"path must be str, got {type(path).__name__}") from None
        return self.rules[index] if index >= 0 else None

    def matching_rules(self, path: str) -> tuple[Rule, ...]:
        """Every rule matching ``path`` in file order; the last one is the one that decides."""
        return tuple(self.rules[index] for index in self._matching_indices(path))

    def _matching_indices(self, path: str) -> tuple[int, ...]:
        if not isinstance(path, str):
            raise TypeError(f"path must be str, got {type(path).__name__}")
        return self._matcher.matching(path)

    @property
    def owner_names(self) -> tuple[str, ...]:
        """Every owner named anywhere, once each (compared case-insensitively), in file order."""
        return self._owner_names

    def __repr__(self) -> str:
        return (
            f"OwnersFile({len(self.rules)} rules, {len(self.problems)} problems,"
            f" semantics={self.semantics!r})"
        )
