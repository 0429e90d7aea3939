"""A run's report as one plan: "the rows say this -> the comment, status, check run and Slack say
that", including the superseded rule, and one result table for the comment and the check run."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from bot.jobs.records import FailedTest, JobRecord, RunRecord
from bot.jobs.runners.junit import TestResult
from handlers.slow_ci.plan import JobSpec, SelectedFolder, Selection
from handlers.slow_ci.report import (
    HEAD_MOVED,
    SUPERSEDED_DESCRIPTION,
    CommitStatus,
    Newer,
    ReportFacts,
    phase_of,
    plan_report,
)
from handlers.slow_ci.verdicts import CHECKING, DONE, Base, Suspect, Verification, judge

SHA = "a" * 40
URL = "https://bot.test/runs/12"
SELECTION = Selection((SelectedFolder("toy", "models/toy", "model", "listed"),))
SINGLE, MULTI = JobSpec("models/toy", "single-gpu"), JobSpec("models/toy", "multi-gpu")


def _run(state: str = "running", **changes: Any) -> RunRecord:
    run = RunRecord(
        id=12, kind="slow_ci", repo="acme/models", number=7, head_sha=SHA, base_ref="main",
        requested_by="maint", requested_at=0.0, state=state, reason=None,  # type: ignore[arg-type]
        spec={"selection": SELECTION.to_json(), "comments_url": "/c", "title": "Add toy",
              "html_url": "https://github.test/acme/models/pull/7", "channel": "#ci"},
        superseded_by=None, version=3, reported_version=2, created_at=0.0, started_at=None,
        finished_at=None, private=False, runner="local",
    )  # fmt: skip
    return replace(run, **changes)


def _job(spec: JobSpec, state: str = "queued", **changes: Any) -> JobRecord:
    job = JobRecord(
        id=hash(spec) % 1000, run_id=12, kind="slow_ci", name=spec.name,
        spec={"folder": spec.folder, "machine_type": spec.machine_type}, state=state,  # type: ignore[arg-type]
        attempts=1, passed=0, failed=0, skipped=0, errors=0, duration_s=None, busy_s=None,
        reason=None, failures=(), failed_tests=(), tested_sha=None, exit_code=None, timings={},
        created_at=0.0, started_at=None, finished_at=None,
    )  # fmt: skip
    return replace(job, **changes)


PASSED = _job(SINGLE, "passed", passed=3, skipped=1, duration_s=61.0)
FAILED = _job(
    MULTI,
    "failed",
    passed=2,
    failed=1,
    errors=1,
    duration_s=5.0,
    failures=(FailedTest("tests/models/toy/test_a.py::test_x", "AssertionError: why"),),
)
NO_GPU = _job(MULTI, "skipped", reason="no multi-GPU machine")


def _report(run: RunRecord, jobs: list[JobRecord], **facts: Any):
    return plan_report(ReportFacts(run, jobs, URL, **facts))


# --------------------------------------------------------------------------- per phase


@pytest.mark.parametrize(
    ("run", "jobs", "phase", "status", "check"),
    [
        pytest.param(
            _run("queued"),
            [_job(SINGLE), _job(MULTI)],
            "queued",
            CommitStatus("pending", "Slow CI job"),
            ("queued", None),
            id="queued",
        ),
        pytest.param(
            _run(),
            [_job(SINGLE, "running"), _job(MULTI)],
            "running",
            CommitStatus("pending", "Slow CI job"),
            ("in_progress", None),
            id="running",
        ),
        pytest.param(
            _run("finished"),
            [PASSED, NO_GPU],
            "finished",
            CommitStatus("success", "Slow CI job: 1 passed, 1 skipped"),
            ("completed", "success"),
            id="passed",
        ),
        pytest.param(
            _run("finished"),
            [PASSED, FAILED],
            "finished",
            CommitStatus("failure", "Slow CI job: 1 passed, 1 failed"),
            ("completed", "failure"),
            id="failed",
        ),
        pytest.param(
            _run("error", reason="checkout failed"),
            [_job(SINGLE, "cancelled")],
            "error",
            CommitStatus("error", "Slow CI job: could not run: checkout failed"),
            ("completed", "failure"),
            id="could not run",
        ),
        pytest.param(
            _run("finished"),
            [_job(SINGLE, "error", reason=f"{HEAD_MOVED}: the PR is at c0ffee")],
            "error",
            CommitStatus("error", "Slow CI job: could not run: head moved: the PR is at c0ffee"),
            ("completed", "failure"),
            id="the head moved",
        ),
        pytest.param(
            _run("cancelled", reason="stopped by alice"),
            [_job(SINGLE, "cancelled")],
            "error",
            CommitStatus("error", "Slow CI job: could not run: stopped by alice"),
            ("completed", "failure"),
            id="cancelled by hand",
        ),
    ],
)
def test_each_phase_has_its_status_and_check_run(run, jobs, phase, status, check):
    assert phase_of(run, jobs)[0] == phase
    plan = _report(run, jobs, queue_position=2)
    assert plan.status == status
    assert (plan.check.status, plan.check.conclusion) == check
    assert plan.comment.startswith("<!-- maintainer-bot:slow_ci:run:12 -->\n")


def test_a_queued_run_says_its_place_and_how_long_past_runs_took():
    jobs = [_job(SINGLE), _job(MULTI)]
    past = {SINGLE.name: [240.0, 180.0, 300.0], MULTI.name: [240.0]}  # medians: 4 min a job
    plan = _report(_run("queued"), jobs, queue_position=3, past_durations=past)
    assert "position 3" in plan.comment and "took about 8 min" in plan.comment
    assert _table(plan.comment)[-1] == "| **total** | | | – | – | – | – | – |"
    assert plan.check.title == "Queued, position 3"


def test_a_finished_run_annotates_its_failing_tests():
    test = TestResult(
        "tests/models/toy/test_a.py::test_x", "failed", location="tests/models/toy/test_a.py:4"
    )
    plan = _report(_run("finished"), [PASSED, FAILED], tests={MULTI: [test]})
    (annotation,) = plan.check.annotations
    assert (annotation.path, annotation.line) == ("tests/models/toy/test_a.py", 4)


# --------------------------------------------------------------------------- superseded


def test_a_run_superseded_on_the_same_commit_leaves_the_status_to_the_newer_run():
    run = _run("cancelled", superseded_by=13)
    plan = _report(run, [_job(SINGLE, "cancelled")], newer=Newer("https://bot.test/runs/13", SHA))
    assert plan.status is None
    assert (plan.check.status, plan.check.conclusion) == ("completed", "cancelled")
    assert "**Superseded**" in plan.comment and "(https://bot.test/runs/13)" in plan.comment
    assert plan.slack is None


@pytest.mark.parametrize(
    "newer",
    [
        pytest.param(Newer("https://bot.test/runs/13", "b" * 40), id="on a newer commit"),
        pytest.param(Newer("https://bot.test/runs/13", None), id="the newer run is gone"),
    ],
)
def test_a_run_superseded_on_an_older_commit_ends_its_status(newer):
    plan = _report(_run("cancelled", superseded_by=13), [_job(SINGLE, "cancelled")], newer=newer)
    assert plan.status == CommitStatus("error", SUPERSEDED_DESCRIPTION)


# --------------------------------------------------------------------------- Slack


def test_slack_hears_of_a_run_once_it_ended():
    plan = _report(_run("finished"), [PASSED, FAILED])
    assert plan.slack is not None and plan.slack["channel"] == "#ci"
    assert "run-slow failed on acme/models#7" in plan.slack["text"]
    assert _report(_run(), [PASSED, _job(MULTI, "running")]).slack is None
    no_channel = _run("finished", spec={**_run().spec, "channel": ""})
    assert _report(no_channel, [PASSED, FAILED]).slack is None


# --------------------------------------------------------------------------- one table


def _table(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


@pytest.mark.parametrize(
    "jobs",
    [
        pytest.param([_job(SINGLE), _job(MULTI)], id="queued"),
        pytest.param([_job(SINGLE, "running"), NO_GPU], id="running"),
        pytest.param([PASSED, FAILED], id="finished"),
        pytest.param(
            [_job(SINGLE, "error", reason="the JUnit report is missing", duration_s=3.0), NO_GPU],
            id="no report",
        ),
        pytest.param(
            [_job(SINGLE, "skipped", skipped=4, reason="all 4 tests skipped", duration_s=2.0)],
            id="every test skipped",
        ),
    ],
)
def test_the_comment_and_the_check_run_show_the_same_table(jobs):
    state = "finished" if all(job.state not in ("queued", "running") for job in jobs) else "running"
    plan = _report(_run(state), jobs, queue_position=1)
    comment = _table(plan.comment)
    assert comment and comment == _table(plan.check.summary)


def test_a_job_counts_its_tests_only_where_its_report_counted_some():
    jobs = [
        PASSED,
        FAILED,
        _job(JobSpec("models/gpt2", "single-gpu"), "error", reason="no JUnit", duration_s=3.0),
        _job(JobSpec("models/gpt2", "multi-gpu"), "skipped", reason="no multi-GPU machine"),
    ]
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in _table(_report(_run("finished"), jobs).comment)[2:]
    ]
    assert rows[0][3:] == ["3", "0", "0", "1", "1 min 1 s"]
    assert rows[1][3:] == ["2", "1", "1", "0", "5 s"]
    assert rows[2][3:] == ["–", "–", "–", "–", "3 s"]  # no report: nothing counted, not zeros
    assert rows[3][3:] == ["–"] * 5
    assert rows[4][0] == "**total**" and rows[4][3:] == ["5", "1", "1", "1", "1 min 9 s"]


# --------------------------------------------------------------------------- checked failures

TEST = "tests/models/toy/test_a.py::test_x"
ODD = "tests/models/toy/test_a.py::test_x[a|b`c <img src=x> @maint]"
MAIN = Base("main", "b" * 40, "merge")
CHECK_URLS = {21: "https://bot.test/runs/21", 22: "https://bot.test/runs/22"}


def _suspect(test: str = TEST) -> Suspect:
    return Suspect(test, "models/toy", "multi-gpu")


def _checking(*tests: str, failing: int | None = None) -> Verification:
    suspects = tuple(_suspect(t) for t in tests or (TEST,))
    count = len(suspects) if failing is None else failing
    return Verification(CHECKING, suspects, count, 2, MAIN, rerun_run=21, base_run=22)


def _checked(*verdicts: tuple[str, str, tuple[str, ...], str | None]) -> Verification:
    started = _checking(*(test for test, *_ in verdicts))
    results = tuple(
        judge(_suspect(test), reruns, at_base, base=MAIN) for test, _, reruns, at_base in verdicts
    )
    assert [r.verdict for r in results] == [verdict for _, verdict, *_ in verdicts]
    return replace(started, state=DONE, results=results)


def _finished(verification: Verification | None):
    return _report(
        _run("finished"), [PASSED, FAILED], verification=verification, check_urls=CHECK_URLS
    )


def test_the_end_of_a_failed_run_says_its_failures_are_being_checked():
    plan = _finished(_checking(TEST, "tests/models/toy/test_a.py::test_y", ODD))
    assert "**Finished, failed**" in plan.comment
    assert (
        "**Checking the failures**: re-running 3 failing tests 2 times on this commit and running"
        " them at `bbbbbbbbbbbb` on `main`." in plan.comment
    )
    assert "[the re-runs](https://bot.test/runs/21)" in plan.comment
    assert "[the run on the base](https://bot.test/runs/22)" in plan.comment
    assert (
        plan.check.title == "Failed: 1 failed, 1 error, 5 passed, 1 skipped · checking the failures"
    )
    assert "**Checking the failures**" in plan.check.summary
    assert plan.status == CommitStatus("failure", "Slow CI job: 1 passed, 1 failed")
    assert (plan.check.status, plan.check.conclusion) == ("completed", "failure")


@pytest.mark.parametrize(
    ("verdict", "reruns", "at_base", "row"),
    [
        pytest.param(
            "new", ("failed", "failed"), "passed",
            "| **new** | failed 2 of 2 re-runs; passes on main |", id="new",
        ),
        pytest.param(
            "pre-existing", ("failed", "failed"), "failed",
            "| fails on the base too | failed 2 of 2 re-runs; fails on main too |",
            id="fails on the base too",
        ),
        pytest.param(
            "flaky", ("passed", "failed"), "passed", "| flaky | passed 1 of 2 re-runs |",
            id="flaky",
        ),
        pytest.param(
            "unknown", ("missing", "missing"), "passed",
            "| could not tell | the re-runs did not run it (not collected: renamed since?) |",
            id="could not tell",
        ),
    ],
)  # fmt: skip
def test_each_checked_failure_shows_its_label_beside_it_with_its_evidence(
    verdict, reruns, at_base, row
):
    plan = _finished(_checked((TEST, verdict, reruns, at_base)))
    (line,) = [line for line in plan.comment.splitlines() if line.startswith(f"| `{TEST}`")]
    assert line == (
        f"| `{TEST}` | `multi-gpu` {row} [the re-runs](https://bot.test/runs/21) ·"
        " [the run on the base](https://bot.test/runs/22) |"
    )
    assert line in plan.check.summary
    assert "Checking the failures" not in plan.comment
    assert plan.status == CommitStatus("failure", "Slow CI job: 1 passed, 1 failed")
    assert plan.check.conclusion == "failure"


def test_the_labels_are_counted_in_the_comment_and_the_check_runs_title():
    plan = _finished(
        _checked(
            (TEST, "new", ("failed", "failed"), "passed"),
            (f"{TEST}2", "flaky", ("failed", "passed"), "failed"),
            (f"{TEST}3", "pre-existing", ("failed", "failed"), "failed"),
        )
    )
    assert (
        "**The failures, checked** (2 re-runs of each on this commit, one run at `bbbbbbbbbbbb`"
        " on `main`): 1 new, 1 fails on the base too, 1 flaky." in plan.comment
    )
    assert plan.check.title.endswith(" · 1 new, 1 fails on the base too, 1 flaky")
    assert "A flaky failure still failed" in plan.comment


def test_flaky_failures_alone_leave_the_status_failed_and_say_so():
    plan = _finished(_checked((TEST, "flaky", ("passed", "passed"), "passed")))
    assert "Every failure passed on a re-run, so they look flaky; the run still failed" in (
        plan.comment
    )
    assert plan.status is not None and plan.status.state == "failure"
    assert plan.check.conclusion == "failure"


def test_a_test_whose_file_the_base_lacks_links_only_its_reruns():
    plan = _finished(_checked((TEST, "new", ("failed", "failed"), "absent")))
    (line,) = [line for line in plan.comment.splitlines() if line.startswith(f"| `{TEST}`")]
    assert line.endswith("this pull request adds it | [the re-runs](https://bot.test/runs/21) |")


def test_a_hostile_node_id_stays_one_inert_cell():
    plan = _finished(_checked((ODD, "new", ("failed", "failed"), "passed")))
    (line,) = [line for line in plan.comment.splitlines() if "img src" in line]
    assert line.startswith(
        "| `` tests/models/toy/test_a.py::test_x[a\\|b`c <img src=x> @maint] `` |"
    )
    cells = re.split(r"(?<!\\)\|", line.strip("|"))
    assert len(cells) == 5


def test_ten_thousand_failures_say_how_many_were_left_unchecked():
    tests = [f"{TEST}[{i}]" for i in range(50)]
    plan = _finished(_checking(*tests, failing=10_000))
    assert "re-running the first 50 of 10000 failing tests 2 times" in plan.comment
    assert "9950 more failing tests are not checked: this bot checks the first 50" in plan.comment


def test_checks_that_could_not_start_say_why_and_nothing_else():
    refused = Verification(DONE, (_suspect(),), 1, 2, MAIN, error="no runner named 'local'")
    plan = _finished(refused)
    assert "**The failures were not checked**: no runner named 'local'." in plan.comment
    assert plan.check.title == "Failed: 1 failed, 1 error, 5 passed, 1 skipped"


def test_a_run_that_did_not_finish_shows_no_checks():
    plan = _report(_run(), [PASSED, _job(MULTI, "running")], verification=_checking())
    assert "Checking" not in plan.comment and "Checking" not in plan.check.summary
