"""The reference script's semantics: the oracle itself, and the compiled matcher against it."""

from __future__ import annotations

import random

import pytest

from codeowners.owners_file import OwnersFile
from codeowners.reference import reference_lookup, reference_regex


def ref(text: str) -> OwnersFile:
    return OwnersFile.parse(text, semantics="reference")


def test_regex_is_built_as_the_script_builds_it() -> None:
    assert reference_regex("/src/models/*/mod*") == r"^\/?src/models/[^/]*/mod[^/]*"
    assert reference_regex("*.md") == r"[^/]*\.md"
    assert reference_regex("a?b") == r"a\?b"


def test_leading_slash_anchors_to_the_root() -> None:
    owners = ref("/docs @a\n")
    assert owners.owners("docs/index.md") == ("@a",)
    assert owners.owners("src/docs/index.md") == ()


def test_unanchored_pattern_is_a_substring_search() -> None:
    owners = ref("trainer.py @t\nutils/dummy* \ndocs/ @d\n")
    assert owners.owners("examples/seq2seq_trainer.py") == ("@t",)
    assert owners.owners("src/trainer.pyi") == ("@t",)
    assert owners.explain("src/transformers/utils/dummy_pt.py").line == 2  # type: ignore[union-attr]
    assert owners.owners("mydocs/readme") == ("@d",)


def test_star_does_not_cross_a_slash_but_the_match_has_no_end() -> None:
    owners = ref("/src/*.py @a\n")
    assert owners.owners("src/app.py") == ("@a",)
    assert owners.owners("src/app.pyc") == ("@a",)
    assert owners.owners("src/pkg/app.py") == ()


def test_question_mark_is_literal() -> None:
    owners = ref("a?b @a\n")
    assert owners.owners("x/a?b") == ("@a",)
    assert owners.owners("x/acb") == ()


def test_first_match_from_the_bottom_decides_even_with_no_owners() -> None:
    owners = ref("* @everyone\n/src/ @src\n/src/gen\n")
    assert owners.owners("src/app.py") == ("@src",)
    assert owners.owners("src/generated.py") == ()
    assert owners.explain("src/generated.py").line == 3  # type: ignore[union-attr]


def test_oracle_reads_text_lines_like_the_script() -> None:
    lines = ["* @a # c\n", "\n", "# only a comment\n", "/src/ @b @c\n", "/src/gen\n"]
    assert reference_lookup(lines, "README.md") == (1, ("@a",))
    assert reference_lookup(lines, "src/x.py") == (4, ("@b", "@c"))
    assert reference_lookup(lines, "src/gen/x.py") == (5, ())
    assert reference_lookup(["/docs/ @a\n"], "src/x") is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_matcher_agrees_with_the_oracle(seed: int) -> None:
    rng = random.Random(seed)
    names = ["src", "docs", "a.py", "b.md", "tests", "x_y", "trainer.py", "mod_bert.py"]
    parts = [*names, "*", "*.py", "mod*", "*er*", "a?b"]
    lines = []
    for i in range(30):
        pattern = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.4:
            pattern = "/" + pattern
        if rng.random() < 0.2:
            pattern += "/"
        owners = " ".join(f"@u{j}" for j in range(rng.randint(0, 2)))
        lines.append(f"{pattern} {owners} # rule {i}\n" if owners else f"{pattern}\n")
    owners_file = ref("".join(lines))
    for _ in range(400):
        path = "/".join(rng.choice(names) for _ in range(rng.randint(1, 4)))
        expected = reference_lookup(lines, path)
        rule = owners_file.explain(path)
        got = (rule.line, rule.owners) if rule else None
        assert got == expected, path
