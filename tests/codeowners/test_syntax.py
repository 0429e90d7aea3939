"""Reading CODEOWNERS text: comments, escapes, owners, unowned rules, bad lines."""

from __future__ import annotations

import pytest

from codeowners.owners_file import OwnersFile
from codeowners.syntax import Finding, Rule, Wild, owner_kind, parse_text, pattern_tokens


def test_comments_and_blank_lines_are_skipped_and_line_numbers_kept() -> None:
    text = "# header\n\n   \n*.py @alice\n  # indented comment\ndocs/ @bob\n"
    parsed = parse_text(text)
    assert parsed.rules == (
        Rule(4, "*.py", ("@alice",)),
        Rule(6, "docs/", ("@bob",)),
    )
    assert parsed.problems == ()


def test_inline_comment_ends_the_owner_list() -> None:
    (rule,) = parse_text("* @alice @org/core # fallback, ask @carol first\n").rules
    assert rule.owners == ("@alice", "@org/core")


def test_comment_glued_to_a_word_still_starts_a_comment() -> None:
    (rule,) = parse_text("*.md @alice#docs owner\n").rules
    assert rule.owners == ("@alice",)


def test_escaped_hash_is_part_of_the_pattern() -> None:
    owners = OwnersFile.parse(r"\#notes.md @alice # a file whose name starts with #")
    assert owners.rules[0].pattern == r"\#notes.md"
    assert owners.owners("#notes.md") == ("@alice",)
    assert owners.owners("notes.md") == ()


def test_escaped_space_keeps_one_pattern() -> None:
    owners = OwnersFile.parse("docs/my\\ file.md @alice\n")
    assert owners.rules == (Rule(1, "docs/my\\ file.md", ("@alice",)),)
    assert owners.owners("docs/my file.md") == ("@alice",)
    assert owners.owners("docs/my") == ()


def test_tabs_separate_words() -> None:
    (rule,) = parse_text("*.py\t@alice\t\t@bob").rules
    assert rule == Rule(1, "*.py", ("@alice", "@bob"))


@pytest.mark.parametrize(
    ("owner", "kind"),
    [
        ("@alice", "user"),
        ("@Rocketknight1", "user"),
        ("@zach-huggingface", "user"),
        ("@huggingface/core-maintainers", "team"),
        ("@org/team_name", "team"),
        ("docs@example.com", "email"),
        ("first.last+tag@mail.example.org", "email"),
        ("alice", None),
        ("@", None),
        ("@-alice", None),
        ("@org/", None),
        ("@org/team/sub", None),
        ("user@localhost", None),
    ],
)
def test_owner_forms(owner: str, kind: str | None) -> None:
    assert owner_kind(owner) == kind


def test_rule_without_owners_is_explicitly_unowned() -> None:
    owners = OwnersFile.parse("* @alice\nutils/dummy*\n")
    rule = owners.rules[1]
    assert rule.unowned
    assert owners.owners("utils/dummy_pt.py") == ()
    assert owners.explain("utils/dummy_pt.py") == rule
    assert owners.owners("utils/other.py") == ("@alice",)


def test_bad_owner_is_reported_with_its_line_and_the_rule_keeps_the_rest() -> None:
    owners = OwnersFile.parse("* @alice\n*.md @bob stevhliu @org/docs\n*.py @carol\n")
    assert owners.problems == (
        Finding(
            "error",
            2,
            "bad-owner",
            "'stevhliu' is not an owner: expected @user, @org/team or an e-mail address; it is"
            " ignored",
        ),
    )
    assert owners.owners("README.md") == ("@bob", "@org/docs")
    assert owners.owners("a.py") == ("@carol",)


def test_dangling_escape_skips_only_that_line() -> None:
    owners = OwnersFile.parse("* @alice\nbad\\\n*.py @carol\n")
    assert [(p.line, p.code) for p in owners.problems] == [(2, "dangling-escape")]
    assert [r.line for r in owners.rules] == [1, 3]
    assert owners.owners("x.py") == ("@carol",)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("!secret.txt @alice", "negation"),
        ("[abc].py @alice", "char-class"),
        ("docs//api @alice", "bad-pattern"),
        ("/ @alice", "bad-pattern"),
        ("a\\/b @alice", "bad-pattern"),
    ],
)
def test_patterns_github_cannot_use_are_reported_and_skipped(line: str, code: str) -> None:
    owners = OwnersFile.parse(f"* @root\n{line}\n*.md @docs\n")
    (problem,) = owners.problems
    assert (problem.severity, problem.line, problem.code) == ("error", 2, code)
    assert "the line is skipped" in problem.message
    assert [r.line for r in owners.rules] == [1, 3]
    assert owners.owners("abc.py") == ("@root",)


def test_reference_semantics_reads_brackets_and_bang_literally() -> None:
    owners = OwnersFile.parse("[abc].py @alice\n!x @bob\n", semantics="reference")
    assert owners.problems == ()
    assert owners.owners("src/[abc].py") == ("@alice",)
    assert owners.owners("src/a.py") == ()
    assert owners.owners("!x") == ("@bob",)


def test_rule_whose_owners_are_all_malformed_is_skipped_not_made_unowned() -> None:
    owners = OwnersFile.parse("* @alice\n*.md stevhliu\n")
    (problem,) = owners.problems
    assert (problem.line, problem.code) == (2, "bad-owner")
    assert problem.message.endswith("no valid owner is left, so the line is skipped")
    assert owners.owners("README.md") == ("@alice",)


def test_problems_are_in_line_order() -> None:
    owners = OwnersFile.parse("[x] @a\n* nobody\n!y @b\n")
    assert [(p.line, p.code) for p in owners.problems] == [
        (1, "char-class"),
        (2, "bad-owner"),
        (3, "negation"),
    ]


def test_windows_line_endings_and_byte_order_mark() -> None:
    parsed = parse_text("\ufeff* @alice\r\n*.md @bob\r\n")
    assert parsed.rules == (Rule(1, "*", ("@alice",)), Rule(2, "*.md", ("@bob",)))


def test_text_must_be_str() -> None:
    with pytest.raises(TypeError, match="must be str"):
        parse_text(b"* @alice")  # type: ignore[arg-type]


def test_pattern_tokens_read_escapes_once() -> None:
    assert pattern_tokens(r"a\*b*/c?") == ("a*b", Wild.STAR, Wild.SLASH, "c", Wild.QMARK)
    assert pattern_tokens("/docs/*.md") == (Wild.SLASH, "docs", Wild.SLASH, Wild.STAR, ".md")
    assert pattern_tokens(r"my\ file") == ("my file",)


def test_finding_reads_well() -> None:
    assert str(Finding("error", 3, "bad-owner", "x")) == "line 3: error [bad-owner] x"
    assert str(Finding("warning", None, "unowned-path", "y", "a.py")) == (
        "a.py: warning [unowned-path] y"
    )
