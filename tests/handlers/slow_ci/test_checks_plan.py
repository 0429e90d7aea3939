"""A run's check run as data: status and conclusion per phase, the result table, annotations at
the right file and line, batches of fifty, the cap; how a `check_run` delivery is routed, and
how the handler tells a check run of its own and a refusal from other answers."""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from types import SimpleNamespace

import gidgethub
import pytest
from gidgethub.sansio import RateLimit

from bot.clients.github import checks_refused
from bot.jobs.records import ReportState
from bot.jobs.runners.junit import TestResult
from bot.server.intake import shape_problem
from bot.server.worker import _pool, ordering_key
from bot.store.deliveries import Delivery
from handlers.slow_ci.checks import (
    ACTION_LIMITS,
    ANNOTATIONS_PER_REQUEST,
    CHECK_NAME,
    MAX_ANNOTATIONS,
    OUTPUT_CHARS,
    RERUN_FAILED,
    RERUN_FAILED_ACTION,
    Annotation,
    _fit,
    failure_location,
    plan_check_run,
    repo_path,
)
from handlers.slow_ci.handler import _run_of_check
from handlers.slow_ci.plan import (
    DroppedName,
    Failure,
    JobResult,
    JobSpec,
    SelectedFolder,
    Selection,
)

SHA = "c0ffee" + "0" * 34
RUN_URL = "http://bot.test/runs/12"
BERT = JobSpec("models/bert", "single-gpu")
BERT_MULTI = JobSpec("models/bert", "multi-gpu")
GPT2 = JobSpec("models/gpt2", "single-gpu")
SELECTION = Selection(
    (
        SelectedFolder("bert", "models/bert", "model", "listed"),
        SelectedFolder("gpt2", "models/gpt2", "model", "listed"),
    ),
    (DroppedName("nope", "no tests/models/nope"),),
)
JOBS = (BERT, BERT_MULTI, GPT2)


def failing(node_id: str, **fields: object) -> TestResult:
    return TestResult(node_id, "failed", **fields)  # type: ignore[arg-type]


def finished(*results: JobResult, tests=None, **kw):
    return plan_check_run(
        phase="finished",
        selection=SELECTION,
        run_url=RUN_URL,
        jobs=JOBS,
        results=results,
        tests=tests,
        sha=SHA,
        **kw,
    )


PASSED = (
    JobResult(BERT, "passed", passed=7, skipped=1, duration=61.0),
    JobResult(BERT_MULTI, "skipped", reason="no multi-GPU machine"),
    JobResult(GPT2, "passed", passed=3, duration=5.0),
)
FAILED = (
    JobResult(
        BERT,
        "failed",
        passed=5,
        failed=2,
        errors=1,
        skipped=1,
        duration=61.0,
        failures=(Failure("tests/models/bert/test_a.py::test_x", "assert 1 == 2"),),
    ),
    JobResult(BERT_MULTI, "skipped", reason="no multi-GPU machine"),
    JobResult(GPT2, "passed", passed=3, duration=5.0),
)


# --------------------------------------------------------------------------- status, conclusion


@pytest.mark.parametrize(
    ("phase", "results", "extra", "status", "conclusion"),
    [
        ("started", (), {}, "queued", None),
        ("queued", (), {"queue_position": 3}, "queued", None),
        ("running", (JobResult(BERT, "running"),), {}, "in_progress", None),
        ("finished", PASSED, {}, "completed", "success"),
        ("finished", FAILED, {}, "completed", "failure"),
        ("finished", (JobResult(BERT, "timed_out"),), {}, "completed", "failure"),
        ("superseded", (JobResult(BERT, "cancelled"),), {}, "completed", "cancelled"),
        ("error", (), {"error": "head moved: the PR is at abc"}, "completed", "failure"),
    ],
)
def test_each_phase_has_its_status_and_conclusion(phase, results, extra, status, conclusion):
    plan = plan_check_run(
        phase=phase, selection=SELECTION, run_url=RUN_URL, jobs=JOBS, results=results, **extra
    )
    assert (plan.status, plan.conclusion) == (status, conclusion)
    body = plan.body()
    assert body["status"] == status
    assert body.get("conclusion") == conclusion


def test_all_jobs_skipped_is_a_success_as_the_commit_status_says():
    skipped = tuple(JobResult(job, "skipped", reason="no machine") for job in JOBS)
    assert finished(*skipped).conclusion == "success"


def test_an_error_needs_its_reason():
    with pytest.raises(ValueError, match="reason"):
        plan_check_run(phase="error", selection=SELECTION, run_url=RUN_URL)


def test_titles_say_where_the_run_stands():
    queued = plan_check_run(phase="queued", selection=SELECTION, run_url=RUN_URL, jobs=JOBS)
    assert queued.title == "Queued"
    running = plan_check_run(
        phase="running",
        selection=SELECTION,
        run_url=RUN_URL,
        jobs=JOBS,
        results=(JobResult(BERT, "passed", passed=1), JobResult(GPT2, "running")),
    )
    assert running.title == "Running: 1 of 3 jobs done"
    assert finished(*PASSED).title == "Passed: 10 passed, 1 skipped"
    assert finished(*FAILED).title == "Failed: 2 failed, 1 error, 8 passed, 1 skipped"
    error = plan_check_run(
        phase="error", selection=SELECTION, run_url=RUN_URL, error="x\n" + "y" * 500
    )
    assert error.title.startswith("Could not run: x y") and len(error.title) <= 200


def test_the_button_only_on_a_finished_run_that_failed():
    assert finished(*FAILED).actions == (RERUN_FAILED_ACTION,)
    assert finished(*FAILED).body()["actions"][0]["identifier"] == RERUN_FAILED
    assert finished(*PASSED).actions == ()
    assert finished(*PASSED).body()["actions"] == []  # an update takes an old button away
    superseded = plan_check_run(
        phase="superseded", selection=SELECTION, run_url=RUN_URL, results=FAILED
    )
    assert superseded.actions == ()


def test_the_button_fits_githubs_limits():
    assert ACTION_LIMITS == {"label": 20, "description": 40, "identifier": 20}
    for key, limit in ACTION_LIMITS.items():
        assert len(RERUN_FAILED_ACTION[key]) <= limit


# --------------------------------------------------------------------------- the table


def _cells(summary: str, folder: str, machine: str) -> list[str]:
    for line in summary.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[:2] == [f"`{folder}`", f"`{machine}`"]:
            return cells
    raise AssertionError(summary)


def test_the_summary_table_has_each_jobs_folder_machine_state_counts_and_duration():
    plan = finished(*FAILED)
    bert = _cells(plan.summary, "models/bert", "single-gpu")
    assert bert == ["`models/bert`", "`single-gpu`", "❌ failed", "5", "2", "1", "1", "1 min 1 s"]
    multi = _cells(plan.summary, "models/bert", "multi-gpu")
    assert multi[2] == "⏭️ skipped: no multi-GPU machine" and multi[3:] == ["–"] * 5
    total = next(line for line in plan.summary.splitlines() if line.startswith("| **total**"))
    assert [c.strip() for c in total.strip("|").split("|")][3:] == [
        "8",
        "2",
        "1",
        "1",
        "1 min 6 s",
    ]
    assert f"[the run's page]({RUN_URL})" in plan.summary
    assert "`c0ffee000000`" in plan.summary


def test_the_text_has_the_selection_notes_and_the_first_failures():
    text = finished(*FAILED).text
    assert "- models: `models/bert`, `models/gpt2`" in text
    assert "`nope`: no tests/models/nope" in text
    assert "tests/models/bert/test_a.py::test_x [single-gpu]" in text
    assert "assert 1 == 2" in text


def test_the_failed_only_scope_is_said():
    assert "only the jobs that failed" in finished(*FAILED, failed_only=True).summary


def test_hostile_names_and_reasons_stay_inert_in_markdown():
    node = "tests/models/bert/test_a.py::test_x[`|<script>alert(1)</script>|@admin]"
    results = (
        JobResult(
            BERT,
            "error",
            reason="runner said <img src=x> | **bold** @team",
            failures=(Failure(node, "``` end the fence"),),
        ),
    )
    plan = finished(*results, tests={BERT: [failing(node, location="tests/x.py:1")]})
    assert "<script>" not in plan.summary and "<img" not in plan.summary
    assert "@\u200bteam" in plan.summary and "\\*\\*bold" in plan.summary
    row = next(line for line in plan.summary.splitlines() if "models/bert" in line)
    assert row.count(" | ") == 7  # the reason's `|` is escaped, not a new cell
    fence = next(line for line in plan.text.splitlines() if line.startswith("```"))
    assert len(fence) > 3  # longer than the backticks in the failure, so they cannot close it
    (annotation,) = plan.annotations
    assert annotation.title == node  # plain text in GitHub's annotation, never markdown


# --------------------------------------------------------------------------- where annotations go


@pytest.mark.parametrize(
    ("test", "where"),
    [
        (
            failing("tests/a/test_x.py::t", location="tests/a/test_x.py:12"),
            ("tests/a/test_x.py", 12),
        ),
        (
            failing("tests/a/test_x.py::t", location="model_lib/models/a/modeling_a.py:40"),
            ("model_lib/models/a/modeling_a.py", 40),
        ),
        (
            failing("tests/a/test_x.py::t", location="./tests/a/test_x.py:3"),
            ("tests/a/test_x.py", 3),
        ),
        (
            failing(
                "tests/a/test_x.py::t",
                location="/usr/lib/python3/site-packages/torch/nn/functional.py:99",
                traceback=(
                    "tests/a/test_x.py:7: in t\n    f()\n"
                    "model_lib/models/a/modeling_a.py:21: in f\n    torch.x()\n"
                    "/usr/lib/python3/site-packages/torch/nn/functional.py:99: RuntimeError"
                ),
            ),
            ("model_lib/models/a/modeling_a.py", 21),
        ),
        (
            failing(
                "tests/a/test_x.py::t",
                location="../.venv/lib/site-packages/x.py:5",
                traceback="tests/a/test_x.py:9: in t\n../.venv/lib/site-packages/x.py:5: Error",
            ),
            ("tests/a/test_x.py", 9),
        ),
        (
            failing("tests/a/test_x.py::t", traceback="E   ValueError: bad x.py:3: here"),
            ("tests/a/test_x.py", 1),  # an `E` line quoting a path is not a frame
        ),
        (failing("tests/a/test_x.py::T::t[1-2]"), ("tests/a/test_x.py", 1)),
        (failing("tests/a/test_x.py::t", location="tests/a/test_x.py:0"), ("tests/a/test_x.py", 1)),
        (failing("tests.a.test_x"), None),
        (failing("/abs/tests/a/test_x.py::t"), None),
    ],
)
def test_a_failure_is_placed_in_the_repository(test, where):
    assert failure_location(test) == where


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "~/x.py", "C:/x.py", "a\\b.py", "a/../../b.py", "..", "a/\x00b.py", "."],
)
def test_paths_outside_the_repository_are_refused(path):
    assert repo_path(path) is None


def test_paths_are_normalised():
    assert repo_path(" ./tests//a/./b.py ") == "tests/a/b.py"


def test_an_annotation_says_what_failed_where_and_on_which_machine():
    test = failing(
        "tests/models/bert/test_a.py::test_x",
        message="AssertionError: nope",
        assertion="assert 1 == 2",
        location="tests/models/bert/test_a.py:12",
        traceback="x" * 10_000,
    )
    plan = finished(*FAILED, tests={BERT: [test, TestResult("tests/p.py::ok", "passed")]})
    (annotation,) = plan.annotations
    shape = annotation.as_json()
    assert shape["path"] == "tests/models/bert/test_a.py"
    assert (shape["start_line"], shape["end_line"]) == (12, 12)
    assert shape["annotation_level"] == "failure"
    assert shape["title"] == "tests/models/bert/test_a.py::test_x"
    assert shape["message"] == "AssertionError: nope\nassert 1 == 2\n\non single-gpu"
    assert shape["raw_details"].startswith("…") and len(shape["raw_details"]) <= 8000
    assert "1 failing test: 1 annotated" in plan.summary


def test_annotations_come_only_with_a_finished_run():
    test = failing("tests/a/test_x.py::t", location="tests/a/test_x.py:2")
    running = plan_check_run(
        phase="running",
        selection=SELECTION,
        run_url=RUN_URL,
        results=(JobResult(BERT, "failed", failed=1),),
        tests={BERT: [test]},
    )
    assert running.annotations == ()


# --------------------------------------------------------------------------- batches and the cap


def _many(n: int, job: JobSpec = BERT) -> dict[JobSpec, list[TestResult]]:
    return {
        job: [
            failing(f"tests/a/test_x.py::t[{i}]", location="tests/a/test_x.py:2") for i in range(n)
        ]
    }


def test_annotations_go_fifty_a_request_and_only_the_unsent_ones():
    plan = finished(*FAILED, tests=_many(120))
    assert [len(b) for b in plan.batches()] == [50, 50, 20]
    assert [len(b) for b in plan.batches(sent=50)] == [50, 20]
    assert plan.batches(sent=120) == []
    assert [a.title for b in plan.batches() for a in b] == [a.title for a in plan.annotations]
    body = plan.body(plan.batches()[0])
    assert len(body["output"]["annotations"]) == ANNOTATIONS_PER_REQUEST
    with pytest.raises(ValueError, match="50"):
        plan.output(plan.annotations[:51])
    with pytest.raises(ValueError, match="negative"):
        plan.batches(sent=-1)


def test_past_the_cap_the_summary_says_how_many_were_left_out():
    plan = finished(*FAILED, tests=_many(MAX_ANNOTATIONS + 37))
    assert len(plan.annotations) == MAX_ANNOTATIONS
    assert plan.left_out == 37
    assert f"{MAX_ANNOTATIONS + 37} failing tests: {MAX_ANNOTATIONS} annotated" in plan.summary
    assert f"37 left out, past this bot's cap of {MAX_ANNOTATIONS}" in plan.summary


def test_failures_with_no_file_are_counted_not_annotated():
    tests = {BERT: [failing("tests.a.test_x"), failing("tests/a.py::t", location="tests/a.py:3")]}
    plan = finished(*FAILED, tests=tests)
    assert [a.path for a in plan.annotations] == ["tests/a.py"]
    assert "1 with no file of this repository to point at" in plan.summary


def test_both_machines_failures_are_annotated_in_job_order():
    results = (
        JobResult(BERT, "failed", failed=1),
        JobResult(BERT_MULTI, "failed", failed=1),
        JobResult(GPT2, "passed", passed=1),
    )
    tests = {**_many(1, BERT_MULTI), **_many(1, BERT)}
    messages = [a.message for a in finished(*results, tests=tests).annotations]
    assert [m.rsplit(" ", 1)[-1] for m in messages] == ["single-gpu", "multi-gpu"]


# --------------------------------------------------------------------------- the requests


def test_creation_names_the_check_run_and_links_the_run_page():
    plan = finished(*FAILED)
    body = plan.create_body(head_sha=SHA, external_id="12", details_url=RUN_URL)
    assert (body["name"], body["head_sha"], body["external_id"]) == (CHECK_NAME, SHA, "12")
    assert body["details_url"] == RUN_URL
    assert body["output"]["title"] and body["output"]["summary"] and body["output"]["text"]
    relative = plan.create_body(head_sha=SHA, external_id="12", details_url="/runs/12")
    assert "details_url" not in relative  # GitHub takes only an absolute URL


def test_a_conclusion_comes_only_with_completed():
    with pytest.raises(ValueError, match="conclusion"):
        type(finished(*FAILED))(status="in_progress", conclusion="failure", title="t", summary="s")


def test_the_output_stays_within_githubs_limit():
    long = "| row |\n" * 20_000
    cut = _fit(long)
    assert len(cut) <= OUTPUT_CHARS
    assert cut.endswith("(cut here: the run's page has everything)\n")
    assert "| row |\n\n" in cut  # cut at the end of a line


def test_an_annotation_without_details_leaves_them_out():
    assert "raw_details" not in Annotation("a.py", 1, "t", "m").as_json()


# --------------------------------------------------------------------------- the delivery


def _delivery(action: str, check_run: object) -> tuple[Delivery, dict]:
    data = {
        "action": action,
        "check_run": check_run,
        "repository": {"full_name": "o/r"},
        "sender": {"login": "maint", "type": "User"},
    }
    body = json.dumps(data).encode()
    return Delivery("d1", "check_run", {}, body, action=action, repo="o/r"), data


def test_a_click_waits_behind_the_other_deliveries_of_its_pull_request():
    delivery, data = _delivery("requested_action", {"pull_requests": [{"number": 7}]})
    assert ordering_key(delivery, data) == "o/r#7"
    fork, data = _delivery("requested_action", {"pull_requests": []})
    assert ordering_key(fork, data) == "d1"  # a fork's commit names no pull request
    broken, data = _delivery("requested_action", "not an object")
    assert ordering_key(broken, data) == "d1"


def test_a_click_is_a_command_and_other_check_run_events_are_not():
    assert _pool(_delivery("requested_action", {})[0]) == "commands"
    assert _pool(_delivery("completed", {})[0]) == "events"


def test_a_check_run_payload_is_shape_checked():
    check = {"id": 1, "head_sha": SHA, "external_id": None, "pull_requests": []}
    _, data = _delivery("requested_action", check)
    assert shape_problem("check_run", {**data, "requested_action": {"identifier": "x"}}) is None
    assert shape_problem("check_run", {**data, "check_run": {**check, "id": "1"}}) == (
        "check_run.id is a string, expected a number"
    )
    assert "requested_action.identifier" in (
        shape_problem("check_run", {**data, "requested_action": {"identifier": 3}}) or ""
    )
    assert shape_problem("check_run", {**data, "check_run": None}) == (
        "check_run is null, expected an object"
    )


class _Jobs:
    def __init__(self, run: object, check_run_id: int | None) -> None:
        self.run = run
        self.check_run_id = check_run_id

    async def get_run(self, run_id: int) -> object:
        return self.run if run_id == 12 else None

    async def report_state(self, run_id: int) -> ReportState:
        assert run_id == 12
        return ReportState(comment_id=3, check_run_id=self.check_run_id)


def _ctx(run: object, app_id: str | None, check_run_id: int | None = 5) -> object:
    return SimpleNamespace(
        repo="o/r",
        services=SimpleNamespace(jobs=_Jobs(run, check_run_id)),
        settings=SimpleNamespace(github_app_id=app_id),
    )


async def test_only_a_check_run_the_bot_made_for_its_run_is_the_bots():
    run = SimpleNamespace(id=12, kind="slow_ci", repo="O/R", number=7, head_sha=SHA, spec={})
    check = {"id": 5, "head_sha": SHA, "external_id": "12", "app": {"id": 42}}
    assert await _run_of_check(_ctx(run, "42"), check) is run
    assert await _run_of_check(_ctx(run, "42"), {**check, "app": {"id": 15368}}) is None
    assert await _run_of_check(_ctx(run, None), {**check, "app": {"id": 15368}}) is run
    for other in (
        {"external_id": None},
        {"external_id": "x12"},
        {"external_id": "١٢"},  # digits, not ASCII ones
        {"external_id": "13"},  # no such run
        {"id": 6},  # the run's check run is another one
        {"head_sha": "d" * 40},
    ):
        assert await _run_of_check(_ctx(run, None), {**check, **other}) is None, other
    style = SimpleNamespace(**{**vars(run), "kind": "style"})
    assert await _run_of_check(_ctx(style, None), check) is None
    refused = _ctx(run, None, check_run_id=0)  # GitHub refused check runs: none is the bot's
    assert await _run_of_check(refused, {**check, "id": 0}) is None
    unknown = _ctx(run, None, check_run_id=None)  # the run's memory names no check run yet
    assert await _run_of_check(unknown, check) is None


def test_a_refusal_is_a_403_or_404_that_is_not_a_rate_limit():
    def answer(status: int, **kw: object) -> gidgethub.HTTPException:
        return gidgethub.BadRequest(HTTPStatus(status), "GitHub's message", **kw)  # type: ignore[arg-type]

    assert checks_refused(answer(403))  # "Resource not accessible by personal access token"
    assert checks_refused(answer(404))
    assert not checks_refused(answer(422))
    assert not checks_refused(gidgethub.GitHubBroken(HTTPStatus(502)))
    assert not checks_refused(answer(403, headers={"Retry-After": "60"}))  # a secondary limit
    limit = RateLimit(limit=5000, remaining=0, reset_epoch=time.time() + 60)
    assert not checks_refused(gidgethub.RateLimitExceeded(limit))
