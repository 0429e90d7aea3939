"""The push feature's pure seams: a job's files read again as untrusted input, the request its
jobs get, and the Slack message of a regression with names the benchmarked code chose."""

from __future__ import annotations

import json

import pytest

from bot.jobs.records import JobRecord, RunRecord
from bot.jobs.runners.base import BenchmarkRequest
from handlers.benchmarks.compare import Comparison, Series
from handlers.benchmarks.handler import (
    Regressions,
    benchmark_request,
    broken_message,
    measured_series,
    regression_message,
)
from handlers.scheduled_ci.client import CommitPull

SHA = "c" * 40


def job(state: str = "passed", outputs: object = None, reason: str = "") -> JobRecord:
    return JobRecord(
        id=1, run_id=1, kind="benchmarks", name="single-gpu", spec={"machine_type": "single-gpu"},
        state=state, attempts=1, passed=0, failed=0, skipped=0, errors=0, duration_s=1.0,
        busy_s=None, reason=reason, failures=(), failed_tests=(), tested_sha=SHA, exit_code=0,
        timings={}, created_at=0.0, started_at=0.0, finished_at=1.0,
        result=None if outputs is None else {"outputs": outputs},
    )  # fmt: skip


def metrics(value: float, unit: str = "ms") -> str:
    return json.dumps([{"name": "latency", "unit": unit, "value": value}])


def test_every_repeat_of_a_passed_job_is_read_in_order() -> None:
    assert measured_series(job(outputs=[metrics(1), metrics(2), metrics(3)])) == {
        "latency": Series("ms", (1.0, 2.0, 3.0))
    }


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (job("error", reason="repeat 1 of 3 timed out"), "the job ended error: repeat 1"),
        (job(outputs=[]), "no metrics files"),
        (job(outputs={"latency": 1}), "no metrics files"),
        (job(outputs=[metrics(1), 7]), "repeat 2's metrics file is not text"),
        (job(outputs=[metrics(1), "[1, 2]"]), "repeat 2: metric 1 is a number"),
        (job(outputs=[metrics(1), metrics(2, "s")]), "'latency' is in 'ms' in one run"),
    ],
)
def test_a_job_without_usable_files_says_why_instead_of_measuring(row, reason) -> None:
    found = measured_series(row)
    assert isinstance(found, str) and reason in found, found


def test_the_jobs_request_is_the_runs_command_judged_by_the_features_reader() -> None:
    request = {"head_clone_url": "https://x/y.git", "command": ["python", "b.py", "{output}"]}
    run = RunRecord(
        id=1, kind="benchmarks", repo="acme/models", number=None, head_sha=SHA, base_ref=None,
        requested_by=None, requested_at=0.0, state="queued", reason=None,
        spec={"request": {**request, "repeats": 4, "timeout_s": 30.0}}, superseded_by=None,
        version=1, reported_version=0, created_at=0.0, started_at=None, finished_at=None,
        private=True, runner="local",
    )  # fmt: skip
    built = benchmark_request(run, job(), None)
    assert isinstance(built, BenchmarkRequest)
    assert (built.command, built.repeats, built.machine_type, built.timeout_s) == (
        ("python", "b.py", "{output}"),
        4,
        "single-gpu",
        30.0,
    )
    assert built.check_metrics is not None
    built.check_metrics(metrics(1).encode())
    with pytest.raises(ValueError, match="neither format"):
        built.check_metrics(b'{"not": "metrics"}')


def slower(name: str) -> Comparison:
    return Comparison(name, "ms", (10.0, 10.0), (20.0, 20.0), 2.0, "slower")


def test_the_message_names_the_commit_its_pull_request_and_author() -> None:
    commit = CommitPull(
        sha=SHA,
        url=f"https://github.com/acme/models/commit/{SHA}",
        author="carol",
        number=12,
        pull_url="https://github.com/acme/models/pull/12",
        title="Faster attention",
    )
    found = Regressions("single-gpu", "b" * 40, (slower("latency"),))
    message = regression_message("acme/models", "main", commit, [found], "https://bot/runs/3")
    assert message["text"] == (
        "Benchmark regression on acme/models: 1 metric slower at cccccccccccc (#12 by carol)"
    )
    shown = json.dumps(message["blocks"])
    assert "<https://github.com/acme/models/pull/12|#12> Faster attention by carol" in shown
    assert "against `bbbbbbbbbbbb`" in shown and "2.000  slower" in shown
    assert '"url": "https://bot/runs/3"' in shown


def test_names_from_the_benchmark_are_text_not_mentions_links_or_code() -> None:
    commit = CommitPull(sha=SHA, url="", author="<!here>")
    hostile = ["<!channel>", "a```b", "<https://evil|click>"]
    found = Regressions("single-gpu", "b" * 40, tuple(slower(name) for name in hostile))
    message = regression_message("acme/models", "main", commit, [found], "/runs/3")
    shown = message["text"] + json.dumps(message["blocks"])
    assert "<!channel>" not in shown and "<!here>" not in shown and "<https://evil" not in shown
    assert "&lt;!channel&gt;" in shown and "a'''b" in shown
    table = message["blocks"][2]["text"]["text"]
    assert table.count("```") == 2  # the code block is never closed early
    assert "actions" not in shown  # no button to a relative address


def test_a_long_table_is_cut_with_a_link_to_the_rest() -> None:
    found = Regressions(
        "single-gpu", "b" * 40, tuple(slower(f"metric {n:04d}") for n in range(300))
    )
    message = regression_message("acme/models", "main", CommitPull(SHA, "", "x"), [found], "/r")
    text = message["blocks"][2]["text"]["text"]
    assert len(text) <= 3000 and text.endswith("more")


def test_a_broken_benchmark_is_told_with_its_output_inert_and_cut() -> None:
    commit = CommitPull(sha=SHA, url="", author="<!here>", number=4, pull_url="", title="x")
    said = "repeat 1 of 3 exited 1; its output began:\n<!channel> ```\n" + "line\n" * 40
    message = broken_message("acme/models", "main", commit, [("multi-gpu", said)], "/runs/3")
    shown = message["text"] + json.dumps(message["blocks"])
    assert "<!channel>" not in shown and "<!here>" not in shown
    assert "&lt;!channel&gt;" in shown and "multi-gpu" in shown
    block = message["blocks"][2]["text"]["text"]
    assert block.count("```") == 2  # the output's own fence cannot close the block
    assert block.count("line") <= 12
    assert message["text"].startswith("Benchmark of acme/models could not be measured at")
