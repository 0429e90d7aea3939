"""`bot benchmark` on a real git repository whose benchmark script reports a step that got
slower at the head commit: both commits measured in worktrees, taking turns, and compared; a
command that fails is one clear error with the start of its output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.ops.cli import main
from tests.support.checkout import ENV, git

BENCH = """\
import json
import os
import sys
from pathlib import Path

from value import VALUE

output = Path(sys.argv[sys.argv.index("--json") + 1])
with open({order!r}, "a") as order:
    order.write(f"{{VALUE}}\\n")
metrics = [
    {{"name": "step", "unit": "ms", "value": VALUE, "range": "± 0"}},
    {{"name": "tokens", "unit": "tokens/s", "value": 100.0, "extra": "steady"}},
]
if Path("extra_metric").exists():
    metrics.append({{"name": "only at head", "unit": "ms", "value": 1.0}})
if os.environ.get("BENCH_WRAPPED"):
    metrics.append({{"name": "wrapped", "unit": "", "value": 1}})
secrets = ("GITHUB_TOKEN", "GITHUB_WEBHOOK_SECRET", "SLACK_BOT_TOKEN")
leaked = [name for name in secrets if name in os.environ]
if leaked:
    metrics.append({{"name": "leaked " + ",".join(leaked), "unit": "", "value": 1}})
output.write_text(json.dumps(metrics))
"""
CONFIG = """\
[benchmarks]
command = ["python", "bench.py", "--json", "{output}"]
repeats = 2
threshold = 0.05
"""


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return rev(repo, "HEAD")


def rev(repo: Path, name: str) -> str:
    done = subprocess.run(
        ["git", "rev-parse", name], cwd=repo, env=ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def worktrees(repo: Path) -> list[str]:
    done = subprocess.run(
        ["git", "worktree", "list", "--porcelain"],
        cwd=repo, env=ENV, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line for line in done.stdout.splitlines() if line.startswith("worktree ")]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """`base`: a step of 10 ms; `head`: 12 ms, and one metric more."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    order = tmp_path / "order.log"
    commit(
        repo,
        "start",
        {
            "bench.py": BENCH.format(order=str(order)),
            "value.py": "VALUE = 10.0\n",
            ".github/bot.toml": CONFIG,
        },
    )
    commit(repo, "slower", {"value.py": "VALUE = 12.0\n", "extra_metric": ""})
    monkeypatch.chdir(repo)
    monkeypatch.delenv("BOT_TEST_PYTHON", raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_not_for_the_benchmark")
    return repo


def order(repo: Path) -> list[str]:
    return (repo.parent / "order.log").read_text().split()


def test_the_head_that_got_slower_is_reported_slower(repo, capsys):
    assert main(["benchmark", "--base", "HEAD~1", "--head", "HEAD"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == (
        f"base {rev(repo, 'HEAD~1')[:12]}, head {rev(repo, 'HEAD')[:12]}: 2 run(s) each,"
        " taking turns"
    )
    assert lines[1:] == [
        "metric        unit               base           head  ratio  verdict",
        "step          ms         10 ± 0 (n=2)   12 ± 0 (n=2)  1.200  slower",
        "tokens        tokens/s  100 ± 0 (n=2)  100 ± 0 (n=2)  1.000  no change",
        "only at head  ms              missing    1 ± 0 (n=2)      -  missing in base",
    ]
    # Taking turns, so drift on a busy machine reaches both sides alike.
    assert order(repo) == ["10.0", "12.0", "10.0", "12.0"]
    assert "base " in err and "(run 2 of 2)" in err
    # The worktrees are gone and the checkout untouched; no token reached the command.
    assert worktrees(repo) == [f"worktree {repo}"]
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo, env=ENV, capture_output=True, text=True
        ).stdout
        == ""
    )
    assert "leaked" not in out


def test_json_prints_one_object_per_metric_with_every_repeat(repo, capsys):
    assert (
        main(["benchmark", "--base", "HEAD~1", "--head", "HEAD", "--json", "--repeats", "3"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data == [
        {
            "metric": "step",
            "unit": "ms",
            "base": [10.0, 10.0, 10.0],
            "head": [12.0, 12.0, 12.0],
            "ratio": 1.2,
            "verdict": "slower",
        },
        {
            "metric": "tokens",
            "unit": "tokens/s",
            "base": [100.0] * 3,
            "head": [100.0] * 3,
            "ratio": 1.0,
            "verdict": "no change",
        },
        {
            "metric": "only at head",
            "unit": "ms",
            "base": [],
            "head": [1.0] * 3,
            "ratio": None,
            "verdict": "missing in base",
        },
    ]
    assert len(order(repo)) == 6


def test_python_means_bot_test_python_when_it_is_set(repo, tmp_path, monkeypatch, capsys):
    wrapper = tmp_path / "wrapped-python"
    wrapper.write_text(f'#!/bin/sh\nBENCH_WRAPPED=1 exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("BOT_TEST_PYTHON", str(wrapper))
    assert main(["benchmark", "--base", "HEAD", "--head", "HEAD", "--json", "--repeats", "1"]) == 0
    wrapped = [row for row in json.loads(capsys.readouterr().out) if row["metric"] == "wrapped"]
    assert wrapped == [
        {"metric": "wrapped", "unit": "", "base": [1.0], "head": [1.0], "ratio": 1.0,
         "verdict": "no change"}
    ]  # fmt: skip


def write_config(repo: Path, command: str, **keys: object) -> str:
    path = repo.parent / "bench.toml"
    extra = "".join(f"{key} = {value}\n" for key, value in keys.items())
    path.write_text(f"[benchmarks]\ncommand = {command}\nrepeats = 1\n{extra}")
    return str(path)


def run_failing(repo: Path, capsys, script: str, **keys: object) -> str:
    (repo.parent / "fail.py").write_text(script)
    command = json.dumps(["python", str(repo.parent / "fail.py"), "{output}"])
    config = write_config(repo, command, **keys)
    code = main(["benchmark", "--base", "HEAD~1", "--head", "HEAD", "--config", config])
    assert code == 1
    err = capsys.readouterr().err
    assert worktrees(repo) == [f"worktree {repo}"]
    return err[err.index("error: ") :]


def test_a_command_that_fails_is_one_error_with_the_start_of_its_output(repo, capsys):
    script = "import sys\nfor i in range(50):\n    print('line', i)\nsys.exit(3)\n"
    err = run_failing(repo, capsys, script)
    base = rev(repo, "HEAD~1")[:12]
    assert err.splitlines()[0] == (
        f"error: base {base} (run 1 of 1): the command exited with 3; its output began:"
    )
    assert err.splitlines()[1:] == [f"    line {i}" for i in range(10)]


def test_a_command_that_writes_no_json_is_an_error(repo, capsys):
    err = run_failing(repo, capsys, "print('done, I think')\n")
    assert "the command wrote no JSON to the {output} path; its output began:" in err
    assert "    done, I think" in err


def test_json_in_neither_format_is_an_error(repo, capsys):
    script = "import sys, pathlib\npathlib.Path(sys.argv[1]).write_text('{\"ms\": 3}')\n"
    err = run_failing(repo, capsys, script)
    assert "the metrics file is in neither format" in err
    assert "it printed nothing" in err


def test_a_fifo_at_the_output_path_is_refused_not_waited_on(repo, capsys):
    script = "import os, sys\nos.mkfifo(sys.argv[1])\n"
    assert "the metrics file is not a plain file" in run_failing(repo, capsys, script)


def test_a_command_that_runs_past_its_timeout_is_stopped(repo, capsys):
    script = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    err = run_failing(repo, capsys, script, timeout_seconds=1)
    assert "ran past 1 s; its output began:\n    started" in err


def test_a_program_that_does_not_exist_is_an_error(repo, capsys):
    config = write_config(repo, '["./no-such-program", "{output}"]')
    assert main(["benchmark", "--base", "HEAD", "--head", "HEAD", "--config", config]) == 1
    assert "cannot start './no-such-program'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base", "nope", "--head", "HEAD"], "--base 'nope' is not a commit here"),
        (["--base", "HEAD", "--head", "HEAD~5"], "--head 'HEAD~5' is not a commit here"),
        (["--base=--output=x", "--head", "HEAD"], "--base '--output=x' is not a commit here"),
        (["--base", "HEAD", "--head", "HEAD", "--repeats", "0"], "--repeats takes 1 to 50"),
        (["--base", "HEAD", "--head", "HEAD", "--config", "none.toml"], "config file not found"),
    ],
)
def test_bad_input_is_a_usage_error(repo, capsys, args, message):
    assert main(["benchmark", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (repo.parent / "order.log").exists()


def test_no_benchmark_command_is_a_usage_error(repo, capsys):
    (repo.parent / "empty.toml").write_text("[benchmarks]\nrepeats = 3\n")
    config = str(repo.parent / "empty.toml")
    assert main(["benchmark", "--base", "HEAD", "--head", "HEAD", "--config", config]) == 2
    assert "no [benchmarks] command in" in capsys.readouterr().err


def test_a_bot_test_python_that_is_not_there_is_a_usage_error(repo, capsys, monkeypatch):
    monkeypatch.setenv("BOT_TEST_PYTHON", "/no/such/python")
    assert main(["benchmark", "--base", "HEAD", "--head", "HEAD"]) == 2
    assert "BOT_TEST_PYTHON='/no/such/python' is not an interpreter here" in (
        capsys.readouterr().err
    )


def test_outside_a_checkout_is_a_usage_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "b.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    config = str(tmp_path / "b.toml")
    assert main(["benchmark", "--base", "HEAD", "--head", "HEAD", "--config", config]) == 2
    assert "not in a git checkout" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["b.toml"]
