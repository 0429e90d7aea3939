"""How a benchmark run is asked of the job system on each runner: the local runner's spec as it
always was, and on GitHub Actions what the dispatch needs (the workflow `[benchmarks] workflow`
names, on the default branch, the runner labels, the run's key) read by the job system into the
Actions runner's request."""

from __future__ import annotations

import dataclasses

import pytest

from bot.config import ConfigError, parse_repo_config
from bot.jobs.runners.actions import benchmark_correlation, benchmark_inputs
from bot.jobs.runners.base import BenchmarkRequest
from bot.jobs.system import build_request
from bot.kit.context import JobRecord, RunRecord
from handlers.benchmarks.start import Side, job_rows, request_spec, runner_refusal

SHA = "a" * 40
BENCH = '[benchmarks]\ncommand = ["python", "b.py", "{output}"]\nrepeats = 4\n'
ACTIONS = (
    '[slow_ci]\nrunner = "github-actions"\n'
    '[slow_ci.runner_labels]\n"multi-gpu" = ["self-hosted", "eight-gpus"]\n'
)


def spec(toml: str, **kw: str | None) -> dict:
    config = parse_repo_config(toml)
    return request_spec(config.benchmarks, config.slow_ci, **kw)


def test_the_local_runner_gets_the_spec_it_always_had():
    made = spec(BENCH, default_branch="trunk", run_key="k")
    assert "options" not in made
    assert made["command"] == ["python", "b.py", "{output}"] and made["repeats"] == 4


def test_github_actions_runs_benchmarks_and_gets_the_dispatchs_options():
    config = parse_repo_config(ACTIONS + BENCH)
    assert runner_refusal(config.slow_ci) is None
    made = spec(ACTIONS + BENCH, default_branch="trunk", run_key="benchmarks:push:d1")
    assert made["options"] == {
        "workflow": "benchmarks.yml",
        "ref": "trunk",
        "labels": {
            "single-gpu": ["self-hosted", "single-gpu"],
            "multi-gpu": ["self-hosted", "eight-gpus"],
        },
        "run_key": "benchmarks:push:d1",
    }
    named = spec(ACTIONS + BENCH + 'workflow = "bench-gpu.yaml"\n')
    assert named["options"]["workflow"] == "bench-gpu.yaml"
    assert named["options"]["ref"] == "main"  # where no default branch was given


def test_the_job_system_reads_the_spec_into_the_actions_runners_request():
    shared = spec(ACTIONS + BENCH, default_branch="trunk", run_key="benchmarks:push:d1")
    (row,) = job_rows([Side("head", SHA, "https://x/y.git")], ["multi-gpu"])
    name, job_spec = row
    run = RunRecord(
        id=5, kind="benchmarks", repo="o/r", number=None, head_sha=SHA, base_ref=None,
        requested_by=None, requested_at=0.0, state="queued", reason=None,
        spec={"request": shared}, superseded_by=None, version=1, reported_version=0,
        created_at=0.0, started_at=None, finished_at=None, private=False,
        runner="github-actions",
    )  # fmt: skip
    job = JobRecord(
        9, 5, "benchmarks", name, dict(job_spec), "queued", 0, 0, 0, 0, 0, None, None, None, (),
        (), None, None, {}, 0.0, None, None,
    )  # fmt: skip
    request = build_request(run, job, None, shape=BenchmarkRequest)
    assert isinstance(request, BenchmarkRequest)
    inputs = benchmark_inputs(request, benchmark_correlation(request))
    assert inputs["runner_labels"] == '["self-hosted", "eight-gpus"]'
    assert inputs["command"] == '["python", "b.py", "{output}"]' and inputs["repeats"] == "4"
    # The run's key, not its database id, names the workflow run: a restart finds it again.
    again = build_request(dataclasses.replace(run, id=77), job, None, shape=BenchmarkRequest)
    assert benchmark_correlation(again) == benchmark_correlation(request)
    assert benchmark_correlation(request, 2) != benchmark_correlation(request, 1)


@pytest.mark.parametrize("workflow", ["../x.yml", "bench", "a/b.yml", ".github/workflows/b.yml"])
def test_a_workflow_that_is_not_a_file_name_is_refused_naming_its_key(workflow):
    with pytest.raises(ConfigError, match=r"'benchmarks\.workflow' must be a file name"):
        parse_repo_config(f'[benchmarks]\nworkflow = "{workflow}"\n', source=".github/bot.toml")
