"""The shipped workflows: the slow tests and the benchmarks the Actions runner dispatches, and the
bot without a server. Read as YAML for what they promise (inputs, permissions, where tokens go),
their shell scripts run for what they check and what they run, and actionlint over all of them
where it is installed. The sandbox's Actions runs the dispatched workflows' steps in Python: the
scripts run here are held to the same argv and the same words, so the two cannot drift."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.jobs.runners.actions import (
    ARTIFACT_PREFIX,
    BENCHMARK_ARTIFACT_PREFIX,
    BENCHMARK_INPUTS,
    BENCHMARK_WORKFLOW,
    ERROR_MARK,
    REPEAT_MARK,
    WORKFLOW_INPUTS,
)
from bot.jobs.runners.base import benchmark_argv
from bot.jobs.runners.pytest_command import PYTEST_ENV, pytest_argv
from tests.sandbox.actions_runner import refused_benchmark_inputs

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
SLOW_TESTS = WORKFLOWS / "slow-tests.yml"
BENCHMARKS = WORKFLOWS / BENCHMARK_WORKFLOW
MAINTAINER_BOT = WORKFLOWS / "maintainer-bot.yml"

SHA = "0123456789abcdef0123456789abcdef01234567"
GOOD_INPUTS = {
    "FOLDER": "models/bert",
    "MACHINE_TYPE": "single-gpu",
    "SHA": SHA,
    "CORRELATION": "c0ffee12ab34cd56",
    "TESTS": "",
    "PR": "7",
    "LC_ALL": "C",
}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    return workflow["on"] if "on" in workflow else workflow[True]


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def step_named(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [step for step in steps(workflow) if step.get("name") == name]
    return step


def uses(workflow: dict[str, Any], action: str) -> dict[str, Any]:
    (step,) = [step for step in steps(workflow) if step.get("uses", "").startswith(action + "@")]
    return step


@pytest.fixture(scope="module")
def slow() -> dict[str, Any]:
    return load(SLOW_TESTS)


@pytest.fixture(scope="module")
def bench() -> dict[str, Any]:
    return load(BENCHMARKS)


@pytest.fixture(scope="module")
def bot() -> dict[str, Any]:
    return load(MAINTAINER_BOT)


# ---------------------------------------------------------------------------- slow-tests.yml


def test_slow_tests_declares_exactly_the_inputs_the_runner_sends(slow):
    inputs = triggers(slow)["workflow_dispatch"]["inputs"]
    assert tuple(inputs) == WORKFLOW_INPUTS
    for name, spec in inputs.items():
        assert spec["type"] == "string", name
        if name in ("tests", "pr"):
            assert spec["required"] is False and spec["default"] == "", name
        else:
            assert spec["required"] is True, name
    assert set(triggers(slow)) == {"workflow_dispatch"}


def test_slow_tests_run_name_carries_the_correlation_the_runner_finds_it_by(slow):
    assert slow["name"] == "slow tests"
    assert "[${{ inputs.correlation }}]" in slow["run-name"]


def test_slow_tests_token_is_read_only(slow):
    assert slow["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in slow["jobs"].values())


def test_slow_tests_runs_on_the_labels_the_runner_chose(slow):
    (job,) = slow["jobs"].values()
    assert job["runs-on"] == "${{ fromJSON(inputs.runner_labels) }}"
    assert 0 < job["timeout-minutes"] <= 360


def test_a_newer_run_of_the_same_pr_replaces_the_older_and_runs_without_one_never_share(slow):
    group = slow["concurrency"]["group"]
    assert "${{ inputs.pr || inputs.correlation }}" in group
    assert "inputs.folder" in group and "inputs.machine_type" in group
    assert slow["concurrency"]["cancel-in-progress"] == "${{ inputs.pr != '' }}"


def test_checkout_is_the_pinned_sha_without_credentials_and_is_verified(slow):
    checkout = uses(slow, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ inputs.sha }}"
    assert checkout["with"]["persist-credentials"] is False
    assert checkout["with"]["fetch-depth"] == 1
    verify = step_named(slow, "Check that the checkout is the commit asked for")
    assert "git rev-parse HEAD" in verify["run"]
    assert verify["env"] == {"SHA": "${{ inputs.sha }}"}
    order = [step.get("name") or step["uses"] for step in steps(slow)]
    assert order.index("Check the inputs") < order.index(checkout["uses"])
    assert order.index(checkout["uses"]) < order.index(verify["name"])


def test_the_test_step_gets_no_secret_and_no_token(slow):
    step = step_named(slow, "Run the slow tests")
    assert step["env"] == {
        "RUN_SLOW": "yes",
        "FOLDER": "${{ inputs.folder }}",
        "TESTS": "${{ inputs.tests }}",
    }
    assert "pytest -v -rsfE --junitxml=reports/junit.xml" in step["run"]
    assert "tee reports/log.txt" in step["run"]
    # Nowhere in the workflow (its comments aside): no step could hand one on.
    text = yaml.safe_dump(slow)
    assert "secrets." not in text and "github.token" not in text and "GITHUB_TOKEN" not in text


def test_the_test_step_runs_the_runners_pytest_command_line(slow):
    """The local runner and the stand-in's Actions run `pytest_argv` with `PYTEST_ENV`; the
    workflow writes the same in shell. A flag or a variable added on one side only fails here."""
    step = step_named(slow, "Run the slow tests")
    script = step["run"].replace("\\\n", " ")
    (line,) = [ln for ln in script.splitlines() if " -m pytest " in ln]
    command = shlex.split(line.split("2>&1")[0])
    assert command == pytest_argv("python", "reports/junit.xml", ["${targets[@]}"])
    from_inputs = {"FOLDER": "${{ inputs.folder }}", "TESTS": "${{ inputs.tests }}"}
    assert {k: v for k, v in step["env"].items() if k not in from_inputs} == dict(PYTEST_ENV)


def test_the_environment_is_cached_per_os_machine_type_and_dependency_files(slow):
    restore = uses(slow, "actions/cache/restore")
    key = restore["with"]["key"]
    for part in ("runner.os", "inputs.machine_type", "hashFiles('pyproject.toml'"):
        assert part in key
    save = uses(slow, "actions/cache/save")
    assert save["with"]["path"] == restore["with"]["path"]
    assert save["with"]["key"] == "${{ steps.env-cache.outputs.cache-primary-key }}"
    assert save["if"] == step_named(slow, "Build the test environment")["if"]


def test_the_report_artifact_is_named_by_the_correlation_and_kept_always(slow):
    upload = uses(slow, "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert upload["with"] == {
        "name": ARTIFACT_PREFIX + "${{ inputs.correlation }}",
        "path": "reports/",
        "retention-days": 14,
        "if-no-files-found": "warn",
    }


@pytest.mark.parametrize("path", [SLOW_TESTS, BENCHMARKS, MAINTAINER_BOT], ids=lambda p: p.name)
def test_no_script_splices_an_expression(path):
    """An input or an event field spliced into `run:` is script injection: only env: may."""
    for step in steps(load(path)):
        assert "${{" not in step.get("run", ""), step.get("name")


# ------------------------------------------------------------ the slow-tests scripts, run

bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def run_script(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    path = cwd / "step.sh"
    path.write_text(script)
    # As GitHub runs a step with the default shell on Linux: `bash -e {0}`.
    return subprocess.run(
        ["bash", "-e", str(path)],
        env={"PATH": env.get("PATH", os.environ["PATH"]), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@bash
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"MACHINE_TYPE": "multi-gpu", "PR": ""},
        {"FOLDER": "models/bert-base_v2.1"},
        {"TESTS": "tests/models/bert/test_x.py::test_a tests/models/bert/test_y.py::T::test[1-2]"},
        {"TESTS": "tests/models/bert/test_x.py::test_a[0..9]"},
    ],
)
def test_the_inputs_check_passes_what_the_runner_sends(slow, tmp_path, changes):
    script = step_named(slow, "Check the inputs")["run"]
    result = run_script(script, {**GOOD_INPUTS, **changes}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@bash
@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"SHA": SHA[:-1]}, "sha"),
        ({"SHA": SHA.upper()}, "sha"),
        ({"SHA": SHA + "\n"}, "sha"),
        ({"CORRELATION": "nothex-nothex-no"}, "correlation"),
        ({"PR": "7; rm -rf /"}, "pr"),
        ({"FOLDER": "../secrets"}, "folder"),
        ({"FOLDER": "models/../../etc"}, "folder"),
        ({"FOLDER": "/etc"}, "folder"),
        ({"FOLDER": "-k"}, "folder"),
        ({"FOLDER": "models/bert\nexit 0"}, "folder"),
        ({"FOLDER": "models/$(id)"}, "folder"),
        ({"FOLDER": ""}, "folder"),
        ({"MACHINE_TYPE": "cpu"}, "machine_type"),
        ({"TESTS": "tests/models/gpt2/test_x.py"}, "tests"),
        ({"TESTS": "tests/models/bert/test_x.py tests/models/bertx/test_y.py"}, "tests"),
        ({"TESTS": "tests/models/bert/../gpt2/test_x.py::test_a"}, "tests"),
        ({"TESTS": "--co"}, "tests"),
    ],
)
def test_the_inputs_check_refuses_what_could_escape_the_folder(slow, tmp_path, changes, named):
    script = step_named(slow, "Check the inputs")["run"]
    result = run_script(script, {**GOOD_INPUTS, **changes}, tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith(f"::error::{named}")


@bash
@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        ("", ["tests/models/bert"]),
        (
            " tests/models/bert/test_x.py::test_a[1]  tests/models/bert/test_y.py ",
            ["tests/models/bert/test_x.py::test_a[1]", "tests/models/bert/test_y.py"],
        ),
    ],
)
def test_the_test_step_keeps_pytests_exit_code_and_its_output(slow, tmp_path, tests, expected):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    # pytest as the step sees it: prints what it was given, then fails as a failing test does.
    fake.write_text('#!/bin/sh\necho "RUN_SLOW=$RUN_SLOW"\nprintf \'%s\\n\' "$@"\nexit 3\n')
    fake.chmod(0o755)
    # A file the id would match as a glob: the ids must reach pytest as written.
    (tmp_path / "tests" / "models" / "bert").mkdir(parents=True)
    (tmp_path / "tests" / "models" / "bert" / "test_x.py::test_a1").write_text("")
    step = step_named(slow, "Run the slow tests")
    env = {**step["env"], "FOLDER": "models/bert", "TESTS": tests}
    env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    result = run_script(step["run"], env, tmp_path)
    assert result.returncode == 3
    log = (tmp_path / "reports" / "log.txt").read_text().splitlines()
    assert log == ["RUN_SLOW=yes", *pytest_argv("python", "reports/junit.xml", expected)[1:]]


@bash
@pytest.mark.parametrize(("code", "step_code"), [(0, 0), (1, 1), (2, 2), (5, 0)])
def test_nothing_collected_is_a_succeeded_step_any_other_exit_is_the_steps(
    slow, tmp_path, code, step_code
):
    # pytest's 5 (no tests collected) is a skipped job on the bot's own machine; the step
    # succeeds so the run is not a failure with no failing test.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(f"#!/bin/sh\nexit {code}\n")
    fake.chmod(0o755)
    step = step_named(slow, "Run the slow tests")
    env = {**step["env"], "FOLDER": "models/bert", "TESTS": ""}
    env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    assert run_script(step["run"], env, tmp_path).returncode == step_code


# ---------------------------------------------------------------------------- benchmarks.yml

BENCH_INPUTS = {
    "SHA": SHA,
    "REPEATS": "3",
    "TIMEOUT_S": "60",
    "MACHINE_TYPE": "single-gpu",
    "CORRELATION": "c0ffee12ab34cd56",
    "LC_ALL": "C",
}
BENCH_COMMAND = ["python", "bench.py", "--json", "{output}"]


def test_benchmarks_declares_exactly_the_inputs_the_runner_sends(bench):
    inputs = triggers(bench)["workflow_dispatch"]["inputs"]
    assert tuple(inputs) == BENCHMARK_INPUTS
    for name, spec in inputs.items():
        assert spec["type"] == "string" and spec["required"] is True, name
    assert set(triggers(bench)) == {"workflow_dispatch"}


def test_benchmarks_run_name_carries_the_correlation_and_the_token_is_read_only(bench):
    assert bench["name"] == "benchmarks"
    assert "[${{ inputs.correlation }}]" in bench["run-name"]
    assert bench["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in bench["jobs"].values())
    # Nowhere in the workflow (its comments aside): no step could hand one on.
    text = yaml.safe_dump(bench)
    assert "secrets." not in text and "github.token" not in text and "GITHUB_TOKEN" not in text


def test_benchmarks_run_on_the_labels_the_runner_chose_past_the_bots_own_limit(bench):
    (job,) = bench["jobs"].values()
    assert job["runs-on"] == "${{ fromJSON(inputs.runner_labels) }}"
    # Self-hosted jobs may run five days; the bot cancels a run past its repeats' time first.
    assert 0 < job["timeout-minutes"] <= 5 * 24 * 60


def test_benchmarks_check_their_inputs_before_anything_and_the_pinned_checkout_after(bench):
    checkout = uses(bench, "actions/checkout")
    assert checkout["with"] == {
        "ref": "${{ inputs.sha }}",
        "persist-credentials": False,
        "fetch-depth": 1,
    }
    verify = step_named(bench, "Check that the checkout is the commit asked for")
    assert "git rev-parse HEAD" in verify["run"] and verify["env"] == {"SHA": "${{ inputs.sha }}"}
    order = [step.get("name") or step["uses"] for step in steps(bench)]
    assert order[:2] == ["Start the report", "Check the inputs"]
    assert (
        order.index("Read the command")
        < order.index(checkout["uses"])
        < order.index(verify["name"])
    )
    assert order[-2:] == ["Run the benchmark", "Keep the metrics"]


def test_benchmarks_install_the_environment_slow_tests_do(slow, bench):
    """A benchmark's `python` is the interpreter of the run-slow jobs: the same steps, the same
    cache, so an environment built by one is used by the other."""
    for action in ("actions/setup-python", "actions/cache/restore", "actions/cache/save"):
        assert uses(bench, action) == uses(slow, action), action
    for name in ("Build the test environment", "Install this checkout into the environment"):
        assert step_named(bench, name) == step_named(slow, name), name


def test_the_benchmark_step_gets_no_secret_and_the_command_only_as_a_file(bench):
    assert step_named(bench, "Run the benchmark")["env"] == {
        "REPEATS": "${{ inputs.repeats }}",
        "TIMEOUT_S": "${{ inputs.timeout_s }}",
    }
    assert step_named(bench, "Read the command")["env"] == {"COMMAND": "${{ inputs.command }}"}


def test_the_metrics_artifact_is_named_by_the_correlation_and_kept_always(bench):
    upload = uses(bench, "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert upload["with"] == {
        "name": BENCHMARK_ARTIFACT_PREFIX + "${{ inputs.correlation }}",
        "path": "${{ runner.temp }}/benchmarks/",
        "retention-days": 14,
        "if-no-files-found": "error",
    }
    # The folder the upload takes is the first thing the run makes, so a run a runner finished
    # always has an artifact: one without it lost its runner.
    (first, *_) = steps(bench)
    assert first["name"] == "Start the report" and "if" not in first
    assert 'mkdir -p "$RUNNER_TEMP/benchmarks"' in first["run"]


def bench_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """A step's environment as a runner gives it: its temporary folder, the report's folder made
    by the first step, and `python` on the PATH as setup-python leaves it."""
    temp = tmp_path / "runner-temp"
    (temp / "benchmarks").mkdir(parents=True, exist_ok=True)
    bin_dir = tmp_path / "setup-python"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "python").exists():
        (bin_dir / "python").symlink_to(sys.executable)
    return {
        "RUNNER_TEMP": str(temp),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        **values,
    }


def bench_log(tmp_path: Path) -> list[str]:
    return (tmp_path / "runner-temp" / "benchmarks" / "log.txt").read_text().splitlines()


@bash
@pytest.mark.parametrize(
    "changes", [{}, {"MACHINE_TYPE": "multi-gpu"}, {"REPEATS": "100"}, {"TIMEOUT_S": "86400"}]
)
def test_the_benchmark_inputs_check_passes_what_the_runner_sends(bench, tmp_path, changes):
    script = step_named(bench, "Check the inputs")["run"]
    result = run_script(script, bench_env(tmp_path, **{**BENCH_INPUTS, **changes}), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@bash
@pytest.mark.parametrize(
    "changes",
    [
        {"SHA": SHA[:-1]},
        {"SHA": "$(touch pwned)"},
        {"SHA": SHA + "\ntouch pwned"},
        {"CORRELATION": "C0FFEE12AB34CD56"},
        {"REPEATS": "0"},
        {"REPEATS": "101"},
        {"REPEATS": "007"},
        {"REPEATS": "3; touch pwned"},
        # Read as arithmetic, this would run its command substitution.
        {"REPEATS": "a[$(touch pwned)]"},
        {"TIMEOUT_S": "1e3"},
        {"TIMEOUT_S": "-k 1 9"},
        {"MACHINE_TYPE": "cpu"},
        {"MACHINE_TYPE": "single-gpu`touch pwned`"},
    ],
)
def test_the_benchmark_inputs_check_refuses_in_the_sandboxs_words(bench, tmp_path, changes):
    inputs = {**BENCH_INPUTS, **changes}
    script = step_named(bench, "Check the inputs")["run"]
    result = run_script(script, bench_env(tmp_path, **inputs), tmp_path)
    expected = refused_benchmark_inputs(
        {
            "sha": inputs["SHA"],
            "correlation": inputs["CORRELATION"],
            "repeats": inputs["REPEATS"],
            "timeout_s": inputs["TIMEOUT_S"],
            "machine_type": inputs["MACHINE_TYPE"],
            "command": json.dumps(BENCH_COMMAND),
        }
    )
    assert expected is not None
    assert (result.returncode, result.stdout) == (1, f"::error::{expected}\n")
    assert bench_log(tmp_path) == [f"{ERROR_MARK}{expected}"]
    assert not list(tmp_path.rglob("pwned"))


def read_command(
    bench: dict[str, Any], tmp_path: Path, command: str
) -> subprocess.CompletedProcess:
    script = step_named(bench, "Read the command")["run"]
    return run_script(script, bench_env(tmp_path, COMMAND=command), tmp_path)


@bash
@pytest.mark.parametrize(
    "command",
    [
        BENCH_COMMAND,
        ["./bench", "--out={output}", "", "$(touch pwned)", "a b\tc", "*", "é"],
    ],
)
def test_the_command_becomes_argv_words_as_written(bench, tmp_path, command):
    result = read_command(bench, tmp_path, json.dumps(command))
    assert result.returncode == 0, result.stdout + result.stderr
    argv = (tmp_path / "runner-temp" / "benchmark-argv").read_bytes()
    assert argv.decode().split("\0") == [*command, ""]


@bash
@pytest.mark.parametrize(
    "command",
    [
        "python bench.py {output}",
        '"python"',
        "[]",
        '["python", 3, "{output}"]',
        '["python", "a\\u0000b", "{output}"]',
        '["", "{output}"]',
        '["python", "bench.py"]',
        json.dumps(["{output}"] * 65),
    ],
)
def test_a_command_the_runner_would_never_send_is_refused_in_the_sandboxs_words(
    bench, tmp_path, command
):
    result = read_command(bench, tmp_path, command)
    inputs = {k.lower(): v for k, v in BENCH_INPUTS.items()}
    expected = refused_benchmark_inputs({**inputs, "command": command})
    assert expected is not None and expected.startswith("command: ")
    assert (result.returncode, result.stdout) == (1, f"::error::{expected}\n")
    assert bench_log(tmp_path) == [f"{ERROR_MARK}{expected}"]


FAKE_ENV_PYTHON = """\
#!{python}
# The test environment's interpreter as the benchmark step sees it: it keeps its argv, prints,
# writes the metrics file named after --json, and exits as $FAKE_EXIT says for repeat $FAKE_AT.
import json, os, pathlib, sys, time

record = pathlib.Path(os.environ["RECORD"])
record.mkdir(exist_ok=True)
repeat = len(list(record.iterdir())) + 1
(record / str(repeat)).write_text(json.dumps(sys.argv))
print("printed by repeat", repeat, flush=True)
if os.environ.get("FAKE_AT") == str(repeat):
    if os.environ.get("FAKE_SLEEP"):
        time.sleep(30)
    if os.environ.get("FAKE_NO_FILE"):
        sys.exit(0)
    sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
pathlib.Path(sys.argv[sys.argv.index("--json") + 1]).write_text("[]")
"""


def run_benchmark_step(
    bench: dict[str, Any], tmp_path: Path, command: list[str], **env: str
) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    assert read_command(bench, tmp_path, json.dumps(command)).returncode == 0
    venv = tmp_path / "runner-temp" / "slow-tests-venv" / "bin"
    venv.mkdir(parents=True, exist_ok=True)
    fake = venv / "python"
    fake.write_text(FAKE_ENV_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    record = tmp_path / "record"
    step = step_named(bench, "Run the benchmark")
    values = {**step["env"], "REPEATS": "3", "TIMEOUT_S": "60", "RECORD": str(record), **env}
    result = run_script(step["run"], bench_env(tmp_path, **values), tmp_path)
    runs = sorted(record.iterdir(), key=lambda p: int(p.name)) if record.exists() else []
    return result, [json.loads(path.read_text()) for path in runs]


@bash
def test_each_repeat_runs_the_argv_every_runner_runs(bench, tmp_path):
    command = ["python", "bench.py", "--json", "{output}", "--also={output}", "$(touch pwned)"]
    result, runs = run_benchmark_step(bench, tmp_path, command)
    assert result.returncode == 0, result.stdout + result.stderr
    temp = tmp_path / "runner-temp"
    env_python = str(temp / "slow-tests-venv" / "bin" / "python")
    outputs = [str(temp / "benchmarks" / f"metrics-{n}.json") for n in (1, 2, 3)]
    # The interpreter runs the fake as a script: its argv[0] is the script's path.
    assert runs == [benchmark_argv(command, env_python, output) for output in outputs]
    assert all((temp / "benchmarks" / f"metrics-{n}.json").read_text() == "[]" for n in (1, 2, 3))
    log = bench_log(tmp_path)
    marks = [line for line in log if line.startswith(REPEAT_MARK)]
    assert marks == [
        f"{REPEAT_MARK}{n} of 3: $ {' '.join(benchmark_argv(command, env_python, outputs[n - 1]))}"
        for n in (1, 2, 3)
    ]
    assert "printed by repeat 2" in log
    assert not list(tmp_path.rglob("pwned"))


@bash
@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"FAKE_AT": "2", "FAKE_EXIT": "3"}, "repeat 2 of 3: the benchmark command exited with 3"),
        (
            {"FAKE_AT": "1", "FAKE_NO_FILE": "1"},
            "repeat 1 of 3 wrote no metrics file (the command's {output} names where it goes)",
        ),
        (
            {"FAKE_AT": "1", "FAKE_SLEEP": "1", "TIMEOUT_S": "1"},
            "repeat 1 of 3 timed out after 1 s",
        ),
    ],
)
def test_a_repeat_that_fails_stops_the_run_with_the_line_the_runner_reads(
    bench, tmp_path, env, error
):
    result, runs = run_benchmark_step(bench, tmp_path, BENCH_COMMAND, **env)
    assert result.returncode == 1
    assert result.stdout.endswith(f"::error::{error}\n")
    log = bench_log(tmp_path)
    assert log[-1] == f"{ERROR_MARK}{error}"
    assert len(runs) == int(env["FAKE_AT"])  # nothing ran after it


# ---------------------------------------------------------------------------- maintainer-bot.yml


def test_the_bot_workflow_hears_the_events_the_handlers_need(bot):
    on = triggers(bot)
    assert set(on) == {"pull_request", "issue_comment", "push"}
    assert set(on["pull_request"]["types"]) == {
        "opened",
        "ready_for_review",
        "synchronize",
        "labeled",
    }
    assert on["issue_comment"]["types"] == ["created"]
    assert on["push"]["branches"] == ["main"]


def test_the_bot_workflow_token_can_do_what_the_features_do_and_no_more(bot):
    assert bot["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "issues": "write",
        "statuses": "write",
        "checks": "write",
        "actions": "write",
    }
    assert all("permissions" not in job for job in bot["jobs"].values())


def test_the_bot_runs_the_default_branchs_code_never_the_pull_requests(bot):
    checkout = uses(bot, "actions/checkout")
    assert checkout["with"] == {
        "ref": "${{ github.event.repository.default_branch }}",
        "persist-credentials": False,
    }


def test_bot_handle_is_the_only_step_with_a_token(bot):
    handle = step_named(bot, "Handle the event")
    assert handle["run"].strip() == "python -m bot handle"
    assert handle["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    for step in steps(bot):
        if step is not handle:
            assert "env" not in step, step.get("name") or step["uses"]
            assert "secrets." not in str(step.get("with", "")), step.get("name") or step["uses"]
    assert "env" not in bot and all("env" not in job for job in bot["jobs"].values())


def test_the_bot_installs_itself_with_the_pins(bot):
    assert step_named(bot, "Install the bot")["run"].strip() == (
        "python -m pip install -c constraints.txt -e ."
    )


def test_deliveries_of_one_pull_request_never_run_at_once_nor_cancel_each_other(bot):
    group = bot["concurrency"]["group"]
    assert "github.event.pull_request.number" in group
    # A comment (a run-slow followed for an hour) holds back nothing else of its PR.
    assert "format('comment-{0}', github.event.comment.id)" in group
    assert bot["concurrency"]["cancel-in-progress"] is False


def test_the_bot_does_not_answer_its_own_doings(bot):
    (job,) = bot["jobs"].values()
    assert job["if"] == "github.actor != 'github-actions[bot]'"


# ---------------------------------------------------------------------------- actionlint


def actionlint() -> str | None:
    """On PATH, or beside this interpreter (a virtual environment's bin/)."""
    here = Path(sys.executable).parent / "actionlint"
    return shutil.which("actionlint") or (str(here) if here.is_file() else None)


def test_actionlint_finds_nothing():
    binary = actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed")
    result = subprocess.run(
        [binary, "-no-color", str(SLOW_TESTS), str(BENCHMARKS), str(MAINTAINER_BOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
