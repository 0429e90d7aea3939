"""`bot slow-models` and `bot run-slow` on a real checkout, with real git and real pytest."""

from __future__ import annotations

import json

from bot.cli import main
from tests.support.checkout import git


def _tests(checkout, folder: str, body: str) -> None:
    path = checkout / "tests" / folder
    path.mkdir(parents=True, exist_ok=True)
    (path / "test_it.py").write_text(body)
    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", f"tests for {folder}")


def test_slow_models_names_the_folders_and_every_dropped_name(checkout, capsys):
    _tests(checkout, "models/gpt2", "def test_ok():\n    assert True\n")
    argv = ["slow-models", "run-slow: gpt2, GPT2, bert; rm -rf /, $(id)", "--base", "HEAD"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["folders"] == ["models/gpt2"]
    dropped = {d["name"]: d["reason"] for d in report["dropped"]}
    assert "no tests/models/rm" in dropped["rm"]
    assert "not a valid name" in dropped["bert;"]
    assert "not a valid name" in dropped["$(id)"]


def test_slow_models_takes_a_model_the_branch_adds(checkout, capsys):
    git(checkout, "checkout", "-q", "-b", "feature")
    folder = checkout / "model_lib" / "models" / "tiny"
    folder.mkdir(parents=True)
    (folder / "modeling_tiny.py").write_text("x = 1\n")
    _tests(checkout, "models/tiny", "def test_ok():\n    assert True\n")
    assert main(["slow-models", "run-slow", "--base", "main"]) == 0
    assert "models/tiny (added by this PR)" in capsys.readouterr().out


def test_run_slow_runs_the_jobs_here_and_reruns_only_what_failed(checkout, capsys):
    _tests(
        checkout,
        "models/gpt2",
        "def test_ok():\n    assert True\n\n\ndef test_bad():\n    assert 6 == 7\n",
    )
    assert main(["run-slow", "gpt2", "--base", "HEAD"]) == 1
    out = capsys.readouterr().out
    assert "single-gpu_run_models_gpu_models_gpt2  failed" in out
    assert "assert 6 == 7" in out
    assert "no multi-GPU machine" in out
    assert main(["run-slow", "--failed"]) == 1
    captured = capsys.readouterr()
    assert "test_bad" in captured.err and "test_ok" not in captured.err  # only the failure ran
