"""CODEOWNERS files: parse, match paths with GitHub's semantics, explain, lint.

A pure library (standard library only), usable on its own::

    from codeowners import OwnersFile, lint

    owners = OwnersFile.parse(text)              # or semantics="reference"
    owners.owners("src/app/main.py")             # ('@alice', '@org/backend')
    owners.explain("src/app/main.py")            # Rule(line=12, pattern='/src/', owners=...)
    owners.problems                              # syntax errors, with line numbers
    lint(owners, tree_paths)                     # unmatched, shadowed, unowned, ...
"""

from codeowners.lint import lint
from codeowners.owners_file import MAX_BYTES, SEMANTICS, OwnersFile, OwnersFileTooLarge, Semantics
from codeowners.patterns import PatternError, matches
from codeowners.syntax import Finding, OwnerKind, Rule, Severity, owner_kind

__all__ = [
    "MAX_BYTES",
    "SEMANTICS",
    "Finding",
    "OwnerKind",
    "OwnersFile",
    "OwnersFileTooLarge",
    "PatternError",
    "Rule",
    "Semantics",
    "Severity",
    "lint",
    "matches",
    "owner_kind",
]
