"""The scheduled handler's pure seams: which new failures may be run again on their own."""

from __future__ import annotations

import pytest

from handlers.scheduled_ci.handler import runnable


def _new(folder: str = "models/bert") -> dict:
    return {"folder": folder, "machine_type": "single-gpu", "status": "new"}


@pytest.mark.parametrize(
    "node",
    [
        "tests/models/bert/../../../../etc/passwd::test_x",  # climbs out of its folder
        "tests/models/gpt2/test_gpt2.py::test_x",  # another job's folder
        "tests/models/bert/test_b.py::test_x\n--rootdir=/",  # a line break into argv
        "tests/models/bert/test_b.py::test_" + "x" * 5000,  # unbounded
        "/etc/passwd",
        "--collect-only",
    ],
)
def test_a_node_id_the_report_made_up_is_never_run_and_says_why(node):
    tests = {node: _new(), "tests/models/bert/test_b.py::test_ok[1-a]": _new()}
    assert runnable(tests) == ["tests/models/bert/test_b.py::test_ok[1-a]"]
    assert tests[node]["verdict"] == "unknown"
    assert tests[node]["reason"] == "not checked: not a test under tests/models/bert/"


def test_only_new_failures_are_checked():
    tests = {
        "tests/models/bert/test_b.py::test_a": {**_new(), "status": "still failing"},
        "tests/models/bert/test_b.py::test_b": {**_new(), "status": "fixed"},
        "tests/models/bert/test_b.py::test_c": _new(),
    }
    assert runnable(tests) == ["tests/models/bert/test_b.py::test_c"]


def test_on_actions_an_id_with_a_space_is_not_checked_elsewhere_it_is():
    node = "tests/models/bert/test_b.py::test_x[a b]"
    assert runnable({node: _new()}, "local") == [node]
    tests = {node: _new()}
    assert runnable(tests, "github-actions") == []
    assert tests[node]["verdict"] == "unknown" and "space" in tests[node]["reason"]


def test_the_breaking_pull_request_is_told_its_tests_as_code_and_at_most_twenty():
    from handlers.scheduled_ci.plan import BreakingCommit
    from handlers.scheduled_ci.report import breaking_comment

    hostile = "tests/models/x/test_a.py::test_`](javascript:alert(1))` @everyone"
    tests = (hostile, *(f"tests/models/x/test_a.py::test_{i}" for i in range(30)))
    body = breaking_comment("nightly", BreakingCommit("c" * 40, "", tests, 7), "/runs/9")
    assert "31 tests first fail at this pull request's merge (cccccccccccc)" in body
    assert "`` tests/models/x/test_a.py::test_`](javascript:alert(1))` @everyone ``" in body
    assert "… and 11 more" in body and body.endswith("/runs/9")
    assert body.count("\n- ") == 21
