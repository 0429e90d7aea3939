"""One verdict for every runner: how the tests ended × what their report says → state and reason.

A table, as the rule reads: the local runner's exit codes and signals, the Actions runner's
conclusions, the runners' own stops, each against a readable report (passes, failures, all
skipped, nothing), a missing or refused one, a collection error and a missing module.
"""

from __future__ import annotations

import pytest

from bot.jobs.runners.junit import JUnitReport, TestResult
from bot.jobs.runners.verdict import Ending, missing_module, verdict

URL = "https://github.com/acme/models/actions/runs/7"
HINT = "add it to the project's dependencies"


def report(*outcomes: str, error: str | None = None) -> JUnitReport:
    tests = tuple(
        TestResult(f"tests/models/toy/test_a.py::test_{i}", outcome)  # type: ignore[arg-type]
        for i, outcome in enumerate(outcomes)
    )
    return JUnitReport(tests, error=error)


PASSED = report("passed", "passed", "skipped")
FAILED = report("passed", "failed", "error")
ALL_SKIPPED = report("skipped", "skipped")
EMPTY = report()
MISSING = JUnitReport(error="pytest wrote no JUnit report")
NO_ARTIFACT = JUnitReport(error="the run uploaded no artifact slow-tests-c0ffee12ab34cd56")
COLLECTION = JUnitReport(
    (
        TestResult(
            "tests/models/toy/test_b.py",
            "error",
            message="collection failure",
            summary="SyntaxError: invalid syntax",
        ),
    )
)
MISSING_IN_COLLECTION = JUnitReport(
    (
        TestResult(
            "tests/models/toy/test_c.py",
            "error",
            traceback="E   ModuleNotFoundError: No module named 'six_not_here.moves'",
        ),
    )
)
CONFTEST_LOG = "E   ModuleNotFoundError: No module named 'torch'\n"


@pytest.mark.parametrize(
    ("ending", "junit", "expected"),
    [
        # pytest's exit code, as the local runner sees it
        (Ending.exited(0), PASSED, ("passed", "2 passed, 0 failed, 0 errors, 1 skipped")),
        (Ending.exited(0), ALL_SKIPPED, ("skipped", "all 2 tests skipped")),
        (Ending.exited(0), EMPTY, ("skipped", "no tests collected")),
        (Ending.exited(1), FAILED, ("failed", "1 passed, 1 failed, 1 errors, 0 skipped")),
        (Ending.exited(5), EMPTY, ("skipped", "no tests collected")),
        (Ending.exited(5), MISSING, ("skipped", "no tests collected")),
        (
            Ending.exited(0),
            MISSING,
            ("error", "pytest exited with code 0, but pytest wrote no JUnit report"),
        ),
        (
            Ending.exited(1),
            MISSING,
            ("error", "pytest exited with code 1, but pytest wrote no JUnit report"),
        ),
        (Ending.exited(-9), PASSED, ("error", "the test process was killed by signal 9")),
        (Ending.exited(-15), MISSING, ("error", "the test process was killed by signal 15")),
        (
            Ending.exited(2),
            COLLECTION,
            (
                "error",
                "pytest exited with code 2 (interrupted); collection failed:"
                " tests/models/toy/test_b.py: SyntaxError: invalid syntax",
            ),
        ),
        (
            Ending.exited(3),
            MISSING,
            ("error", "pytest exited with code 3 (internal error); pytest wrote no JUnit report"),
        ),
        (
            Ending.exited(4),
            MISSING,
            ("error", "pytest exited with code 4 (usage error); pytest wrote no JUnit report"),
        ),
        (Ending.exited(7), EMPTY, ("error", "pytest exited with code 7 (unexpected)")),
        # the workflow run's conclusion, as the Actions runner sees it
        (
            Ending.workflow("success", URL),
            PASSED,
            ("passed", "2 passed, 0 failed, 0 errors, 1 skipped"),
        ),
        (Ending.workflow("success", URL), ALL_SKIPPED, ("skipped", "all 2 tests skipped")),
        (
            Ending.workflow("failure", URL),
            FAILED,
            ("failed", "1 passed, 1 failed, 1 errors, 0 skipped"),
        ),
        (
            Ending.workflow("failure", URL),
            PASSED,
            ("error", f"the workflow run ended failure with no failing test ({URL})"),
        ),
        (
            Ending.workflow("failure", URL),
            NO_ARTIFACT,
            (
                "error",
                "the workflow run ended failure before any test result (the run uploaded no"
                f" artifact slow-tests-c0ffee12ab34cd56; {URL})",
            ),
        ),
        (
            Ending.workflow("success", URL),
            NO_ARTIFACT,
            (
                "error",
                "the workflow run succeeded, but the run uploaded no artifact"
                " slow-tests-c0ffee12ab34cd56",
            ),
        ),
        (
            Ending.workflow("startup_failure", URL),
            EMPTY,
            ("error", f"the workflow run ended startup_failure with no failing test ({URL})"),
        ),
        (
            Ending.workflow("cancelled", URL),
            FAILED,
            ("cancelled", "the workflow run was cancelled"),
        ),
        (
            Ending.workflow("timed_out", URL),
            PASSED,
            ("timed_out", f"the workflow run timed out ({URL})"),
        ),
        # the runners' own stops
        (Ending.cancelled(), MISSING, ("cancelled", "cancelled")),
        (Ending.timed_out("timed out after 2 s"), MISSING, ("timed_out", "timed out after 2 s")),
    ],
)
def test_each_ending_and_report_come_to_one_state_and_reason(ending, junit, expected):
    assert verdict(ending, junit) == expected


@pytest.mark.parametrize(
    ("code", "conclusion", "junit"),
    [
        *((0, "success", junit) for junit in (PASSED, FAILED, ALL_SKIPPED, EMPTY, COLLECTION)),
        *((1, "failure", junit) for junit in (FAILED, COLLECTION)),
        # Nothing collected: slow-tests.yml turns pytest's 5 into a succeeded step.
        (5, "success", EMPTY),
    ],
)
def test_the_same_tests_end_the_same_on_either_runner(code, conclusion, junit):
    """pytest's exit here and the workflow run's conclusion there are one ending: a job's state
    and reason do not depend on where it ran. (A failed run with no failing test in its report
    is an error on Actions, where the exit code that would say more is not seen.)"""
    assert verdict(Ending.exited(code), junit) == verdict(Ending.workflow(conclusion, URL), junit)


@pytest.mark.parametrize("ending", [Ending.exited(0), Ending.workflow("success", URL)])
def test_a_report_that_names_failures_is_never_a_pass(ending):
    """A conftest can make pytest exit 0 (or the step succeed) whatever its tests did; the
    report's failures still fail the job."""
    assert verdict(ending, FAILED)[0] == "failed"


def test_a_failure_after_a_cancel_is_the_cancels_doing_a_pass_before_it_stands():
    cancelled = Ending.workflow("failure", URL, cancel_requested=True)
    assert verdict(cancelled, FAILED) == ("cancelled", "the workflow run was cancelled")
    assert verdict(cancelled, NO_ARTIFACT) == ("cancelled", "the workflow run was cancelled")
    finished_first = Ending.workflow("success", URL, cancel_requested=True)
    assert verdict(finished_first, PASSED)[0] == "passed"


@pytest.mark.parametrize(
    ("code", "junit", "log", "module"),
    [
        (4, MISSING, CONFTEST_LOG, "torch"),  # a conftest: no JUnit, the log names it
        (2, MISSING_IN_COLLECTION, "", "six_not_here"),  # a test module: the JUnit names it
    ],
)
def test_a_missing_module_is_named_with_where_its_package_would_come_from(code, junit, log, module):
    state, reason = verdict(Ending.exited(code), junit, log=log, missing_hint=HINT)
    assert state == "error"
    assert reason.endswith(f"; the test environment has no module '{module}': {HINT}")
    assert reason.startswith(f"pytest exited with code {code} (")
    assert verdict(Ending.exited(code), junit, log=log)[1].endswith(f"no module '{module}'")


def test_a_missing_module_is_read_from_the_report_before_the_log():
    log = "ModuleNotFoundError: No module named 'from_the_log'"
    assert missing_module(MISSING_IN_COLLECTION, log) == "six_not_here.moves"
    assert missing_module(EMPTY, log) == "from_the_log"
    assert missing_module(EMPTY, "ERROR: usage: pytest [options]") is None
