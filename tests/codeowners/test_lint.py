"""lint(): syntax errors, dead rules, shadowed rules, unowned paths."""

from __future__ import annotations

import pytest

from codeowners.lint import lint
from codeowners.owners_file import OwnersFile
from codeowners.syntax import Finding

TREE = [
    "README.md",
    "setup.py",
    "docs/index.md",
    "docs/api/models.md",
    "src/app/main.py",
    "src/app/util.py",
    "src/gen/stub.py",
    "tools/release.sh",
]


def codes(findings: list[Finding]) -> list[tuple[int | None, str, str | None]]:
    return [(f.line, f.code, f.path) for f in findings]


def test_clean_file_has_no_findings() -> None:
    owners = OwnersFile.parse("* @all\n/docs/ @docs\n/src/ @dev\n")
    assert lint(owners, TREE) == []


def test_syntax_errors_come_first_with_their_lines() -> None:
    owners = OwnersFile.parse("* @all\n[ab].py @x\n*.md docs-team\n")
    findings = lint(owners, TREE)
    assert codes(findings) == [(2, "char-class", None), (3, "bad-owner", None)]
    assert all(f.severity == "error" for f in findings)


def test_pattern_matching_nothing() -> None:
    owners = OwnersFile.parse("* @all\n/src/pipeline/ @p\n*.rs @rust\n")
    findings = lint(owners, TREE)
    assert codes(findings) == [(2, "no-match", None), (3, "no-match", None)]
    assert findings[0] == Finding(
        "warning", 2, "no-match", "pattern '/src/pipeline/' matches no path in the tree"
    )


def test_rule_fully_shadowed_by_later_rules_names_them() -> None:
    owners = OwnersFile.parse(
        "* @all\n/src/app/*.py @app\n/src/ @dev\n/docs/index.md @a\n/docs/ @docs\n"
    )
    findings = lint(owners, TREE)
    assert codes(findings) == [(2, "shadowed", None), (4, "shadowed", None)]
    assert findings[0].message == (
        "pattern '/src/app/*.py' never decides a path: later rules decide every path it"
        " matches (line 3)"
    )
    assert findings[1].message.endswith("(line 5)")


def test_shadowing_by_several_rules_lists_each_line() -> None:
    owners = OwnersFile.parse("/src/ @dev\n/src/app/ @app\n/src/gen/ @gen\n* @all\n")
    (finding,) = [f for f in lint(owners, TREE) if f.line == 1]
    assert finding.code == "shadowed"
    # `*` (line 4) decides everything; lines 2 and 3 are themselves shadowed.
    assert finding.message.endswith("(line 4)")


def test_partly_overridden_rule_is_not_shadowed() -> None:
    owners = OwnersFile.parse("* @all\n/src/ @dev\n/src/gen/ @gen\n")
    assert lint(owners, TREE) == []


def test_paths_without_any_rule_are_reported_but_deliberately_unowned_are_not() -> None:
    owners = OwnersFile.parse("/src/ @dev\n/src/gen/\n*.md @docs\n")
    findings = lint(owners, TREE)
    assert codes(findings) == [
        (None, "unowned-path", "setup.py"),
        (None, "unowned-path", "tools/release.sh"),
    ]


def test_duplicate_owner_in_one_rule() -> None:
    owners = OwnersFile.parse("* @all @All\n")
    assert codes(lint(owners, TREE)) == [(1, "duplicate-owner", None)]


def test_repeated_paths_are_counted_once() -> None:
    owners = OwnersFile.parse("/src/ @dev\n")
    findings = lint(owners, ["setup.py", "setup.py"])
    assert codes(findings) == [(1, "no-match", None), (None, "unowned-path", "setup.py")]


def test_works_under_reference_semantics() -> None:
    owners = OwnersFile.parse("* @all\ntrainer.py @t\n", semantics="reference")
    assert lint(owners, ["src/seq2seq_trainer.py", "a.py"]) == []
    github = OwnersFile.parse("* @all\ntrainer.py @t\n")
    assert codes(lint(github, ["src/seq2seq_trainer.py", "a.py"])) == [(2, "no-match", None)]


def test_bad_arguments() -> None:
    owners = OwnersFile.parse("* @all\n")
    with pytest.raises(TypeError, match="not a single string"):
        lint(owners, "src/a.py")
    with pytest.raises(TypeError, match="expected an OwnersFile"):
        lint("* @all", TREE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bad path"):
        lint(owners, ["/abs/path"])
