"""Checks an owners file against the tree it governs.

Why against a tree: most mistakes in an owners file are not syntax errors but rules that do
nothing (a typo in a directory name, a rule written above a broader one that overrides it) or
files that nobody owns. Those only show when the rules meet real paths.
"""

from __future__ import annotations

from collections.abc import Iterable

from codeowners.owners_file import OwnersFile
from codeowners.syntax import Finding

__all__ = ["lint"]


def lint(owners_file: OwnersFile, paths: Iterable[str]) -> list[Finding]:
    """Every problem of ``owners_file`` for the tree ``paths``, ordered by line then path.

    - errors: the syntax problems met while parsing (``owners_file.problems``);
    - ``no-match``: a rule whose pattern matches none of the paths;
    - ``shadowed``: a rule that matches paths but decides none, because later rules decide
      every one of them (the message names those rules' lines);
    - ``duplicate-owner``: an owner listed twice in one rule;
    - ``unowned-path``: a path no rule matches. Paths decided by a rule with no owners are
      unowned on purpose and not reported.
    """
    if not isinstance(owners_file, OwnersFile):
        raise TypeError(f"expected an OwnersFile, got {type(owners_file).__name__}")
    if isinstance(paths, str):
        raise TypeError("paths must be an iterable of paths, not a single string")
    rules = owners_file.rules
    matched = [False] * len(rules)
    decided = [False] * len(rules)
    deciders: list[set[int]] = [set() for _ in rules]
    findings = list(owners_file.problems)
    for path in dict.fromkeys(paths):
        hits = owners_file._matching_indices(path)
        if not hits:
            findings.append(
                Finding("warning", None, "unowned-path", "no rule matches this path", path)
            )
            continue
        winner = hits[-1]
        decided[winner] = True
        for index in hits:
            matched[index] = True
            if index != winner:
                deciders[index].add(winner)
    for index, rule in enumerate(rules):
        if not matched[index]:
            findings.append(
                Finding(
                    "warning",
                    rule.line,
                    "no-match",
                    f"pattern {rule.pattern!r} matches no path in the tree",
                )
            )
        elif not decided[index]:
            lines = ", ".join(str(rules[i].line) for i in sorted(deciders[index]))
            findings.append(
                Finding(
                    "warning",
                    rule.line,
                    "shadowed",
                    f"pattern {rule.pattern!r} never decides a path: later rules decide every"
                    f" path it matches (line{'s' if len(deciders[index]) > 1 else ''} {lines})",
                )
            )
        seen: set[str] = set()
        for owner in rule.owners:
            if owner.casefold() in seen:
                findings.append(
                    Finding(
                        "warning",
                        rule.line,
                        "duplicate-owner",
                        f"{owner} is listed more than once in this rule",
                    )
                )
            seen.add(owner.casefold())
    findings.sort(
        key=lambda f: (
            f.line is None,
            f.line or 0,
            f.severity != "error",
            f.code,
            f.path or "",
        )
    )
    return findings
