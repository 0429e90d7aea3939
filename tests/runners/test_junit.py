"""JUnit parsing against what pytest really writes, plus the inputs it must refuse."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

from bot.jobs.runners import junit
from bot.jobs.runners.junit import (
    failed_node_ids,
    node_id_for,
    parse_junit,
    parse_junit_file,
    read_junit,
    summarize,
)
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
    assert bad.headline == "AssertionError: one plus one"
    assert bad.summary_lines == ("AssertionError: one plus one", "assert 2 == 3")
    assert err.headline == "RuntimeError: fixture exploded"
    assert summarize(report.tests)[0] == f"{base}::TestToy::test_bad: AssertionError: one plus one"


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


#: Billion laughs, small enough that a parser which expands it still finishes (10^4 "a"s).
LAUGHS = (
    '<!DOCTYPE testsuites [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
    '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    '<testsuites><testsuite><testcase classname="t" name="&d;"/></testsuite></testsuites>'
)
GOOD = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite time="1.5">'
    '<testcase classname="tests.test_a" name="test_ok" time="0.5"/></testsuite></testsuites>'
)


def _declared(encoding: str, body: str = LAUGHS) -> str:
    return f'<?xml version="1.0" encoding="{encoding}"?>{body}'


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_declared("UTF-16").encode("utf-16"), id="utf-16-bom"),
        pytest.param(LAUGHS.encode("utf-16"), id="utf-16-bom-undeclared"),
        pytest.param(_declared("UTF-16").encode("utf-16-le"), id="utf-16le-no-bom"),
        pytest.param(LAUGHS.encode("utf-16-be"), id="utf-16be-undeclared-no-bom"),
        pytest.param(_declared("UTF-16LE").encode("utf-16-le"), id="utf-16le-declared-le"),
        pytest.param(("\ufeff" + LAUGHS).encode("utf-16-be"), id="utf-16be-bom"),
        pytest.param(_declared("UTF-32").encode("utf-32"), id="utf-32-bom"),
        pytest.param(LAUGHS.encode("utf-32-le"), id="utf-32le-no-bom"),
        pytest.param(_declared("Shift_JIS").encode(), id="declared-shift-jis"),
        pytest.param(_declared("UTF-16", GOOD.split("?>", 1)[1]).encode(), id="utf-8-says-16"),
        pytest.param(
            _declared("ISO-8859-1", GOOD.split("?>", 1)[1].replace("test_ok", "t\xe9st")).encode(
                "latin-1"
            ),
            id="latin-1",
        ),
    ],
)
def test_only_utf_8_is_read_whatever_the_bom_or_declaration(data: bytes) -> None:
    report = parse_junit(data)
    assert report.error is not None and "UTF-8" in report.error
    assert report.tests == ()
    assert "aaaaaaaaaa" not in repr(report)


def test_a_utf_16_billion_laughs_never_expands_in_memory() -> None:
    # Padding makes the document big enough that expat's own amplification limit allows
    # megabytes of expansion; a parser that honours the DTD builds them.
    body = LAUGHS.replace(
        '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">',
        '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
        '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">'
        '<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">',
    ).replace('name="&d;"', 'name="&f;"')
    data = (body + "<!--" + " " * 200_000 + "-->").encode("utf-16")
    tracemalloc.start()
    try:
        report = parse_junit(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.error is not None and report.tests == ()
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes"


SECRET_DOC = (
    '<testsuites><testsuite><testcase name="test_x">'
    '<failure message="m">{ref}</failure></testcase></testsuite></testsuites>'
)
LONG_COMMENT = "<!--" + "x" * 5000 + "-->"


@pytest.mark.parametrize(
    ("prolog", "ref", "encoding"),
    [
        pytest.param(
            '<?xml version="1.0" encoding="UTF-16"?>'
            '<!DOCTYPE testsuites [<!ENTITY e SYSTEM "file://{secret}">]>',
            "&e;",
            "utf-16",
            id="utf-16-external-entity",
        ),
        pytest.param(
            LONG_COMMENT + '<!DOCTYPE testsuites SYSTEM "file://{secret}">',
            "",
            "utf-8",
            id="external-dtd-after-a-long-comment",
        ),
        pytest.param(
            LONG_COMMENT + '<!DOCTYPE testsuites [<!ATTLIST testcase classname CDATA "{secret}">]>',
            "",
            "utf-8",
            id="attribute-defaults-after-a-long-comment",
        ),
        pytest.param(
            '<!DOCTYPE testsuites [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>',
            "",
            "utf-8",
            id="parameter-entity",
        ),
    ],
)
def test_no_dtd_or_external_entity_is_ever_followed(
    tmp_path: Path, prolog: str, ref: str, encoding: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    raw = (prolog.format(secret=secret) + SECRET_DOC.format(ref=ref)).encode(encoding)
    report = parse_junit(raw)
    assert report.error is not None
    assert report.tests == ()
    assert "TOP-SECRET" not in repr(report) and str(secret) not in repr(report)


def test_an_undeclared_entity_is_an_error_not_an_exception() -> None:
    report = parse_junit("<testsuites><testsuite><testcase name='&x;'/></testsuite></testsuites>")
    assert report.error is not None and "malformed" in report.error


def test_utf_8_with_or_without_its_bom_or_declaration_still_reads() -> None:
    for data in (GOOD.encode(), b"\xef\xbb\xbf" + GOOD.encode(), GOOD.split("?>", 1)[1], GOOD):
        report = parse_junit(data)
        assert report.error is None, report.error
        assert [t.node_id for t in report.tests] == ["tests/test_a.py::test_ok"]
        assert report.time_s == 1.5


def test_bytes_that_are_not_utf_8_are_an_error() -> None:
    report = parse_junit(GOOD.replace("test_ok", "test_\udcff").encode("utf-8", "surrogateescape"))
    assert report.error is not None and "UTF-8" in report.error


async def test_an_oversized_report_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    big = tmp_path / "junit.xml"
    with open(big, "wb") as fh:
        fh.write(GOOD.encode()[: -len("</testsuites>")])
        fh.write(b"<!--" + b" " * (64 * 1024 * 1024) + b"-->")
        fh.write(b"</testsuites>")
    tracemalloc.start()
    try:
        report, text = await parse_junit_file(big, limit=1024 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.error is not None and "larger than" in report.error and text is None
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"
    over = parse_junit(b" " * (junit.MAX_JUNIT_BYTES + 1))
    assert over.error is not None and "larger than" in over.error


async def test_the_async_helper_reads_and_parses_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(GOOD)
    threads: list[int] = []
    parse = junit.parse_junit

    def recording(*args: object, **kwargs: object) -> junit.JUnitReport:
        threads.append(threading.get_ident())
        return parse(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(junit, "parse_junit", recording)
    report, text = await parse_junit_file(path, root=tmp_path)
    assert report.error is None and report.passed == 1
    assert text == GOOD
    assert threads and threading.get_ident() not in threads
    missing, none = await parse_junit_file(tmp_path / "missing.xml")
    assert missing.error == "no JUnit report was written" and none is None
