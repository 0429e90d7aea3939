"""The scheduled run's pure decisions: folders, job order, what changed since the previous run,
and what each new failure is."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.scheduled_ci.plan import (
    Comparison,
    RunTests,
    Verdict,
    check_pattern,
    classify,
    compare,
    order_jobs,
    select_folders,
)

AVAILABLE = [
    "models",
    "models/bert",
    "models/gpt2",
    "models/llama",
    "models/llama/sub",
    "models/.hidden",
    "quantization",
    "quantization/bnb",
    "generation",
]

# --------------------------------------------------------------------------- folders


def test_no_patterns_select_every_model_and_quantization_folder():
    assert select_folders((), AVAILABLE) == (
        ["models/bert", "models/gpt2", "models/llama", "quantization/bnb"],
        [],
    )


def test_defaults_that_match_nothing_are_not_reported():
    assert select_folders((), ["models/bert"]) == (["models/bert"], [])


def test_patterns_select_one_level_each_and_report_what_matched_nothing():
    selected, unmatched = select_folders(
        ["models/b*", "models/gpt?", "models/llama/*", "vision/*", "generation"], AVAILABLE
    )
    assert selected == ["generation", "models/bert", "models/gpt2", "models/llama/sub"]
    assert unmatched == ["vision/*"]


def test_a_folder_selected_twice_comes_once():
    assert select_folders(["models/*", "models/bert"], AVAILABLE)[0].count("models/bert") == 1


@pytest.mark.parametrize(
    "pattern",
    ["..", "../*", "models/../..", "/etc", "/*", "models/./bert", "*/../../*", "models\\bert",
     "models/*;rm", "", "models//x", "models/", "~/x", "models/\nbert", "a" * 201],
)  # fmt: skip
def test_a_hostile_pattern_is_refused_and_selects_nothing(pattern):
    assert check_pattern(pattern) is not None
    available = [*AVAILABLE, "..", "../secrets", "/etc", "models/../../etc"]
    assert select_folders([pattern], available) == ([], [pattern])


def test_a_hostile_folder_name_is_never_selected():
    available = ["models/bert", "models/..", "../models/x", "/models/y", "models/[ab]"]
    assert select_folders(["models/*", "*/*"], available)[0] == ["models/bert"]
    assert select_folders(["*"], ["..", ".", "models"])[0] == ["models"]


def test_a_wildcard_does_not_match_a_hidden_folder_unless_it_says_so():
    assert "models/.hidden" not in select_folders(["models/*"], AVAILABLE)[0]
    assert select_folders(["models/.h*"], AVAILABLE)[0] == ["models/.hidden"]


# --------------------------------------------------------------------------- order


def test_jobs_run_longest_first():
    jobs = [("models/a", "single-gpu"), ("models/b", "single-gpu"), ("models/c", "single-gpu")]
    durations = {jobs[0]: 10.0, jobs[1]: 300.0, jobs[2]: 20.0}
    assert order_jobs(jobs, durations) == [jobs[1], jobs[2], jobs[0]]


def test_a_job_never_timed_goes_first_and_borrows_its_folders_other_machine_time():
    a1, a2 = ("models/a", "single-gpu"), ("models/a", "multi-gpu")
    b1, new = ("models/b", "single-gpu"), ("models/new", "single-gpu")
    durations = {a1: 50.0, b1: 100.0}
    # a2 was never timed on multi-gpu: it takes a1's 50 s; `new` has no time at all.
    assert order_jobs([a1, a2, b1, new], durations) == [new, b1, a1, a2]


def test_equal_or_unusable_times_keep_the_order_given():
    jobs = [("x", "single-gpu"), ("y", "single-gpu"), ("z", "single-gpu")]
    assert order_jobs(jobs, {}) == jobs
    assert order_jobs(jobs, dict.fromkeys(jobs, 5.0)) == jobs
    bad = {jobs[0]: float("nan"), jobs[1]: -1.0, jobs[2]: 3.0}
    assert order_jobs(jobs, bad) == jobs  # nan and negative count as never timed
    assert order_jobs([*jobs, jobs[0]], {}) == jobs


def _makespan(order, durations, machines):
    ends = [0.0] * machines
    for job in order:
        i = ends.index(min(ends))
        ends[i] += durations[job]
    return max(ends)


def _best_makespan(times, machines):
    """The best any assignment of jobs to machines can do, by trying them all."""
    return min(
        max(sum(t for t, m in zip(times, assignment, strict=True) if m == i)
            for i in range(machines))
        for assignment in itertools.product(range(machines), repeat=len(times))
    )  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=7))
def test_longest_first_ends_within_four_thirds_of_the_best_order(times):
    jobs = [(f"models/m{i}", "single-gpu") for i in range(len(times))]
    durations = dict(zip(jobs, map(float, times), strict=True))
    ordered = _makespan(order_jobs(jobs, durations), durations, 3)
    assert ordered <= _best_makespan(times, 3) * (4 / 3 - 1 / 9) + 1e-6


# --------------------------------------------------------------------------- compare


def test_failures_are_new_still_failing_or_fixed():
    previous = RunTests(failed=frozenset({"a", "b", "e"}), passed=frozenset({"c", "d"}))
    current = RunTests(failed=frozenset({"b", "c", "x"}), passed=frozenset({"a", "d"}))
    assert compare(previous, current) == Comparison(
        new=("c", "x"),  # c passed then; x was not run then
        still_failing=("b",),
        fixed=("a",),
    )


def test_without_a_previous_run_every_failure_is_new():
    current = RunTests(failed=frozenset({"b", "a"}), passed=frozenset({"c"}))
    assert compare(None, current) == Comparison(new=("a", "b"))


def test_a_test_that_only_errored_last_time_is_new_when_it_fails_now():
    previous = RunTests.of([("a", "error"), ("b", "failed"), ("c", "error")])
    current = RunTests.of([("a", "failed"), ("b", "error"), ("c", "passed")])
    assert compare(previous, current) == Comparison(new=("a",), still_failing=("b",), fixed=("c",))


def test_run_tests_of_outcomes_takes_a_failure_on_any_machine():
    tests = RunTests.of(
        [("a", "passed"), ("a", "failed"), ("b", "error"), ("b", "failed"), ("c", "error"),
         ("d", "skipped"), ("e", "passed")]
    )  # fmt: skip
    assert tests == RunTests(
        failed=frozenset({"a", "b", "c"}),
        passed=frozenset({"e"}),
        errored=frozenset({"c"}),
    )


# --------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("reruns", "at_previous", "verdict", "reason"),
    [
        (["failed", "passed", "failed"], "passed", "flaky", "passed 1 of 3 re-runs"),
        (["passed"] * 3, None, "flaky", "passed 3 of 3 re-runs"),
        (["failed"] * 3, "failed", "pre-existing", "fails at the previous run's commit too"),
        (["failed", "error", "failed"], "error", "pre-existing", "errors at the previous"),
        (["failed"] * 3, "passed", "new", "failed 3 re-runs, and passes at the previous"),
        ([], "passed", "new", "and passes at the previous run's commit"),
        (["failed"] * 3, None, "unknown", "previous run's commit could not be tested"),
        (["failed"] * 3, "missing", "unknown", "not collected at the previous run's commit"),
        (["missing", "missing"], "passed", "unknown", "the re-runs did not run it"),
    ],
)
def test_classify(reruns, at_previous, verdict, reason):
    decided = classify(reruns, at_previous)
    assert isinstance(decided, Verdict)
    assert decided.verdict == verdict
    assert reason in decided.reason
