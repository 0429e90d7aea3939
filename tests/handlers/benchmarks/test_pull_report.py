"""What a pull request is told of its benchmark run, planned from the rows alone: the check
run's conclusion in every state, the side that could not be measured, and limits."""

from __future__ import annotations

import json

import pytest

from bot.jobs.records import JobRecord, RunRecord
from handlers.benchmarks.pull_report import OUTPUT_CHARS, machine_results, plan_pull_report

HEAD, BASE = "a" * 40, "b" * 40
URL = "https://bot.example/runs/7"


def run(state: str = "finished", **spec: object) -> RunRecord:
    return RunRecord(
        id=7, kind="benchmarks", repo="acme/models", number=3, head_sha=HEAD, base_ref="main",
        requested_by="maint", requested_at=0.0, state=state, reason=None,
        spec={"base_sha": BASE, "base_ref": "main", "threshold": 0.05,
              "request": {"repeats": 3}, **spec},
        superseded_by=None, version=1, reported_version=0, created_at=0.0, started_at=0.0,
        finished_at=None, private=False, runner="local",
    )  # fmt: skip


def job(
    side: str,
    values: list[float] | None,
    *,
    state: str = "passed",
    machine: str = "single-gpu",
    reason: str = "",
    name: str = "latency",
) -> JobRecord:
    outputs = None
    if values is not None:
        outputs = [json.dumps([{"name": name, "unit": "ms", "value": v}]) for v in values]
    return JobRecord(
        id=1, run_id=7, kind="benchmarks", name=f"{side} · {machine}",
        spec={"machine_type": machine, "side": side}, state=state, attempts=1, passed=0,
        failed=0, skipped=0, errors=0, duration_s=1.0, busy_s=None, reason=reason, failures=(),
        failed_tests=(), tested_sha=HEAD if side == "head" else BASE, exit_code=0, timings={},
        created_at=0.0, started_at=0.0, finished_at=1.0,
        result=None if outputs is None else {"outputs": outputs},
    )  # fmt: skip


SAME = [10.0, 10.1, 9.9]
SLOWER = [25.0, 25.1, 24.9]
FASTER = [5.0, 5.1, 4.9]
BROKEN = "the command exited 1; its output began:\nTraceback\nValueError: boom"


@pytest.mark.parametrize(
    ("base", "head", "fail_on_regression", "conclusion", "title"),
    [
        (job("base", SAME), job("head", SAME), False, "success", "no metric slower"),
        (job("base", SAME), job("head", FASTER), False, "success", "no metric slower, 1 faster"),
        (job("base", SAME), job("head", SLOWER), False, "neutral", "1 metric slower"),
        (job("base", SAME), job("head", SLOWER), True, "failure", "1 metric slower"),
        (
            job("base", SAME),
            job("head", None, state="error", reason=BROKEN),
            False,
            "failure",
            "the head could not be measured",
        ),
        (
            job("base", None, state="error", reason=BROKEN),
            job("head", SAME),
            False,
            "neutral",
            "the base could not be measured",
        ),
        (
            job("base", None, state="timed_out", reason="timed out"),
            job("head", None, state="error", reason=BROKEN),
            True,
            "failure",
            "the head could not be measured",
        ),
    ],
)
def test_the_conclusion_adds_up_the_verdicts(base, head, fail_on_regression, conclusion, title):
    plan = plan_pull_report(run(fail_on_regression=fail_on_regression), [head, base], run_url=URL)
    assert (plan.check["status"], plan.check["conclusion"]) == ("completed", conclusion)
    assert plan.check["output"]["title"] == title
    assert plan.conclusion == conclusion


def test_a_regression_is_named_for_the_record_and_shown_in_the_table():
    plan = plan_pull_report(run(), [job("head", SLOWER), job("base", SAME)], run_url=URL)
    assert plan.regressed == {("single-gpu", "latency")}
    assert "| latency | ms | 10 ± 0.1 (n=3) | 25 ± 0.1 (n=3) | 2.500 | slower |" in plan.comment
    assert f"[run 7]({URL})" in plan.comment


def test_a_side_that_could_not_be_measured_says_why_in_a_code_block_never_zero():
    plan = plan_pull_report(
        run(), [job("head", None, state="error", reason=BROKEN), job("base", SAME)], run_url=URL
    )
    assert (
        "The head could not be measured:\n\n```\nthe job ended error: the command exited 1"
        in plan.comment
    )
    assert "ValueError: boom\n```" in plan.comment
    assert "| 0" not in plan.comment and plan.regressed == frozenset()


def test_while_a_side_runs_the_check_is_in_progress_with_the_count():
    queued = job("base", None, state="queued")
    plan = plan_pull_report(run("running"), [job("head", SAME), queued], run_url=URL)
    assert plan.check["status"] == "in_progress" and "conclusion" not in plan.check
    assert plan.check["output"]["title"] == "1 of 2 jobs done"
    assert "Measuring…" in plan.comment


def test_a_superseded_or_cancelled_run_is_cancelled_and_says_why():
    queued = [job("head", None, state="queued"), job("base", None, state="queued")]
    newer = plan_pull_report(run("running"), queued, run_url=URL, newer_url=URL + "8")
    assert newer.check["conclusion"] == "cancelled"
    assert "superseded" in newer.comment
    cancelled = plan_pull_report(run("cancelled"), queued, run_url=URL)
    assert cancelled.check["conclusion"] == "cancelled" and "Not measured." in cancelled.comment


def test_each_machine_type_is_compared_on_its_own():
    rows = [
        job("head", SLOWER, machine="multi-gpu"),
        job("base", SAME, machine="multi-gpu"),
        job("head", SAME),
        job("base", SAME),
    ]
    results = machine_results(rows, 0.05)
    assert [(r.machine_type, [x.verdict for x in r.rows]) for r in results] == [
        ("multi-gpu", ["slower"]),
        ("single-gpu", ["no change"]),
    ]


def test_thousands_of_metrics_fit_githubs_limits_with_a_pointer_to_the_run():
    def many(value: float) -> list[str]:
        return [
            json.dumps([{"name": f"metric-{i:05d}-" + "x" * 150, "unit": "ms", "value": value}
                        for i in range(900)])
        ] * 3  # fmt: skip

    head = job("head", SAME)
    base = job("base", SAME)
    rows = [
        JobRecord(**{**head.__dict__, "result": {"outputs": many(2.0)}}),
        JobRecord(**{**base.__dict__, "result": {"outputs": many(1.0)}}),
    ]
    plan = plan_pull_report(run(), rows, run_url=URL)
    assert len(plan.check["output"]["text"]) <= OUTPUT_CHARS
    assert len(plan.comment) <= 60_000
    assert plan.comment.rstrip().endswith(f"every metric is on [run 7]({URL}).")
    assert len(plan.regressed) == 900


def test_what_a_broken_head_printed_cannot_close_its_code_block_or_mention_anyone():
    said = "the command exited 1; its output began:\n```\n@maintainers [x](http://e) <b>\n````"
    plan = plan_pull_report(
        run(), [job("head", None, state="error", reason=said), job("base", SAME)], run_url=URL
    )
    block = plan.comment.split("The head could not be measured:\n\n", 1)[1]
    fence = block.split("\n", 1)[0]
    assert set(fence) == {"`"} and len(fence) > 4  # longer than any run of backticks inside
    assert block.count(fence) == 2 and "@maintainers" in block.split(fence)[1]
