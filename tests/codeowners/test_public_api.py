"""The package's top level re-exports what callers use."""

from __future__ import annotations

import importlib

import pytest


def test_public_names_are_importable_from_the_package() -> None:
    package = importlib.import_module("codeowners")
    if getattr(package, "__file__", None) is None:
        pytest.skip(
            "`codeowners` resolved to the tests folder of the same name (a namespace package):"
            " run pytest as `python -m pytest` from the repository root"
        )
    from codeowners import Finding, OwnersFile, Rule, lint, matches, owner_kind

    owners = OwnersFile.parse("* @a\n/docs/ @docs\n")
    assert owners.explain("docs/x.md") == Rule(2, "/docs/", ("@docs",))
    assert matches("/docs/", "docs/x.md")
    assert owner_kind("@org/t") == "team"
    findings = lint(owners, ["docs/x.md"])
    assert [(f.line, f.code) for f in findings] == [(1, "shadowed")]
    assert all(isinstance(f, Finding) for f in findings)
    assert set(package.__all__) >= {"OwnersFile", "Rule", "Finding", "lint", "matches"}
