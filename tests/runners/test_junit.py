"""JUnit parsing against what pytest really writes, plus the inputs it must refuse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.runners.junit import failed_node_ids, node_id_for, parse_junit, read_junit, summarize
from tests.runners.helpers import TOY_PYPROJECT

MIXED = """\
import pytest


def add(a, b):
    return a + b


class TestToy:
    def test_ok(self):
        assert add(1, 1) == 2

    def test_bad(self):
        x = add(1, 1)
        assert x == 3, "one plus one"

    @pytest.mark.parametrize("v", [1, 2])
    def test_param(self, v):
        assert v

    def test_skip(self):
        pytest.skip("needs a GPU")


@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")


def test_err(broken):
    pass


@pytest.mark.xfail(reason="known bug")
def test_xf():
    assert 0


def test_raise():
    {}["k"]
"""


def run_pytest(root: Path, *args: str, report: str = "junit.xml") -> Path:
    junit = root / report
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "LANG": "C.UTF-8"}
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
         *args],
        cwd=root, env=env, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    return junit


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    (root / "pyproject.toml").write_text(TOY_PYPROJECT)
    folder = root / "tests" / "models" / "toy"
    folder.mkdir(parents=True)
    (folder / "test_mixed.py").write_text(MIXED)
    run_pytest(root, "tests/models/toy")
    return root


def test_real_pytest_report(mixed: Path) -> None:
    report = read_junit(mixed / "junit.xml", root=mixed)
    assert report.error is None
    assert (report.passed, report.failed, report.errors, report.skipped) == (3, 2, 1, 2)
    by_id = {t.node_id: t for t in report.tests}
    base = "tests/models/toy/test_mixed.py"
    assert set(by_id) == {
        f"{base}::TestToy::test_ok",
        f"{base}::TestToy::test_bad",
        f"{base}::TestToy::test_param[1]",
        f"{base}::TestToy::test_param[2]",
        f"{base}::TestToy::test_skip",
        f"{base}::test_err",
        f"{base}::test_xf",
        f"{base}::test_raise",
    }
    bad = by_id[f"{base}::TestToy::test_bad"]
    assert bad.outcome == "failed"
    assert bad.message == "AssertionError: one plus one"
    assert bad.assertion == "assert 2 == 3"
    assert bad.source == 'assert x == 3, "one plus one"'
    assert bad.location == f"{base}:14"
    assert "def test_bad(self):" in bad.traceback
    raised = by_id[f"{base}::test_raise"]
    assert (raised.assertion, raised.source) == ("KeyError: 'k'", '{}["k"]')
    err = by_id[f"{base}::test_err"]
    assert err.outcome == "error" and err.assertion == "RuntimeError: fixture exploded"
    assert by_id[f"{base}::TestToy::test_skip"].skip_reason == "needs a GPU"
    assert by_id[f"{base}::test_xf"].skip_reason == "known bug"
    assert summarize(report.tests)[0] == f"{base}::TestToy::test_bad: assert 2 == 3"


def test_node_ids_without_a_checkout_match(mixed: Path) -> None:
    with_root = read_junit(mixed / "junit.xml", root=mixed)
    without = read_junit(mixed / "junit.xml")
    assert [t.node_id for t in without.tests] == [t.node_id for t in with_root.tests]


def test_failed_node_ids_rerun_exactly_those(mixed: Path) -> None:
    nodes = failed_node_ids(read_junit(mixed / "junit.xml", root=mixed))
    assert len(nodes) == 3
    rerun = read_junit(run_pytest(mixed, *nodes, report="rerun.xml"), root=mixed)
    assert sorted(t.node_id for t in rerun.tests) == sorted(nodes)
    assert rerun.passed == 0


def test_collection_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(TOY_PYPROJECT)
    folder = tmp_path / "tests" / "models" / "toy"
    folder.mkdir(parents=True)
    (folder / "test_broken.py").write_text("import not_a_module_anywhere\n")
    report = read_junit(run_pytest(tmp_path, "tests/models/toy"), root=tmp_path)
    (test,) = report.tests
    assert test.node_id == "tests/models/toy/test_broken.py" and test.outcome == "error"
    assert test.assertion == "ModuleNotFoundError: No module named 'not_a_module_anywhere'"


def test_module_guess_without_test_prefix() -> None:
    assert node_id_for("tests.models.bert.check_bert.TestX", "test_a") == (
        "tests/models/bert/check_bert.py::TestX::test_a"
    )
    assert node_id_for("pkg.mod", "test_a") == "pkg/mod.py::test_a"


def test_bad_inputs_become_errors(tmp_path: Path) -> None:
    assert "malformed JUnit XML" in (parse_junit(b"<testsuites><testsuite>").error or "")
    assert "not a JUnit report" in (parse_junit("<html/>").error or "")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;">]><testsuites>&b;</testsuites>'
    )
    assert "DTD" in (parse_junit(bomb).error or "")
    assert read_junit(tmp_path / "missing.xml").error == "no JUnit report was written"
    big = tmp_path / "big.xml"
    big.write_text("<testsuites>" + " " * 5000 + "</testsuites>")
    assert "larger than" in (read_junit(big, max_bytes=1000).error or "")
    empty = parse_junit("<testsuites/>")
    assert empty.error is None and empty.tests == ()
