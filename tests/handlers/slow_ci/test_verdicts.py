"""The checks of a run's failures as data: which tests are checked, which jobs check them, and
"the re-runs and the base answered this -> the test is labelled that"."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, RepoConfig, parse_repo_config
from bot.jobs.runners.actions import correlation_id
from bot.jobs.runners.base import RunRequest
from handlers.slow_ci.verdicts import (
    CHECKING,
    DEFAULT_RERUNS,
    DONE,
    MAX_CHECKED,
    Base,
    JobAnswer,
    Suspect,
    Verification,
    base_jobs,
    choose,
    conclude,
    failing_tests,
    judge,
    outcomes_of,
    rerun_jobs,
)

MAIN = Base("main", "b" * 40, "merge")
FILE = "tests/models/toy/test_a.py"
TOY = Suspect("tests/models/toy/test_a.py::test_x", "models/toy", "single-gpu")
OTHER = Suspect("tests/models/toy/test_b.py::test_y", "models/toy", "single-gpu")
MULTI = Suspect("tests/models/toy/test_a.py::test_x", "models/toy", "multi-gpu")


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("reruns", "at_base", "verdict", "label", "reason"),
    [
        pytest.param(
            ["failed", "failed"],
            "passed",
            "new",
            "new",
            "failed 2 of 2 re-runs; passes on main",
            id="new: passes at the base",
        ),
        pytest.param(
            ["failed", "failed"],
            "failed",
            "pre-existing",
            "fails on the base too",
            "failed 2 of 2 re-runs; fails on main too",
            id="fails on the base too",
        ),
        pytest.param(
            ["failed", "error"],
            "error",
            "pre-existing",
            "fails on the base too",
            "failed 2 of 2 re-runs; errors on main too",
            id="errors on the base too",
        ),
        pytest.param(
            ["failed", "passed"],
            "failed",
            "flaky",
            "flaky",
            "passed 1 of 2 re-runs",
            id="flaky: passed on a re-run, whatever the base says",
        ),
        pytest.param(
            ["failed", "failed"],
            "absent",
            "new",
            "new",
            "failed 2 of 2 re-runs; its file is not on main: this pull request adds it",
            id="new: its file is not on the base",
        ),
        pytest.param(
            ["failed", "failed"],
            None,
            "unknown",
            "could not tell",
            "failed 2 of 2 re-runs; could not be run on main (see its run)",
            id="the base ran none of it: never new",
        ),
        pytest.param(
            ["failed", "failed"],
            "missing",
            "unknown",
            "could not tell",
            "failed 2 of 2 re-runs; not collected on main (added by this pull request, or renamed)",
            id="not collected at the base",
        ),
        pytest.param(
            [None, "missing"],
            "passed",
            "unknown",
            "could not tell",
            "the re-runs did not run it (not collected: renamed since?)",
            id="renamed per run: the re-runs cannot find it",
        ),
    ],
)
def test_a_failure_gets_its_label_from_its_reruns_and_the_base(
    reruns, at_base, verdict, label, reason
):
    checked = judge(TOY, reruns, at_base, base=MAIN)
    assert (checked.verdict, checked.label, checked.reason) == (verdict, label, reason)


def test_without_a_base_commit_a_confirmed_failure_is_not_called_new():
    checked = judge(TOY, ["failed", "failed"], None, base=Base("main", None, "branch"))
    assert checked.verdict == "unknown"
    assert checked.reason == "failed 2 of 2 re-runs; no base commit to run it at"


# --------------------------------------------------------------------------- what is checked


def test_each_failing_test_is_checked_once_per_machine_type_in_the_runs_order():
    found = failing_tests(
        [
            ("models/toy", "single-gpu", [TOY.test, OTHER.test, TOY.test]),
            ("models/toy", "multi-gpu", [TOY.test]),
        ]
    )
    assert found == [TOY, OTHER, MULTI]


def test_ten_thousand_failures_check_the_first_fifty():
    many = [Suspect(f"{FILE}::test_{i}", "models/toy", "single-gpu") for i in range(10_000)]
    chosen, unrunnable = choose(many, "local")
    assert chosen == tuple(many[:MAX_CHECKED]) and unrunnable == 0
    verification = Verification(CHECKING, chosen, 10_000, 2, MAIN)
    assert verification.left_out == 10_000 - MAX_CHECKED


@pytest.mark.parametrize(
    ("test", "runner", "runnable"),
    [
        pytest.param(f"{FILE}::test_x[a|b`c <x> @maint]", "local", True, id="odd characters"),
        pytest.param(f"{FILE}::test_x[a b]", "local", True, id="a space, locally"),
        pytest.param(f"{FILE}::test_x[a b]", "github-actions", False, id="a space, on Actions"),
        pytest.param(f"{FILE}::test_x[a\nb]", "local", False, id="a line break"),
        pytest.param(f"{FILE}::test_x[\x00]", "local", False, id="a NUL"),
        pytest.param("tests/models/other/test_a.py::test_x", "local", False, id="another folder"),
        pytest.param("tests/models/toy/../x/test_a.py::t", "local", False, id="a .. step"),
        pytest.param("models.toy.test_a", "local", False, id="not a node id"),
    ],
)
def test_only_node_ids_a_job_can_be_given_are_checked(test, runner, runnable):
    chosen, unrunnable = choose([Suspect(test, "models/toy", "single-gpu")], runner)
    assert (len(chosen), unrunnable) == ((1, 0) if runnable else (0, 1))


def test_the_reruns_are_a_job_per_folder_machine_and_copy_each_told_apart_on_actions():
    jobs = rerun_jobs(
        [TOY, OTHER, MULTI], 2, runner="github-actions", options={"ref": "main"}, key="k"
    )
    assert [(name, spec["tests"]) for name, spec in jobs] == [
        ("single-gpu_run_models_gpu_models_toy re-run 1", [TOY.test, OTHER.test]),
        ("single-gpu_run_models_gpu_models_toy re-run 2", [TOY.test, OTHER.test]),
        ("multi-gpu_run_models_gpu_models_toy re-run 1", [TOY.test]),
        ("multi-gpu_run_models_gpu_models_toy re-run 2", [TOY.test]),
    ]
    shared = {"run_id": "9", "repo": "acme/models", "head_clone_url": "/h", "head_sha": "a" * 40}
    requests = [
        RunRequest(job_id=str(i), **shared, **{k: v for k, v in spec.items() if k != "runner"})
        for i, (_, spec) in enumerate(jobs)
    ]
    correlations = {correlation_id(request) for request in requests}
    assert len(correlations) == len(jobs)  # the Actions runner finds each copy's workflow run
    assert all(spec["options"]["ref"] == "main" for _, spec in jobs)
    assert "options" not in rerun_jobs([TOY], 1, runner="local", options={}, key="k")[0][1]


def test_the_base_runs_a_job_per_file_and_skips_the_files_it_lacks():
    added = Suspect("tests/models/toy/test_new.py::test_z", "models/toy", "single-gpu")
    absent = ["tests/models/toy/test_new.py"]
    jobs = base_jobs([TOY, OTHER, added], absent, runner="local", options={}, key="k")
    assert [(name, spec["tests"]) for name, spec in jobs] == [
        ("tests/models/toy/test_a.py (single-gpu)", [TOY.test]),
        ("tests/models/toy/test_b.py (single-gpu)", [OTHER.test]),
    ]


# --------------------------------------------------------------------------- the answers


def test_a_job_that_reported_nothing_answers_for_none_of_its_tests():
    answers = [
        JobAnswer("single-gpu", (TOY.test, OTHER.test), {TOY.test: "failed"}),
        JobAnswer("single-gpu", (TOY.test, OTHER.test), {}),  # pytest found a node id missing
    ]
    assert outcomes_of(answers) == {
        (TOY.test, "single-gpu"): ["failed", None],
        (OTHER.test, "single-gpu"): ["missing", None],
    }


def test_the_checks_conclude_into_each_tests_verdict_and_survive_the_store():
    added = Suspect("tests/models/toy/test_new.py::test_z", "models/toy", "single-gpu")
    started = Verification(
        CHECKING, (TOY, OTHER, added), 3, 2, MAIN, rerun_run=5, base_run=6,
        absent=("tests/models/toy/test_new.py",),
    )  # fmt: skip
    reruns = {
        (TOY.test, "single-gpu"): ["failed", "failed"],
        (OTHER.test, "single-gpu"): ["failed", "passed"],
        (added.test, "single-gpu"): ["failed", "failed"],
    }
    at_base = {(TOY.test, "single-gpu"): ["failed"], (OTHER.test, "single-gpu"): ["passed"]}
    done = conclude(started, reruns, at_base)
    assert done.state == DONE
    assert [(r.suspect, r.label) for r in done.results] == [
        (TOY, "fails on the base too"),
        (OTHER, "flaky"),
        (added, "new"),
    ]
    assert done.counts() == {"new": 1, "pre-existing": 1, "flaky": 1}
    assert Verification.from_json(done.to_json()) == done
    assert Verification.from_json(started.to_json()) == started


# --------------------------------------------------------------------------- the setting


def test_reruns_default_to_two_and_zero_turns_the_checks_off():
    assert RepoConfig().slow_ci.reruns == DEFAULT_RERUNS == 2
    assert parse_repo_config("[slow_ci]\nreruns = 0\n").slow_ci.reruns == 0
    with pytest.raises(ConfigError, match=r"'slow_ci\.reruns' must be between 0 and 10, got 11"):
        parse_repo_config("[slow_ci]\nreruns = 11\n")
